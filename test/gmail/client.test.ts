// The Gmail layer against the emulator over HTTP, with the real @googleapis/gmail and
// google-auth-library clients, real Postgres and real Redis: OAuth connect through the consent
// redirect, token refresh with compare-and-set saves, revocation → reauth_required, batch and
// parallel fetches (equal results, per-id failures), 429 handling and the history 404.
import { randomBytes } from "node:crypto";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Config, loadConfig } from "../../src/config.ts";
import { getAccount, saveAccessToken } from "../../src/db/accounts.ts";
import { startEmulator, type Emulator } from "@gmail-sync/emulator";
import { isGmailError } from "../../src/errors.ts";
import { createGmailPort, type GmailPortDeps } from "../../src/gmail/client.ts";
import { createGmailFactory } from "../../src/gmail/factory.ts";
import type { GmailPort } from "../../src/gmail/port.ts";
import { buildConsentUrl, connectAccount, createOAuthClient } from "../../src/gmail/oauth.ts";
import { parseGmailMessage } from "../../src/gmail/parse-message.ts";
import { createQuotaGovernor, type QuotaGovernor } from "../../src/gmail/quota.ts";
import { createLogger } from "../../src/log.ts";
import { apiRateLimitedTotal, tokenRefreshesTotal } from "../../src/metrics.ts";
import { decryptToken, encryptToken, parseKeyRing, type KeyRing } from "../../src/token-crypto.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";
import { emulatorEnv } from "../../src/demo/emulator-env.ts";

const ALICE = "alice@example.com";
const BOB = "bob@example.com";
const CAROL = "carol@example.com";
const DAVE = "dave@example.com";
const log = createLogger("silent");

let emu: Emulator;
let t: TestDatabase;
let r: TestRedis;
let config: Config;
let keyRing: KeyRing;
let quota: QuotaGovernor;
const connected: number[] = [];

async function consentCode(email: string): Promise<string> {
  const res = await fetch(buildConsentUrl(config, "state-1", email), { redirect: "manual" });
  expect(res.status).toBe(302);
  const loc = new URL(res.headers.get("location") ?? "");
  expect(loc.searchParams.get("state")).toBe("state-1");
  return loc.searchParams.get("code") ?? "";
}

async function connect(email: string): Promise<number> {
  const { accountId } = await connectAccount(
    { db: t.db, config, keyRing, log, onConnected: async (id) => void connected.push(id) },
    await consentCode(email),
  );
  return accountId;
}

function tokenCalls(stats: Awaited<ReturnType<Emulator["control"]["stats"]>>): number {
  return Object.entries(stats.requests)
    .filter(([m]) => m.startsWith("oauth.token") || m.includes("/token"))
    .reduce((n, [, byStatus]) => n + Object.values(byStatus).reduce((a, b) => a + b, 0), 0);
}

function gmailCalls(stats: Awaited<ReturnType<Emulator["control"]["stats"]>>): number {
  return Object.entries(stats.requests)
    .filter(([m]) => m.startsWith("gmail.") || m === "batch")
    .reduce((n, [, byStatus]) => n + Object.values(byStatus).reduce((a, b) => a + b, 0), 0);
}

/** A port for a connected account, built directly (no factory): its refresh token, these options. */
async function directPort(id: number, opts: Partial<GmailPortDeps> = {}): Promise<GmailPort> {
  const row = await getAccount(t.db, id);
  const auth = createOAuthClient(config);
  auth.setCredentials({ refresh_token: decryptToken(keyRing, "refresh_token", id, row!.refresh_token_encrypted!) });
  return createGmailPort({ auth, accountId: id, quota, rootUrl: config.GMAIL_API_ROOT_URL, log, ...opts });
}

beforeAll(async () => {
  [emu, t, r] = await Promise.all([
    startEmulator({ accounts: [ALICE, BOB, CAROL, DAVE], messages: 40, seed: 42 }),
    createTestDatabase(),
    createTestRedis(),
  ]);
  config = loadConfig({
    DATABASE_URL: t.url,
    REDIS_URL: r.url,
    QUEUE_PREFIX: r.prefix,
    TOKEN_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
    ...emulatorEnv(emu),
    GOOGLE_OAUTH_REDIRECT_URI: "http://127.0.0.1:9/oauth2/callback",
  });
  keyRing = parseKeyRing(config.TOKEN_ENCRYPTION_KEY);
  quota = createQuotaGovernor(r.redis, { prefix: r.prefix, unitsPerSecond: 2000, projectUnitsPerMinute: 10_000_000 });
});

