// Shared set-up for the sync tests: the project's emulator (real @googleapis/gmail and
// google-auth-library clients talk to it over HTTP), a fresh Postgres database, a Redis prefix,
// an App built from an environment like production's, and accounts connected with a refresh
// token minted by the emulator and stored encrypted through the accounts module.
import { randomBytes } from "node:crypto";
import os from "node:os";
import path from "node:path";
import { expect } from "vitest";
import { type App, createApp } from "../../src/app.ts";
import { loadConfig } from "../../src/config.ts";
import { upsertConnectedAccount } from "../../src/db/accounts.ts";
import { ensureSyncState } from "../../src/db/sync-state.ts";
import { type Emulator, type EmulatorOptions, startEmulator } from "@gmail-sync/emulator";
import { createLogger } from "../../src/log.ts";
import { encryptToken, parseKeyRing } from "../../src/token-crypto.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";
import { emulatorEnv } from "../../src/demo/emulator-env.ts";
import { createGmailPort } from "../../src/gmail/client.ts";
import { createOAuthClient } from "../../src/gmail/oauth.ts";
import type { GmailFactory } from "../../src/gmail/port.ts";
import type { SyncDeps } from "../../src/sync/deps.ts";

export interface Harness {
  emulator: Emulator;
  tdb: TestDatabase;
  tredis: TestRedis;
  env: Record<string, string>;
  app: App;
  close(): Promise<void>;
}

export async function startHarness(opts: {
  emulator: EmulatorOptions;
  env?: Record<string, string>;
}): Promise<Harness> {
  const emulator = await startEmulator(opts.emulator);
  const tdb = await createTestDatabase();
  const tredis = await createTestRedis();
  const env: Record<string, string> = {
    DATABASE_URL: tdb.url,
    REDIS_URL: tredis.url,
    QUEUE_PREFIX: `{${tredis.prefix}}`,
    TOKEN_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
    ...emulatorEnv(emulator),
    GMAIL_QUOTA_UNITS_PER_SECOND: "1000000",
    WORKER_CONCURRENCY: "2",
    WORKER_LOCK_DURATION_MS: "2000",
    EXTRACT_POOL_SIZE: "2",
    // The generated mailboxes include a PDF built to hit the extraction timeout: fail it fast.
    EXTRACT_TIMEOUT_MS: "1500",
    ATTACHMENT_TEMP_DIR: path.join(os.tmpdir(), `gmail-sync-test-${tredis.prefix}`),
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? "silent",
    ...opts.env,
  };
  const config = loadConfig(env);
  const app = createApp(config, { log: createLogger(config.LOG_LEVEL) });
  return {
    emulator,
    tdb,
    tredis,
    env,
    app,
    async close() {
      await app.close();
      await emulator.close();
      await tredis.cleanup();
      await tdb.drop();
    },
  };
}

/** Connects an account without the consent flow: a refresh token from the emulator, stored encrypted. */
export async function connectTestAccount(h: Harness, email: string): Promise<number> {
  const refreshToken = await h.emulator.control.issueRefreshToken(email);
  const keyRing = parseKeyRing(h.env.TOKEN_ENCRYPTION_KEY);
  const row = await upsertConnectedAccount(h.app.db, {
    email,
    scopes: ["https://www.googleapis.com/auth/gmail.readonly"],
    accessTokenExpiresAt: null,
    encrypt: (accountId) => ({
      refreshTokenEncrypted: encryptToken(keyRing, "refresh_token", accountId, refreshToken),
      accessTokenEncrypted: null,
      keyId: keyRing.activeKeyId,
    }),
  });
  await ensureSyncState(h.app.db, row.id);
  return row.id;
}

export async function waitFor<T>(
  what: string,
  fn: () => Promise<T | undefined | false | null>,
  timeoutMs = 60_000,
  everyMs = 100,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false && v !== null) return v;
    if (Date.now() > until) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

export async function syncState(h: Harness, accountId: number) {
  return h.app.db.selectFrom("sync_state").selectAll().where("account_id", "=", accountId).executeTakeFirstOrThrow();
}

export async function backfillDone(h: Harness, accountId: number): Promise<boolean> {
  return (await syncState(h, accountId)).backfill_phase === "done";
}

/** True when no job of the account's kind is waiting, delayed or running. */
export async function queuesIdle(h: Harness): Promise<boolean> {
  const [b, i] = await Promise.all([
    h.app.queues.backfill.getJobCounts("waiting", "active", "delayed", "prioritized"),
    h.app.queues.incremental.getJobCounts("waiting", "active", "delayed", "prioritized"),
  ]);
  return Object.values(b).every((n) => n === 0) && Object.values(i).every((n) => n === 0);
}

