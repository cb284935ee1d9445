// Poison message: one message of a history window whose messages.get always answers 500
// backendError (the emulator's per-message failure control). Each incremental run retries it a
// bounded number of times (the client's retry policy), stores the window's other messages and
// holds the cursor; after MAX_MESSAGE_ATTEMPTS runs it is parked as a dead letter and only then
// does the cursor move past it. `gmail-sync dead-letters --json` lists it; once the failure is
// cleared, `dead-letters --retry` stores it.
//
// The runs are driven directly (runIncremental, as the worker does) so the cursor can be checked
// between them. The Gmail port is the real client built like the factory's, with the production
// attempt count (DEFAULT_RETRY.maxAttempts) but a 20 ms backoff base instead of 1 s, so three
// runs take a second, not half a minute of jittered sleeps.
import { afterAll, beforeAll, expect, it } from "vitest";
import { listDeadLetters, MAX_MESSAGE_ATTEMPTS, recordMessageFailure } from "../../src/db/dead-letters.ts";
import { createGmailPort } from "../../src/gmail/client.ts";
import { createOAuthClient } from "../../src/gmail/oauth.ts";
import { DEFAULT_RETRY } from "../../src/gmail/retry.ts";
import type { GmailFactory } from "../../src/gmail/port.ts";
import { RetryableMessagesError } from "../../src/sync/backfill.ts";
import type { SyncDeps } from "../../src/sync/deps.ts";
import { runIncremental } from "../../src/sync/incremental.ts";
import { runCli } from "../helpers/cli.ts";
import { backfillDone, connectTestAccount, expectDbEqualsMailbox, type Harness, queuesIdle, startHarness, syncState, waitFor } from "./harness.ts";

const EMAIL = "alice@example.com";
let h: Harness;
let accountId: number;
let deps: SyncDeps;

beforeAll(async () => {
  h = await startHarness({ emulator: { accounts: [EMAIL], messages: 30, seed: 11, attachments: false } });
  accountId = await connectTestAccount(h, EMAIL);
  const workers = h.app.startWorkers({ maintenance: false });
  await h.app.enqueueBackfill(accountId, { reason: "connect" });
  await waitFor("backfill", async () => (await backfillDone(h, accountId)) && (await queuesIdle(h)), 30_000);
  await workers.close();

  const refreshToken = await h.emulator.control.issueRefreshToken(EMAIL);
  const gmailFactory: GmailFactory = async (account) => {
    const auth = createOAuthClient(h.app.config);
    auth.setCredentials({ refresh_token: refreshToken });
    return createGmailPort({ auth, accountId: account.id, quota: h.app.quota, rootUrl: h.app.config.GMAIL_API_ROOT_URL, log: h.app.log, retry: { baseDelayMs: 20, maxDelayMs: 200 } });
  };
  deps = { db: h.app.db, redis: h.app.redis, queues: h.app.queues, gmailFactory, pipeline: h.app.pipeline, log: h.app.log, config: h.app.config };
}, 60_000);
afterAll(async () => {
  await h?.close();
});

const cursor = async () => BigInt((await syncState(h, accountId)).history_id ?? "0");
const storedIds = async () => new Set((await h.app.db.selectFrom("messages").select("gmail_id").where("account_id", "=", accountId).where("deleted_at", "is", null).execute()).map((r) => r.gmail_id));