afterAll(async () => {
  await Promise.all([emu?.close(), t?.drop(), r?.cleanup()]);
});

describe("OAuth connect", () => {
  it("exchanges the code, reads the address with getProfile and stores encrypted tokens", async () => {
    const id = await connect(ALICE);
    expect(connected).toContain(id);
    const row = await getAccount(t.db, id);
    expect(row).toMatchObject({ email: ALICE, status: "active", token_key_id: keyRing.activeKeyId });
    expect(row?.refresh_token_encrypted).toMatch(/^v1\./);
    expect(decryptToken(keyRing, "refresh_token", id, row?.refresh_token_encrypted ?? "")).toMatch(/\S/);
    expect(row?.access_token_expires_at?.getTime()).toBeGreaterThan(Date.now() + 3000_000);
    // reconnecting keeps the same row
    expect(await connect(ALICE)).toBe(id);
  });

  it("a used code is refused as auth_revoked", async () => {
    const code = await consentCode(BOB);
    await connectAccount({ db: t.db, config, keyRing, log, onConnected: async () => {} }, code);
    const err = await connectAccount({ db: t.db, config, keyRing, log, onConnected: async () => {} }, code).catch(
      (e: unknown) => e,
    );
    expect(isGmailError(err, "auth_revoked")).toBe(true);
  });
});

/** A payload tree with every body.attachmentId blanked (they differ on every fetch). */
function withoutAttachmentIds(part: unknown): unknown {
  return JSON.parse(JSON.stringify(part ?? null), (k, v: unknown) => (k === "attachmentId" ? "(varies)" : v));
}