/** Runs one incremental sync through the queue and waits until the cursor reaches the mailbox's history id. */
export async function syncToMailbox(h: Harness, accountId: number, email: string): Promise<void> {
  const target = BigInt((await h.emulator.control.mailbox(email)).historyId);
  await h.app.enqueueIncremental(accountId, { reason: "manual" });
  await waitFor("cursor to reach the mailbox", async () => {
    const s = await syncState(h, accountId);
    return s.history_id !== null && BigInt(s.history_id) >= target && (await queuesIdle(h));
  });
}

/** The database equals the mailbox: same live ids, thread ids, labels, one attachment row per part; no duplicates. */
export async function expectDbEqualsMailbox(
  h: Harness,
  accountId: number,
  email: string,
): Promise<{ messages: number; attachments: number }> {
  const box = await h.emulator.control.mailbox(email);
  const rows = await h.app.db
    .selectFrom("messages")
    .select(["id", "gmail_id", "thread_id", "label_ids", "deleted_at"])
    .where("account_id", "=", accountId)
    .execute();
  const live = rows.filter((r) => r.deleted_at === null);
  const dbById = new Map(live.map((r) => [r.gmail_id, r]));
  expect(new Set(rows.map((r) => r.gmail_id)).size).toBe(rows.length); // no duplicates, ever
  const boxIds = box.messages.map((m) => m.id).sort();
  const missing = boxIds.filter((id) => !dbById.has(id));
  const extra = [...dbById.keys()].filter((id) => !box.messages.some((m) => m.id === id));
  if (missing.length > 0 || extra.length > 0) {
    const dead = await h.app.db.selectFrom("dead_letters").selectAll().where("account_id", "=", accountId).execute();
    const softDeleted = rows.filter((r) => r.deleted_at !== null && missing.includes(r.gmail_id)).length;
    expect.fail(
      `db != mailbox: ${missing.length} missing (${softDeleted} of them soft-deleted), ${extra.length} extra; first missing ${missing.slice(0, 3).join(",")}, extra ${extra.slice(0, 3).join(",")}; dead letters: ${JSON.stringify(dead.slice(0, 3))}`,
    );
  }
  const attachments = await h.app.db
    .selectFrom("attachments")
    .innerJoin("messages", "messages.id", "attachments.message_id")
    .select(["messages.gmail_id", "attachments.part_id"])
    .where("messages.account_id", "=", accountId)
    .where("messages.deleted_at", "is", null)
    .execute();
  const partsByMessage = new Map<string, string[]>();
  for (const a of attachments) partsByMessage.set(a.gmail_id, [...(partsByMessage.get(a.gmail_id) ?? []), a.part_id]);
  let attachmentCount = 0;
  for (const m of box.messages) {
    const r = dbById.get(m.id);
    expect(r?.thread_id, `thread of ${m.id}`).toBe(m.threadId);
    expect([...(r?.label_ids ?? [])].sort(), `labels of ${m.id}`).toEqual([...m.labelIds].sort());
    expect((partsByMessage.get(m.id) ?? []).sort(), `attachment parts of ${m.id}`).toEqual(
      m.attachments.map((a) => a.partId).sort(),
    );
    attachmentCount += m.attachments.length;
  }
  return { messages: box.messages.length, attachments: attachmentCount };
}

/**
 * Sync deps for driving runs directly (runIncremental, runRetryJob, as the worker does): the real
 * client built like the factory's, with the production attempt count but a 20 ms backoff base
 * instead of 1 s, so a test's retries take milliseconds, not jittered seconds.
 */
export async function directSyncDeps(h: Harness, email: string): Promise<SyncDeps> {
  const refreshToken = await h.emulator.control.issueRefreshToken(email);
  const gmailFactory: GmailFactory = async (account) => {
    const auth = createOAuthClient(h.app.config);
    auth.setCredentials({ refresh_token: refreshToken });
    return createGmailPort({
      auth,
      accountId: account.id,
      quota: h.app.quota,
      rootUrl: h.app.config.GMAIL_API_ROOT_URL,
      log: h.app.log,
      retry: { baseDelayMs: 20, maxDelayMs: 200 },
    });
  };
  return {
    db: h.app.db,
    redis: h.app.redis,
    queues: h.app.queues,
    gmailFactory,
    pipeline: h.app.pipeline,
    log: h.app.log,
    config: h.app.config,
  };
}
