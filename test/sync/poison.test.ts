// Poison message: one message of a history window whose messages.get always answers 500
// backendError (the emulator's per-message failure control). The incremental run that meets it
// stores the window's other messages and moves the cursor past it, the message written to the retry
// ledger in the same transaction; the retry step fetches it again on its backoff; it is parked (a
// dead letter) only after MAX_MESSAGE_ATTEMPTS attempts AND MIN_PARK_AGE_MINUTES since it first
// failed, then tried hourly by the retry tick. `gmail-sync dead-letters --json` lists it; once the
// failure is cleared, `dead-letters --retry` stores it.
//
// The runs are driven directly (runIncremental, runRetryJob, as the worker does) with the ledger's
// clock moved by SQL, so 30 minutes take no time. The Gmail port is the real client built like the
// factory's, with the production attempt count (DEFAULT_RETRY.maxAttempts) but a 20 ms backoff base
// instead of 1 s.
import { afterAll, beforeAll, expect, it } from "vitest";
import { sql } from "kysely";
import {
  listDeadLetters,
  MAX_MESSAGE_ATTEMPTS,
  MIN_PARK_AGE_MINUTES,
  recordMessageFailure,
} from "../../src/db/dead-letters.ts";
import { DEFAULT_RETRY } from "../../src/gmail/retry.ts";
import { JOB_NAMES } from "../../src/jobs.ts";
import { type MaintenanceDeps, processMaintenanceJob } from "../../src/maintenance.ts";
import { TICKS } from "../../src/schedules.ts";
import { runRetryJob } from "../../src/sync/retry-messages.ts";
import type { SyncDeps } from "../../src/sync/deps.ts";
import { runIncremental } from "../../src/sync/incremental.ts";
import { runCli } from "../helpers/cli.ts";
import {
  backfillDone,
  connectTestAccount,
  expectDbEqualsMailbox,
  type Harness,
  queuesIdle,
  directSyncDeps,
  startHarness,
  syncState,
  waitFor,
} from "./harness.ts";

const EMAIL = "alice@example.com";
let h: Harness;
let accountId: number;
let deps: SyncDeps;

beforeAll(async () => {
  // Gmail's defaults, less the random post-push 404: this test drives single runs and asserts what
  // each stored; a raced delivery would (rightly) wait in the ledger instead (retry-ledger.test.ts).
  h = await startHarness({
    emulator: { accounts: [EMAIL], messages: 30, seed: 11, attachments: false, addedNotFoundRate: 0 },
  });
  accountId = await connectTestAccount(h, EMAIL);
  const workers = h.app.startWorkers({ maintenance: false });
  await h.app.enqueueBackfill(accountId, { reason: "connect" });
  await waitFor("backfill", async () => (await backfillDone(h, accountId)) && (await queuesIdle(h)), 30_000);
  await workers.close();

  deps = await directSyncDeps(h, EMAIL);
}, 60_000);
afterAll(async () => {
  await h?.close();
});

const cursor = async () => BigInt((await syncState(h, accountId)).history_id ?? "0");
const storedIds = async () =>
  new Set(
    (
      await h.app.db
        .selectFrom("messages")
        .select("gmail_id")
        .where("account_id", "=", accountId)
        .where("deleted_at", "is", null)
        .execute()
    ).map((r) => r.gmail_id),
  );