describe("port over the emulator", () => {
  it("lists and fetches the whole mailbox; batch and parallel give equal results", async () => {
    const id = await connect(ALICE);
    const factory = createGmailFactory({ db: t.db, redis: r.redis, config, keyRing, log, quota });
    const gmail = await factory({ id, email: ALICE });
    const profile = await gmail.getProfile();
    expect(profile.emailAddress).toBe(ALICE);
    const truth = await emu.control.mailbox(ALICE);
    const ids: string[] = [];
    let pageToken: string | undefined;
    do {
      const page = await gmail.listMessages({
        maxResults: 15,
        ...(pageToken ? { pageToken } : {}),
        includeSpamTrash: true,
      });
      ids.push(...page.messages.map((m) => m.id));
      pageToken = page.nextPageToken;
    } while (pageToken);
    expect(new Set(ids)).toEqual(new Set(truth.messages.map((m) => m.id)));

    const batch = await gmail.getMessages(ids);
    const parallel = await createGmailFactory({
      db: t.db,
      redis: r.redis,
      config,
      keyRing,
      log,
      quota,
      fetchStrategy: "parallel",
    })({ id, email: ALICE }).then((g) => g.getMessages(ids));
    expect(batch.map((f) => f.id)).toEqual(ids);
    expect(batch.every((f) => f.message !== undefined)).toBe(true);
    expect(parallel.map((f) => f.message?.id)).toEqual(batch.map((f) => f.message?.id));
    // attachmentId differs on every fetch, as Gmail's (gmail-real-samples fact 4): compare the rest.
    expect(parallel.map((f) => withoutAttachmentIds(f.message?.payload))).toEqual(
      batch.map((f) => withoutAttachmentIds(f.message?.payload)),
    );

    const byId = new Map(truth.messages.map((m) => [m.id, m]));
    for (const f of batch) {
      const p = parseGmailMessage(f.message!);
      const want = byId.get(p.gmailId)!;
      expect(p.threadId).toBe(want.threadId);
      expect([...p.labelIds].sort()).toEqual([...want.labelIds].sort());
      expect(p.attachments.map((a) => a.partId).sort()).toEqual(want.attachments.map((a) => a.partId).sort());
    }
  });

  it("getThreads: whole threads, batch and parallel alike, charged 10 units each; an unknown thread is not_found alone", async () => {
    const id = await connect(ALICE);
    const gmail = await createGmailFactory({ db: t.db, redis: r.redis, config, keyRing, log, quota })({
      id,
      email: ALICE,
    });
    const parallel = await createGmailFactory({
      db: t.db,
      redis: r.redis,
      config,
      keyRing,
      log,
      quota,
      fetchStrategy: "parallel",
    })({ id, email: ALICE });
    const truth = await emu.control.mailbox(ALICE);
    const members = new Map<string, string[]>();
    for (const m of truth.messages) members.set(m.threadId, [...(members.get(m.threadId) ?? []), m.id]);
    const threadIds = [...members.keys()];
    expect(
      [...members.values()].some((ids) => ids.length > 1),
      "some thread has several messages",
    ).toBe(true);

    const before = (await emu.control.stats()).quotaUnits[ALICE] ?? 0;
    const batch = await gmail.getThreads([...threadIds, "00000000deadbeef"]);
    expect((await emu.control.stats()).quotaUnits[ALICE]! - before).toBe(10 * (threadIds.length + 1));
    expect(batch.map((f) => f.id)).toEqual([...threadIds, "00000000deadbeef"]);
    expect(batch.at(-1)?.error?.kind).toBe("not_found");
    for (const f of batch.slice(0, -1))
      expect(new Set(f.messages?.map((m) => m.id)), f.id).toEqual(new Set(members.get(f.id)));
    // Full format: what getMessages returns for the same message.
    const [one] = await gmail.getMessages([members.get(threadIds[0]!)![0]!]);
    expect(withoutAttachmentIds(batch[0]?.messages?.find((m) => m.id === one?.message?.id)?.payload)).toEqual(
      withoutAttachmentIds(one?.message?.payload),
    );

    const viaGets = await parallel.getThreads(threadIds);
    expect(viaGets.map((f) => f.messages?.map((m) => m.id))).toEqual(
      batch.slice(0, -1).map((f) => f.messages?.map((m) => m.id)),
    );
  });

  it("batch: an unknown id is not_found alone, the others are fetched", async () => {
    const id = await connect(ALICE);
    const gmail = await createGmailFactory({ db: t.db, redis: r.redis, config, keyRing, log, quota })({
      id,
      email: ALICE,
    });
    const truth = await emu.control.mailbox(ALICE);
    const known = truth.messages.slice(0, 3).map((m) => m.id);
    const res = await gmail.getMessages([known[0]!, "00000000deadbeef", known[1]!, known[2]!]);
    expect(res.map((f) => f.id)).toEqual([known[0], "00000000deadbeef", known[1], known[2]]);
    expect(res[1]?.error?.kind).toBe("not_found");
    expect(res.filter((f) => f.message).length).toBe(3);
  });

  it("batch: injected 500s are retried per sub-request until every message is fetched", async () => {
    const gmail = await directPort(await connect(ALICE), { retry: { baseDelayMs: 20, maxAttempts: 8 } });
    const ids = (await emu.control.mailbox(ALICE)).messages.map((m) => m.id);
    await emu.control.updateSettings({ faultRate: 0.3 });
    try {
      const res = await gmail.getMessages(ids);
      expect(res.filter((f) => f.error).map((f) => f.error?.message)).toEqual([]);
    } finally {
      await emu.control.updateSettings({ faultRate: 0 });
    }
    const stats = await emu.control.stats();
    const statuses = Object.values(stats.requests).flatMap((s) => Object.keys(s));
    expect(statuses).toContain("500");
  });

  it("history.list from an expired start id is history_expired", async () => {
    const id = await connect(CAROL);
    const gmail = await createGmailFactory({ db: t.db, redis: r.redis, config, keyRing, log, quota })({
      id,
      email: CAROL,
    });
    const { historyId } = await gmail.getProfile();
    await emu.control.deliver(CAROL);
    const page = await gmail.listHistory({ startHistoryId: historyId, historyTypes: ["messageAdded"] });
    expect(page.history.length).toBeGreaterThan(0);
    await emu.control.expireHistory(CAROL);
    const err = await gmail.listHistory({ startHistoryId: historyId }).catch((e: unknown) => e);
    expect(isGmailError(err, "history_expired")).toBe(true);
  });
});

