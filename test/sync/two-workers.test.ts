// Two `gmail-sync worker` child processes on ONE account (300 messages, no attachments), with the
// emulator's per-user quota and GMAIL_QUOTA_UNITS_PER_SECOND both at 100 units/s:
// - they backfill it, then race for a stream of incremental syncs (a delivery and a push-like
//   enqueue every 150 ms), and stay under the quota: the emulator answers no 429 after the first
//   second (except a few right after the frozen worker below wakes up);
// - they never run two syncs of the account at once, even when BullMQ hands the same job to both:
//   worker A is frozen (SIGSTOP) in the middle of an incremental sync until its job lock expires
//   and worker B takes the "stalled" job over. B must be refused by the account's sync lock (the
//   cursor does not move while A is frozen) and, once A resumes and commits, nothing is fetched
//   twice — the emulator counts successful messages.get per message id, and two overlapping syncs
//   from the same cursor would both fetch the window's messages.
// (test/reliability/quota-pressure.test.ts covers three workers over ten accounts.)
import { setTimeout as sleep } from "node:timers/promises";
import { type ChildProcess, spawn } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { cliPath } from "../helpers/cli.ts";
import {
  backfillDone,
  connectTestAccount,
  expectDbEqualsMailbox,
  type Harness,
  queuesIdle,
  startHarness,
  syncState,
  waitFor,
} from "./harness.ts";

const EMAIL = "wendy@example.com";
const QUOTA = 100;
const MESSAGES = 300;
let h: Harness;

interface WorkerChild {
  child: ChildProcess;
  output: () => string;
}
const workers: WorkerChild[] = [];

beforeAll(async () => {
  h = await startHarness({
    emulator: { accounts: [EMAIL], messages: MESSAGES, seed: 2202, attachments: false, quotaUnitsPerSecond: QUOTA },
    env: { INCLUDE_SPAM_TRASH: "true", GMAIL_QUOTA_UNITS_PER_SECOND: String(QUOTA) },
  });
});
afterAll(async () => {
  await Promise.all(
    workers.map(async ({ child }) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      child.kill("SIGCONT");
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(10_000, undefined, { ref: false })]);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }),
  );
  await h?.close();
});

function startWorker(): WorkerChild {
  let out = "";
  const child = spawn(process.execPath, [cliPath, "worker", "--no-http", "--concurrency", "2"], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...h.env, LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d) => (out += d));
  child.stderr?.on("data", (d) => (out += d));
  const w = { child, output: () => out };
  workers.push(w);
  return w;
}

const sum = (o: Record<string, number> | undefined) => Object.values(o ?? {}).reduce((a, b) => a + b, 0);