it("retries a 500-forever message a bounded number of times, parks it, and only then moves the cursor past it", { timeout: 60_000 }, async () => {
  const start = await cursor();
  const before = await h.emulator.control.deliver(EMAIL, { attachments: false });
  // The failure is set before the delivery shows up in history, so no run ever sees it succeed.
  const poisonId = (await h.emulator.control.deliver(EMAIL, { attachments: false })).id;
  await h.emulator.control.failMessage(EMAIL, poisonId, { status: 500 });
  const poisonHistoryId = BigInt((await h.emulator.control.mailbox(EMAIL)).historyId);
  const after = [];
  for (let i = 0; i < 3; i++) after.push(await h.emulator.control.deliver(EMAIL, { attachments: false }));
  const others = [before, ...after].map((m) => m.id);
  expect(start).toBeLessThan(poisonHistoryId);

  for (let run = 1; run < MAX_MESSAGE_ATTEMPTS; run++) {
    await expect(runIncremental(deps, { accountId, reason: "manual" })).rejects.toBeInstanceOf(RetryableMessagesError);
    // Held: the cursor is not past the poison message, nothing is parked yet…
    expect(await cursor()).toBeLessThan(poisonHistoryId);
    expect(await listDeadLetters(h.app.db, { parkedOnly: true })).toHaveLength(0);
    const [open] = await listDeadLetters(h.app.db, { accountId });
    expect(open).toMatchObject({ gmailId: poisonId, attempts: run, parkedAt: null });
    // …and the other messages of the window are stored already.
    const stored = await storedIds();
    for (const id of others) expect(stored.has(id), `message ${id} stored after run ${run}`).toBe(true);
    expect(stored.has(poisonId)).toBe(false);
  }

  const last = await runIncremental(deps, { accountId, reason: "manual" });
  expect(last).toMatchObject({ advanced: true });
  const [parked] = await listDeadLetters(h.app.db, { parkedOnly: true });
  expect(parked).toMatchObject({ gmailId: poisonId, attempts: MAX_MESSAGE_ATTEMPTS, email: EMAIL });
  expect(parked?.parkedAt).toBeInstanceOf(Date);
  expect(await cursor()).toBeGreaterThanOrEqual(BigInt((await h.emulator.control.mailbox(EMAIL)).historyId));

  // Bounded: every run tried it at most maxAttempts times (and at least once).
  const gets = (await h.emulator.control.stats()).injectedFailures?.[EMAIL]?.[poisonId] ?? 0;
  expect(gets).toBeGreaterThanOrEqual(MAX_MESSAGE_ATTEMPTS);
  expect(gets).toBeLessThanOrEqual(MAX_MESSAGE_ATTEMPTS * DEFAULT_RETRY.maxAttempts);

  // A later run neither fetches it again nor holds the cursor.
  const next = await h.emulator.control.deliver(EMAIL, { attachments: false });
  await expect(runIncremental(deps, { accountId, reason: "manual" })).resolves.toMatchObject({ advanced: true });
  expect((await storedIds()).has(next.id)).toBe(true);
  expect((await h.emulator.control.stats()).injectedFailures?.[EMAIL]?.[poisonId]).toBe(gets);

  // The CLI lists it; once Gmail answers again, --retry stores it and the database equals the mailbox.
  const listed = await runCli(["dead-letters", "--json"], h.env);
  expect(listed.code, listed.stderr).toBe(0);
  const rows = JSON.parse(listed.stdout.trim().split("\n").pop() as string) as Array<{ gmailId: string; email: string; attempts: number }>;
  expect(rows).toEqual([expect.objectContaining({ gmailId: poisonId, email: EMAIL, attempts: MAX_MESSAGE_ATTEMPTS })]);

  await h.emulator.control.failMessage(EMAIL, poisonId, { status: 0 });
  const retried = await runCli(["dead-letters", "--retry", "--json"], h.env);
  expect(retried.code, retried.stderr).toBe(0);
  expect(JSON.parse(retried.stdout.trim().split("\n").pop() as string)).toMatchObject({ retried: 1, stored: 1, failed: 0 });
  expect((await storedIds()).has(poisonId)).toBe(true);
  expect(await listDeadLetters(h.app.db)).toHaveLength(0);
  await expectDbEqualsMailbox(h, accountId, EMAIL);
});

it("dead-letters --retry stores through the sync's store step: a parked message Gmail no longer has is soft-deleted and resolved", async () => {
  const [victim] = [...(await storedIds())];
  expect(victim).toBeDefined();
  await h.app.db.transaction().execute((trx) => recordMessageFailure(trx, accountId, victim as string, { reason: "test", detail: "parked by hand", permanent: true }));
  await h.emulator.control.deleteMessage(EMAIL, victim as string);
  const retried = await runCli(["dead-letters", "--retry", "--json"], h.env);
  expect(retried.code, retried.stderr).toBe(0);
  expect(JSON.parse(retried.stdout.trim().split("\n").pop() as string)).toMatchObject({ retried: 1, stored: 0, gone: 1, failed: 0 });
  expect((await storedIds()).has(victim as string)).toBe(false);
  expect(await listDeadLetters(h.app.db)).toHaveLength(0);
});