describe("rate limits", () => {
  it("429s from Gmail slow the bucket (AIMD), are retried after Retry-After, and the batch completes", async () => {
    const id = await connect(BOB);
    // Our bucket believes in 2000 units/s; the emulator allows 100: Gmail answers 429.
    const q = createQuotaGovernor(r.redis, {
      prefix: `${r.prefix}:rl`,
      unitsPerSecond: 2000,
      projectUnitsPerMinute: 10_000_000,
    });
    const gmail = await createGmailFactory({ db: t.db, redis: r.redis, config, keyRing, log, quota: q })({
      id,
      email: BOB,
    });
    const ids = (await emu.control.mailbox(BOB)).messages.map((m) => m.id);
    const before = (await apiRateLimitedTotal.get()).values.reduce((n, v) => n + v.value, 0);
    const limitedBefore = (await emu.control.stats()).rateLimited;
    await emu.control.updateSettings({ quotaUnitsPerSecond: 100 });
    try {
      const res = await gmail.getMessages(ids);
      expect(res.every((f) => f.message !== undefined)).toBe(true);
    } finally {
      await emu.control.updateSettings({ quotaUnitsPerSecond: 0 });
    }
    expect((await emu.control.stats()).rateLimited).toBeGreaterThan(limitedBefore);
    expect((await apiRateLimitedTotal.get()).values.reduce((n, v) => n + v.value, 0)).toBeGreaterThan(before);
    expect((await q.inspect(id)).rate).toBeLessThan(2000);
  });

  // Found by test/sync/two-workers.test.ts in CI: a worker woken into an exhausted bucket had its
  // batch refused past the budget, getMessages threw, and the 15 messages it had already been served
  // were fetched (and charged) again by the retried job.
  for (const fetchStrategy of ["batch", "parallel"] as const)
    it(`a rate limit past the retry budget keeps what was fetched before it (${fetchStrategy})`, async () => {
      const gmail = await directPort(await connect(BOB), {
        retry: { maxAttempts: 1 },
        fetchStrategy,
        batchSize: 10,
        concurrency: fetchStrategy === "batch" ? 1 : 5,
      });
      await gmail.getProfile(); // refresh the token before the quota goes down
      const ids = (await emu.control.mailbox(BOB)).messages.map((m) => m.id);
      const getsBefore = await emu.control.messageGets(BOB);
      // One second of burst is 50 units: ten messages.get, then refusals.
      await emu.control.updateSettings({ quotaUnitsPerSecond: 50 });
      let res: Awaited<ReturnType<typeof gmail.getMessages>>;
      try {
        res = await gmail.getMessages(ids);
      } finally {
        await emu.control.updateSettings({ quotaUnitsPerSecond: 0 });
      }
      expect(res.map((f) => f.id)).toEqual(ids);
      const fetched = res.filter((f) => f.message !== undefined).map((f) => f.id);
      const limited = res.filter((f) => isGmailError(f.error, "rate_limited")).map((f) => f.id);
      expect(fetched.length).toBeGreaterThanOrEqual(10);
      expect(limited.length).toBeGreaterThan(0);
      expect(fetched.length + limited.length, "every other id answered by the rate limit").toBe(ids.length);
      // What came back is exactly what Gmail served since the quota went down.
      const gets = await emu.control.messageGets(BOB);
      const served = ids.filter((m) => (gets[m] ?? 0) > (getsBefore[m] ?? 0));
      expect(served.sort()).toEqual([...fetched].sort());
    });

  it("without retry budget, a 429 surfaces as rate_limited with Gmail's retryAfterMs", async () => {
    const id = await connect(BOB);
    const q = createQuotaGovernor(r.redis, {
      prefix: `${r.prefix}:rl2`,
      unitsPerSecond: 2000,
      projectUnitsPerMinute: 10_000_000,
    });
    const gmail = await directPort(id, { quota: q, retry: { maxAttempts: 1 } });
    await gmail.getProfile(); // refresh the token before the quota goes down
    // The form that carries a retry time is the subject here (Gmail also refuses without one).
    await emu.control.updateSettings({ quotaUnitsPerSecond: 5, quotaErrorForms: "retry-after" });
    try {
      let err: unknown;
      for (let i = 0; i < 10 && err === undefined; i++)
        err = await gmail.listMessages({ maxResults: 5 }).then(
          () => undefined,
          (e: unknown) => e,
        );
      expect(isGmailError(err, "rate_limited")).toBe(true);
      if (isGmailError(err)) {
        expect(err.status).toBe(429);
        expect(err.retryAfterMs).toBeGreaterThan(0);
      }
      expect((await q.inspect(id)).blockedUntilMs).toBeGreaterThan(0);
    } finally {
      await emu.control.updateSettings({ quotaUnitsPerSecond: 0, quotaErrorForms: "gmail" });
    }
  });
});

