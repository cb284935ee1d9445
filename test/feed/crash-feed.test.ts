// SIGKILL of a worker child process between the Gmail fetch and the commit — during a backfill
// page (messages fetched, attachments extracted, nothing committed) and during an incremental
// sync (history listed, messages being fetched) — leaves no change without its row and no row
// without its change; after a restart the run completes and the feed, replayed, equals the
// database, every change once.
import { afterAll, beforeAll, expect, it } from "vitest";
import { changeFeedBounds } from "../../src/db/changes.ts";
import { readFeedPage } from "../../src/feed/read.ts";
import {
  countRequests,
  expectConverged,
  killAllWorkerChildren,
  poll,
  startWorkerChild,
} from "../reliability/helpers/crash.ts";
import {
  backfillDone,
  connectTestAccount,
  type Harness,
  queuesIdle,
  startHarness,
  syncState,
} from "../sync/harness.ts";
import { expectFeedMatchesDatabase } from "./replay.ts";

const EMAIL = "kim@example.com";
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    // Post-push 404 off: the kills must land between a fetch and its commit, not in a ledger retry
    // (the retry ledger's own crash behaviour is test/sync/retry-ledger.test.ts's subject).
    emulator: { accounts: [EMAIL], messages: 400, seed: 23, attachments: true, hostile: false, addedNotFoundRate: 0 },
    env: { INCLUDE_SPAM_TRASH: "true" },
  });
});
afterAll(async () => {
  killAllWorkerChildren();
  await h?.close();
});

const fetches = async () => {
  const stats = await h.emulator.control.stats();
  return countRequests(stats, "messages.get") + countRequests(stats, "threads.get");
};
const messageRows = async (accountId: number) =>
  Number(
    (
      await h.app.db
        .selectFrom("messages")
        .select((eb) => eb.fn.countAll().as("n"))
        .where("account_id", "=", accountId)
        .executeTakeFirstOrThrow()
    ).n,
  );

it("SIGKILL mid-page and mid-history window: the feed and the rows commit together, and converge once", {
  timeout: 150_000,
}, async () => {
  const accountId = await connectTestAccount(h, EMAIL);
  const afterConnect = (await changeFeedBounds(h.app.db)).head;

  // --- a backfill page: killed after its fetches began, before its commit ---
  await h.emulator.control.updateSettings({ latencyMs: 150 });
  const first = startWorkerChild(h);
  await h.app.enqueueBackfill(accountId, { reason: "connect" });
  await poll("the page's fetches to begin", async () => (await fetches()) > 20, 30_000, 20);
  first.child.kill("SIGKILL");
  expect((await first.exited).signal).toBe("SIGKILL");
  // Killed mid-run (a backfill may commit a page in slices: some may be in), with fetched
  // messages not committed; whatever did commit has its changes, and nothing else has.
  const mailboxSize = (await h.emulator.control.mailbox(EMAIL)).messages.length;
  const rowsAtKill = await messageRows(accountId);
  expect(rowsAtKill, "killed before the backfill finished").toBeLessThan(mailboxSize);
  const atKill = await expectFeedMatchesDatabase(h.app.db, accountId);
  expect(atKill.live).toBe(rowsAtKill);
  if (rowsAtKill === 0) expect((await changeFeedBounds(h.app.db)).head).toBe(afterConnect);

  await h.emulator.control.updateSettings({ latencyMs: 0 });
  const second = startWorkerChild(h);
  await poll(
    "the backfill to finish",
    async () => (await backfillDone(h, accountId)) && (await queuesIdle(h)),
    60_000,
    100,
  );
  await expectConverged(h, accountId, EMAIL);
  const afterBackfill = await expectFeedMatchesDatabase(h.app.db, accountId);
  expect(afterBackfill.live).toBe((await h.emulator.control.mailbox(EMAIL)).messages.length);
  second.child.kill("SIGKILL");
  await second.exited;

  // --- an incremental window: killed while its messages are fetched ---
  const box = await h.emulator.control.mailbox(EMAIL);
  const delivered: string[] = [];
  for (let i = 0; i < 120; i++)
    delivered.push((await h.emulator.control.deliver(EMAIL, { attachments: i % 4 === 0 })).id);
  for (const m of box.messages.slice(0, 15)) await h.emulator.control.deleteMessage(EMAIL, m.id);
  for (const m of box.messages.slice(15, 40))
    await h.emulator.control.modifyLabels(EMAIL, m.id, { add: ["STARRED"], remove: ["UNREAD"] });
  const cursorBefore = (await syncState(h, accountId)).history_id;
  const headBefore = (await changeFeedBounds(h.app.db)).head;
  const rowsBefore = await messageRows(accountId);
  const fetchesBefore = await fetches();

  await h.emulator.control.updateSettings({ latencyMs: 300 });
  const third = startWorkerChild(h);
  await h.app.enqueueIncremental(accountId, { reason: "manual" });
  await poll("the window's fetches to begin", async () => (await fetches()) > fetchesBefore, 30_000, 10);
  third.child.kill("SIGKILL");
  await third.exited;
  expect((await syncState(h, accountId)).history_id, "killed before the slice committed").toBe(cursorBefore);
  expect(await messageRows(accountId)).toBe(rowsBefore);
  expect((await changeFeedBounds(h.app.db)).head).toBe(headBefore);
  await expectFeedMatchesDatabase(h.app.db, accountId);

  await h.emulator.control.updateSettings({ latencyMs: 0 });
  const fourth = startWorkerChild(h);
  const target = BigInt((await h.emulator.control.mailbox(EMAIL)).historyId);
  await poll(
    "the orphaned sync to be taken over and finish",
    async () => {
      const s = await syncState(h, accountId);
      return s.history_id !== null && BigInt(s.history_id) >= target && (await queuesIdle(h));
    },
    60_000,
    100,
  );
  await expectConverged(h, accountId, EMAIL);
  await expectFeedMatchesDatabase(h.app.db, accountId);
  // The window's changes, each once and live: 120 added, 15 deleted, the relabels that changed something.
  const window = (await readFeedPage(h.app.db, { after: headBefore, limit: 10_000 })).changes;
  expect(window.every((c) => !c.historic)).toBe(true);
  const added = window.filter((c) => c.kind === "message.added").map((c) => c.gmailId);
  expect([...added].sort()).toEqual([...delivered].sort());
  expect(window.filter((c) => c.kind === "message.deleted")).toHaveLength(15);
  // A relabel that changes nothing (already STARRED, not UNREAD) is no change.
  const relabelled = box.messages
    .slice(15, 40)
    .filter((m) => !m.labelIds.includes("STARRED") || m.labelIds.includes("UNREAD")).length;
  expect(window.filter((c) => c.kind === "message.labels_changed")).toHaveLength(relabelled);
  fourth.child.kill("SIGKILL");
  await fourth.exited;
});
