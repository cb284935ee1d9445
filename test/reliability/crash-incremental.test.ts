// SIGKILL of a worker child process (bin/gmail-sync.js worker) in the middle of an incremental
// sync: a long history window (many deliveries, deletions and label changes) is applied in
// committed slices; the worker dies after the first slice, a new worker takes over the orphaned
// job and applies the rest from the slice's cursor. Ends converged: database = mailbox, no
// duplicate, no temp file, no stuck or failed job.
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  backfillDone,
  connectTestAccount,
  type Harness,
  queuesIdle,
  startHarness,
  syncState,
  waitFor,
} from "../sync/harness.ts";
import { countRequests, expectConverged, killAllWorkerChildren, poll, startWorkerChild } from "./helpers/crash.ts";

const EMAIL = "ivan@example.com";
const INITIAL = 300;
const DELIVERED = 1200; // > 2 slices of 500 additions
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    emulator: { accounts: [EMAIL], messages: INITIAL, seed: 21, attachments: false },
    env: { INCLUDE_SPAM_TRASH: "true" },
  });
});
afterAll(async () => {
  killAllWorkerChildren();
  await h?.close();
});

/** Runs `fn` over `items` with at most `n` in flight (the emulator's control API over HTTP). */
async function inBatches<T>(items: T[], n: number, fn: (item: T) => Promise<unknown>): Promise<void> {
  for (let i = 0; i < items.length; i += n) await Promise.all(items.slice(i, i + n).map(fn));
}

it("SIGKILL while an incremental sync is active, restart: resumes from the last committed slice and converges", {
  timeout: 90_000,
}, async () => {
  const accountId = await connectTestAccount(h, EMAIL);
  // The backfill runs in this process (fast); the incremental sync is the child's.
  const inProcess = h.app.startWorkers({ maintenance: false });
  await h.app.enqueueBackfill(accountId, { reason: "connect" });
  await waitFor("backfill", () => backfillDone(h, accountId), 30_000);
  await waitFor("queues idle after backfill", () => queuesIdle(h), 30_000);
  await inProcess.close();
  const startCursor = BigInt((await syncState(h, accountId)).history_id ?? "0");

  // A long window: deliveries, deletions of old and of just-delivered messages, label changes.
  const before = (await h.emulator.control.mailbox(EMAIL)).messages.map((m) => m.id);
  const delivered: string[] = [];
  await inBatches(
    Array.from({ length: DELIVERED }, (_, i) => i),
    50,
    async () => delivered.push((await h.emulator.control.deliver(EMAIL, { attachments: false })).id),
  );
  delivered.sort(); // deliveries finish in any order; the picks below must not depend on it
  await inBatches(before.slice(0, 60), 20, (id) => h.emulator.control.deleteMessage(EMAIL, id));
  await inBatches(
    delivered.filter((_, i) => i % 10 === 3),
    20,
    (id) => h.emulator.control.deleteMessage(EMAIL, id),
  );
  await inBatches(before.slice(60, 160), 20, (id) =>
    h.emulator.control.modifyLabels(EMAIL, id, { add: ["STARRED"], remove: ["UNREAD"] }),
  );
  await inBatches(
    delivered.filter((_, i) => i % 10 === 5),
    20,
    (id) => h.emulator.control.modifyLabels(EMAIL, id, { add: ["TRASH"], remove: ["INBOX"] }),
  );
  const target = BigInt((await h.emulator.control.mailbox(EMAIL)).historyId);
  const getsBefore = countRequests(await h.emulator.control.stats(), "messages.get");

  // A quota low enough that one slice of 500 fetches takes about a second: the kill lands mid-window.
  const first = startWorkerChild(h, { GMAIL_QUOTA_UNITS_PER_SECOND: "2500" });
  await h.app.enqueueIncremental(accountId, { reason: "manual" });
  const sliceCursor = await poll(
    "the first slice to commit",
    async () => {
      const c = BigInt((await syncState(h, accountId)).history_id ?? "0");
      return c > startCursor ? c : null;
    },
    45_000,
    10,
  );
  expect((await h.app.queues.incremental.getJobCounts("active")).active, "incremental job active at the kill").toBe(1);
  first.child.kill("SIGKILL");
  expect((await first.exited).signal).toBe("SIGKILL");
  const atKill = BigInt((await syncState(h, accountId)).history_id ?? "0");
  expect(atKill, "killed mid-window, not after it").toBeLessThan(target);
  expect(atKill).toBeGreaterThanOrEqual(sliceCursor);
  const getsAtKill = countRequests(await h.emulator.control.stats(), "messages.get");

  const second = startWorkerChild(h);
  await poll(
    "the cursor to reach the mailbox and the queues to drain",
    async () => {
      const s = await syncState(h, accountId);
      return s.history_id !== null && BigInt(s.history_id) >= target && (await queuesIdle(h));
    },
    45_000,
    100,
  );
  // The committed slice was not fetched again: the second worker fetched less than the window.
  const getsAfter = countRequests(await h.emulator.control.stats(), "messages.get") - getsAtKill;
  expect(getsAtKill - getsBefore).toBeGreaterThanOrEqual(500);
  expect(getsAfter).toBeLessThan(DELIVERED);

  const counts = await expectConverged(h, accountId, EMAIL);
  expect(counts.messages).toBe(INITIAL + DELIVERED - 60 - DELIVERED / 10);
  const labelled = await h.app.db
    .selectFrom("messages")
    .select("label_ids")
    .where("account_id", "=", accountId)
    .where("gmail_id", "=", before[100] as string)
    .executeTakeFirstOrThrow();
  expect(labelled.label_ids).toContain("STARRED");
  second.child.kill("SIGKILL");
});