describe("tokens", () => {
  it("refreshes a token about to expire and saves it; a stale concurrent save cannot overwrite it", async () => {
    const id = await connect(DAVE);
    const soon = new Date(Date.now() + 60_000); // inside the 5-minute eager-refresh window
    await t.db.updateTable("accounts").set({ access_token_expires_at: soon }).where("id", "=", id).execute();
    const calls = tokenCalls(await emu.control.stats());
    const gmail = await createGmailFactory({ db: t.db, redis: r.redis, config, keyRing, log, quota })({
      id,
      email: DAVE,
    });
    expect(tokenCalls(await emu.control.stats())).toBe(calls + 1);
    const row = await getAccount(t.db, id);
    const fresh = row!.access_token_expires_at!;
    expect(fresh.getTime()).toBeGreaterThan(Date.now() + 3000_000);
    expect((await gmail.getProfile()).emailAddress).toBe(DAVE);

    // Another process that started from the old expiry and got an older token loses.
    const stale = await saveAccessToken(t.db, {
      accountId: id,
      accessTokenEncrypted: encryptToken(keyRing, "access_token", id, "stale-token"),
      expiresAt: new Date(fresh.getTime() - 10_000),
      keyId: keyRing.activeKeyId,
      previousExpiresAt: soon,
    });
    expect(stale).toBe(false);
    const after = await getAccount(t.db, id);
    expect(after!.access_token_expires_at!.getTime()).toBe(fresh.getTime());
    expect(decryptToken(keyRing, "access_token", id, after!.access_token_encrypted!)).not.toBe("stale-token");
    // A newer one wins.
    expect(
      await saveAccessToken(t.db, {
        accountId: id,
        accessTokenEncrypted: encryptToken(keyRing, "access_token", id, "newer"),
        expiresAt: new Date(fresh.getTime() + 10_000),
        keyId: keyRing.activeKeyId,
        previousExpiresAt: soon,
      }),
    ).toBe(true);
  });

  it("concurrent refreshers (two factories, as two processes) both work and the longest-lived token is kept", async () => {
    const id = await connect(BOB);
    await t.db
      .updateTable("accounts")
      .set({ access_token_expires_at: new Date(Date.now() + 1000) })
      .where("id", "=", id)
      .execute();
    const [a, b] = await Promise.all(
      [0, 1].map(() =>
        createGmailFactory({ db: t.db, redis: r.redis, config, keyRing, log, quota })({ id, email: BOB }),
      ),
    );
    expect((await a!.getProfile()).emailAddress).toBe(BOB);
    expect((await b!.getProfile()).emailAddress).toBe(BOB);
    const row = await getAccount(t.db, id);
    expect(row!.access_token_expires_at!.getTime()).toBeGreaterThan(Date.now() + 3000_000);
    // whatever token is stored is one the emulator accepts
    const stored = createGmailFactory({ db: t.db, redis: r.redis, config, keyRing, log, quota });
    const calls = tokenCalls(await emu.control.stats());
    expect((await (await stored({ id, email: BOB })).getProfile()).emailAddress).toBe(BOB);
    expect(tokenCalls(await emu.control.stats())).toBe(calls);
  });

  it("an access token Gmail rejects before its expiry is refreshed once and the calls succeed", async () => {
    const id = await connect(BOB);
    const bogus = encryptToken(keyRing, "access_token", id, "ya29.not-a-token");
    const later = new Date(Date.now() + 3000_000);
    const setBogus = () =>
      t.db
        .updateTable("accounts")
        .set({ access_token_encrypted: bogus, access_token_expires_at: later })
        .where("id", "=", id)
        .execute();
    await setBogus();
    const factory = createGmailFactory({ db: t.db, redis: r.redis, config, keyRing, log, quota });
    expect((await (await factory({ id, email: BOB })).getProfile()).emailAddress).toBe(BOB);
    await setBogus();
    const ids = (await emu.control.mailbox(BOB)).messages.slice(0, 5).map((m) => m.id);
    const res = await (await factory({ id, email: BOB })).getMessages(ids);
    expect(res.every((f) => f.message !== undefined)).toBe(true);
    expect((await getAccount(t.db, id))?.status).toBe("active");
  });

  it("a revoked grant makes the account reauth_required, and later builds make no Gmail or token calls", async () => {
    const id = await connect(DAVE);
    const gmail = await createGmailFactory({ db: t.db, redis: r.redis, config, keyRing, log, quota })({
      id,
      email: DAVE,
    });
    await emu.control.revoke(DAVE);
    const invalidGrants = async () =>
      (await tokenRefreshesTotal.get()).values.find((v) => v.labels.outcome === "invalid_grant")?.value ?? 0;
    const before0 = await invalidGrants();
    // The current access token dies with the grant: 401 → one forced refresh → invalid_grant.
    const err = await gmail.getProfile().catch((e: unknown) => e);
    expect(isGmailError(err, "auth_revoked")).toBe(true);
    expect((await getAccount(t.db, id))?.status).toBe("reauth_required");
    expect((await getAccount(t.db, id))?.status_reason).toBe("invalid_grant");
    expect(await invalidGrants()).toBe(before0 + 1);

    const before = await emu.control.stats();
    const again = await gmail.getProfile().catch((e: unknown) => e);
    expect(isGmailError(again, "auth_revoked")).toBe(true);
    const build = await createGmailFactory({ db: t.db, redis: r.redis, config, keyRing, log, quota })({
      id,
      email: DAVE,
    }).catch((e: unknown) => e);
    expect(isGmailError(build, "auth_revoked")).toBe(true);
    const after = await emu.control.stats();
    expect(tokenCalls(after)).toBe(tokenCalls(before));
    expect(gmailCalls(after)).toBe(gmailCalls(before));
  });
});