it("two workers on one account: under the quota (no 429 after the first second), never two syncs at once", {
  timeout: 90_000,
}, async () => {
  const accountId = await connectTestAccount(h, EMAIL);
  const a = startWorker();
  const b = startWorker();
  await h.app.enqueueBackfill(accountId, { reason: "connect" });
  const started = Date.now();
  // "The first second" starts with the first message fetch (the job is picked up, the token
  // refreshed, the profile read and the page listed before that).
  await waitFor(
    "the first fetch",
    async () => sum((await h.emulator.control.stats()).requests["gmail.users.messages.get"]) > 0,
    20_000,
    10,
  );
  await new Promise((r) => setTimeout(r, 1000));
  const afterFirstSecond = await h.emulator.control.stats();
  await waitFor("backfill", async () => (await backfillDone(h, accountId)) && (await queuesIdle(h)), 40_000, 100);
  const afterBackfill = await h.emulator.control.stats();

  // Steady state: both workers race for incremental syncs while mail keeps arriving.
  for (let i = 0; i < 20; i++) {
    await h.emulator.control.deliver(EMAIL, { attachments: false });
    await h.app.enqueueIncremental(accountId, { reason: "push", pushReceivedAt: Date.now() });
    await new Promise((r) => setTimeout(r, 150));
  }
  await waitFor(
    "steady-state syncs",
    async () =>
      (await syncState(h, accountId)).history_id === (await h.emulator.control.mailbox(EMAIL)).historyId &&
      (await queuesIdle(h)),
    20_000,
  );

  const afterSteady = await h.emulator.control.stats();

  // The same job on both workers: B is paused so that A takes the sync, A is frozen mid-fetch, and
  // B — resumed — finds A's job stalled and runs it again, while A still holds the account's lock.
  b.child.kill("SIGSTOP");
  const cursorBefore = (await syncState(h, accountId)).history_id;
  const window = [];
  for (let i = 0; i < 60; i++) window.push((await h.emulator.control.deliver(EMAIL, { attachments: false })).id);
  const getsBefore = sum(await h.emulator.control.messageGets(EMAIL));
  await h.app.enqueueIncremental(accountId, { reason: "push", pushReceivedAt: Date.now() });
  const fetchedAtFreeze = await waitFor(
    "A to start fetching the window",
    async () => {
      const n = sum(await h.emulator.control.messageGets(EMAIL)) - getsBefore;
      return n > 0 ? n : undefined;
    },
    15_000,
    10,
  );
  a.child.kill("SIGSTOP");
  b.child.kill("SIGCONT");
  expect(fetchedAtFreeze, "A was frozen in the middle of its fetch").toBeLessThan(window.length);
  // B's stall check hands it A's job (A cannot renew its 2 s job lock); B's run must be refused
  // by the account's sync lock and parked (delayed), not run.
  await waitFor("B to take over the stalled job", async () => b.output().includes("job stalled"), 20_000, 50);
  await waitFor(
    "B's run to be refused and parked",
    async () => ((await h.app.queues.incremental.getJobCounts("delayed")).delayed ?? 0) > 0,
    10_000,
    50,
  );
  await new Promise((r) => setTimeout(r, 2500)); // B tries again (busy retry is 2 s): still refused
  expect((await syncState(h, accountId)).history_id, "no second sync committed while A held the account").toBe(
    cursorBefore,
  );
  a.child.kill("SIGCONT");

  const mailbox = await h.emulator.control.mailbox(EMAIL);
  await waitFor(
    "the window to be synced",
    async () =>
      BigInt((await syncState(h, accountId)).history_id ?? "0") >= BigInt(mailbox.historyId) && (await queuesIdle(h)),
    30_000,
  );
  const end = await h.emulator.control.stats();
  const seconds = (Date.now() - started) / 1000;

  for (const [i, w] of workers.entries())
    expect(w.child.exitCode, `worker ${i} exited:\n${w.output().slice(-2000)}`).toBeNull();
  const counts = await expectDbEqualsMailbox(h, accountId, EMAIL);
  expect(counts.messages).toBe(MESSAGES + 20 + 60);
  // Nothing fetched twice: no two syncs of the account overlapped (backfill, steady state, the
  // stalled job).
  const gets = await h.emulator.control.messageGets(EMAIL);
  const twice = Object.entries(gets).filter(([, n]) => n > 1);
  expect(twice, `messages fetched more than once (${twice.length})`).toEqual([]);
  for (const id of window) expect(gets[id], id).toBe(1);

  // Under the quota: the emulator (100 units/s, one second of burst) answered no 429 after the
  // first second through the backfill and the steady state, and its charge over the run stayed
  // within the quota. The frozen worker is not a steady state: it had charged our bucket for a
  // batch it sent only when it woke up 5 s later, into a bucket that had refilled meanwhile (our
  // bucket charges a request when it is sent, Gmail's when it arrives), so its batches meet a few
  // 429s (seen: 1-5 sub-requests); they are retried. Allowed: the sub-requests of the two batches
  // a worker has in flight (2 × 10 at this quota).
  const rateLimitedSteady = afterSteady.rateLimited - afterFirstSecond.rateLimited;
  const rateLimitedLater = end.rateLimited - afterFirstSecond.rateLimited;
  const units = end.quotaUnits[EMAIL] ?? 0;
  console.log(
    `two workers: ${seconds.toFixed(1)} s, ${units} units (${(units / seconds).toFixed(1)}/s), 429s: ${afterFirstSecond.rateLimited} in the first second, ${rateLimitedLater} after (backfill ${afterBackfill.rateLimited - afterFirstSecond.rateLimited}, steady ${afterSteady.rateLimited - afterBackfill.rateLimited}, stalled job ${end.rateLimited - afterSteady.rateLimited}); A frozen after ${fetchedAtFreeze} of ${window.length} fetches`,
  );
  expect(rateLimitedSteady, `429s after the first second: ${JSON.stringify(afterSteady.requests)}`).toBe(0);
  expect(end.rateLimited - afterSteady.rateLimited, "429s around the frozen worker").toBeLessThanOrEqual(
    2 * (QUOTA / 10),
  );
  expect(units / seconds).toBeLessThanOrEqual(QUOTA + QUOTA / seconds);
  const failed = await h.app.queues.incremental.getJobCounts("failed");
  expect(failed.failed).toBe(0);
});