it("a 500-forever message never holds the cursor: ledger, backoff, parked only after MAX attempts over 30 minutes, hourly retry, CLI", {
  timeout: 60_000,
}, async () => {
  const start = await cursor();
  const before = await h.emulator.control.deliver(EMAIL, { attachments: false });
  // The failure is set before the delivery shows up in history, so no run ever sees it succeed.
  const poisonId = (await h.emulator.control.deliver(EMAIL, { attachments: false })).id;
  await h.emulator.control.failMessage(EMAIL, poisonId, { status: 500 });
  const after = [];
  for (let i = 0; i < 3; i++) after.push(await h.emulator.control.deliver(EMAIL, { attachments: false }));
  const others = [before, ...after].map((m) => m.id);
  const mailboxId = BigInt((await h.emulator.control.mailbox(EMAIL)).historyId);
  expect(start).toBeLessThan(mailboxId);

  // One run: the others stored, the cursor past the whole window, the poison message in the ledger.
  await expect(runIncremental(deps, { accountId, reason: "manual" })).resolves.toMatchObject({ advanced: true });
  expect(await cursor()).toBeGreaterThanOrEqual(mailboxId);
  const stored = await storedIds();
  for (const id of others) expect(stored.has(id), `message ${id} stored`).toBe(true);
  expect(stored.has(poisonId)).toBe(false);
  const open = async () => (await listDeadLetters(h.app.db, { accountId }))[0];
  expect(await open()).toMatchObject({ gmailId: poisonId, attempts: 1, parkedAt: null });
  expect((await open())?.nextAttemptAt?.getTime()).toBeGreaterThan(Date.now() - 1000);
  // …and its retry is scheduled as a job of its own (the cursor does not wait for it).
  const retryJobs = (await h.app.queues.incremental.getJobs(["delayed", "waiting"])).filter(
    (j) => j.name === JOB_NAMES.retryMessages,
  );
  expect(retryJobs.map((j) => j.data)).toContainEqual({ accountId });

  // The retry step tries it again each time it is due: five quick failures park nothing (a short
  // outage is not a dead letter)…
  const makeDue = () =>
    sql`UPDATE dead_letters SET next_attempt_at = now() WHERE account_id = ${accountId}`.execute(h.app.db);
  for (let attempt = 2; attempt <= MAX_MESSAGE_ATTEMPTS; attempt++) {
    await makeDue();
    await expect(runRetryJob(deps, { accountId })).resolves.toMatchObject({
      retried: 1,
      stored: 0,
      retrying: 1,
      parked: 0,
    });
    expect(await open()).toMatchObject({ attempts: attempt, parkedAt: null });
  }
  // …nor does a job that finds nothing due fetch anything.
  await expect(runRetryJob(deps, { accountId })).resolves.toMatchObject({ retried: 0 });
  // Failing for over MIN_PARK_AGE_MINUTES as well: parked, and next tried an hour later.
  await sql`UPDATE dead_letters SET first_failed_at = now() - make_interval(mins => ${MIN_PARK_AGE_MINUTES + 1}), next_attempt_at = now() WHERE account_id = ${accountId}`.execute(
    h.app.db,
  );
  await expect(runRetryJob(deps, { accountId })).resolves.toMatchObject({ retried: 1, parked: 1 });
  const [parked] = await listDeadLetters(h.app.db, { parkedOnly: true });
  expect(parked).toMatchObject({ gmailId: poisonId, attempts: MAX_MESSAGE_ATTEMPTS + 1, email: EMAIL });
  expect(parked?.parkedAt).toBeInstanceOf(Date);
  expect(parked?.nextAttemptAt?.getTime()).toBeGreaterThan(Date.now() + 50 * 60_000);

  // The hourly tick asks for a retry of every account with a due row, parked ones included.
  const tick = async () => {
    const asked: number[] = [];
    const mdeps = {
      db: h.app.db,
      config: h.app.config,
      log: h.app.log,
      enqueueRetry: async (id: number) => void asked.push(id),
    } as unknown as MaintenanceDeps;
    await processMaintenanceJob({ name: TICKS.retryLedger, data: {} }, mdeps);
    return asked;
  };
  expect(await tick()).toEqual([]);
  await makeDue();
  expect(await tick()).toEqual([accountId]);

  // Bounded: every attempt tried it at most maxAttempts times (and at least once).
  const gets = (await h.emulator.control.stats()).injectedFailures?.[EMAIL]?.[poisonId] ?? 0;
  expect(gets).toBeGreaterThanOrEqual(MAX_MESSAGE_ATTEMPTS + 1);
  expect(gets).toBeLessThanOrEqual((MAX_MESSAGE_ATTEMPTS + 1) * DEFAULT_RETRY.maxAttempts);

  // A later sync neither fetches it again nor holds the cursor.
  const next = await h.emulator.control.deliver(EMAIL, { attachments: false });
  await expect(runIncremental(deps, { accountId, reason: "manual" })).resolves.toMatchObject({ advanced: true });
  expect((await storedIds()).has(next.id)).toBe(true);
  expect((await h.emulator.control.stats()).injectedFailures?.[EMAIL]?.[poisonId]).toBe(gets);

  // The CLI lists it; once Gmail answers again, --retry stores it and the database equals the mailbox.
  const listed = await runCli(["dead-letters", "--json"], h.env);
  expect(listed.code, listed.stderr).toBe(0);
  const rows = JSON.parse(listed.stdout.trim().split("\n").pop() as string) as Array<{
    gmailId: string;
    email: string;
    attempts: number;
  }>;
  expect(rows).toEqual([
    expect.objectContaining({ gmailId: poisonId, email: EMAIL, attempts: MAX_MESSAGE_ATTEMPTS + 1 }),
  ]);

  await h.emulator.control.failMessage(EMAIL, poisonId, { status: 0 });
  const retried = await runCli(["dead-letters", "--retry", "--json"], h.env);
  expect(retried.code, retried.stderr).toBe(0);
  expect(JSON.parse(retried.stdout.trim().split("\n").pop() as string)).toMatchObject({
    retried: 1,
    stored: 1,
    failed: 0,
  });
  expect((await storedIds()).has(poisonId)).toBe(true);
  expect(await listDeadLetters(h.app.db)).toHaveLength(0);
  await expectDbEqualsMailbox(h, accountId, EMAIL);
});

it("dead-letters --retry stores through the sync's store step: a parked message Gmail no longer has is soft-deleted and resolved", async () => {
  const [victim] = [...(await storedIds())];
  expect(victim).toBeDefined();
  await h.app.db.transaction().execute((trx) =>
    recordMessageFailure(trx, accountId, victim as string, {
      reason: "test",
      detail: "parked by hand",
      permanent: true,
    }),
  );
  await h.emulator.control.deleteMessage(EMAIL, victim as string);
  const retried = await runCli(["dead-letters", "--retry", "--json"], h.env);
  expect(retried.code, retried.stderr).toBe(0);
  expect(JSON.parse(retried.stdout.trim().split("\n").pop() as string)).toMatchObject({
    retried: 1,
    stored: 0,
    gone: 1,
    failed: 0,
  });
  expect((await storedIds()).has(victim as string)).toBe(false);
  expect(await listDeadLetters(h.app.db)).toHaveLength(0);
});