describe("token endpoint and scope failures", () => {
  it("an unreachable token endpoint is transient and leaves the account active", async () => {
    const id = await connect(CAROL);
    await t.db
      .updateTable("accounts")
      .set({ access_token_expires_at: new Date(Date.now() + 1000) })
      .where("id", "=", id)
      .execute();
    const down = { ...config, GOOGLE_OAUTH_TOKEN_URL: "http://127.0.0.1:9/token" } as Config;
    const err = await createGmailFactory({ db: t.db, redis: r.redis, config: down, keyRing, log, quota })({
      id,
      email: CAROL,
    }).catch((e: unknown) => e);
    expect(isGmailError(err, "transient")).toBe(true);
    expect((await getAccount(t.db, id))?.status).toBe("active");
  });

  it("a grant with only gmail.metadata (403 on format=full) makes the account reauth_required", async () => {
    const id = await connect(CAROL);
    const metadataOnly = await emu.control.issueRefreshToken(CAROL, ["https://www.googleapis.com/auth/gmail.metadata"]);
    await t.db
      .updateTable("accounts")
      .set({
        refresh_token_encrypted: encryptToken(keyRing, "refresh_token", id, metadataOnly),
        access_token_encrypted: null,
        access_token_expires_at: null,
      })
      .where("id", "=", id)
      .execute();
    const gmail = await createGmailFactory({ db: t.db, redis: r.redis, config, keyRing, log, quota })({
      id,
      email: CAROL,
    });
    const ids = (await emu.control.mailbox(CAROL)).messages.slice(0, 2).map((m) => m.id);
    const err = await gmail.getMessages(ids).catch((e: unknown) => e);
    expect(isGmailError(err, "auth_revoked")).toBe(true);
    expect((await getAccount(t.db, id))?.status).toBe("reauth_required");
  });
});
