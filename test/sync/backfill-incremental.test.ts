// A 2,000-message mailbox backfilled through the real queues and workers equals the mailbox, mail
// delivered/deleted/relabelled DURING the backfill included; then one incremental sync after more
// changes makes it equal again.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningWorkers } from "../../src/worker.ts";
import {
  backfillDone,
  connectTestAccount,
  expectDbEqualsMailbox,
  type Harness,
  queuesIdle,
  startHarness,
  syncState,
  syncToMailbox,
  waitFor,
} from "./harness.ts";

const EMAIL = "alice@example.com";
let h: Harness;
let workers: RunningWorkers;

beforeAll(async () => {
  h = await startHarness({
    emulator: { accounts: [EMAIL], messages: 2000, seed: 7, attachments: !process.env.NOATT },
    env: { INCLUDE_SPAM_TRASH: "true" },
  });
  workers = h.app.startWorkers({ maintenance: false });
});
afterAll(async () => {
  await h?.close();
});

describe("backfill then incremental", () => {
  let accountId: number;

  it("backfills 2,000 messages, with changes made during the backfill, to equality", { timeout: 120_000 }, async () => {
    accountId = await connectTestAccount(h, EMAIL);
    const before = await h.emulator.control.mailbox(EMAIL);
    await h.app.enqueueBackfill(accountId, { reason: "connect" });

    // While the backfill pages: once the first page is in, change the mailbox.
    await waitFor("first backfill page", async () => (await syncState(h, accountId)).backfill_pages >= 1, 60_000, 20);
    expect((await syncState(h, accountId)).backfill_phase).toBe("listing");
    for (let i = 0; i < 5; i++) await h.emulator.control.deliver(EMAIL);
    const victims = before.messages.slice(0, 3).map((m) => m.id); // newest: on the page already stored
    const lateVictims = before.messages.slice(-2).map((m) => m.id); // oldest: not listed yet
    for (const id of [...victims, ...lateVictims]) await h.emulator.control.deleteMessage(EMAIL, id);
    const relabel = before.messages.slice(10, 13).map((m) => m.id);
    for (const id of relabel)
      await h.emulator.control.modifyLabels(EMAIL, id, { add: ["STARRED"], remove: ["UNREAD"] });
    // The push path would do this: an incremental sync while the backfill still pages.
    await h.app.enqueueIncremental(accountId, { reason: "push", pushReceivedAt: Date.now() });

    await waitFor("backfill to finish", () => backfillDone(h, accountId), 90_000, 100);
    await waitFor("queues to drain", () => queuesIdle(h), 30_000);
    await syncToMailbox(h, accountId, EMAIL);
    const counts = await expectDbEqualsMailbox(h, accountId, EMAIL);
    expect(counts.messages).toBe(2000 + 5 - 5);
    expect(counts.attachments).toBeGreaterThan(0);

    const state = await syncState(h, accountId);
    expect(BigInt(state.pinned_history_id ?? "0")).toBeLessThanOrEqual(BigInt(before.historyId));
    expect(state.backfill_listed).toBeGreaterThanOrEqual(1995);
    // Headers and bodies were parsed and stored, not just ids.
    const sample = await h.app.db
      .selectFrom("messages")
      .select(["subject", "from_address", "body_text"])
      .where("account_id", "=", accountId)
      .limit(50)
      .execute();
    expect(sample.filter((m) => m.subject && m.from_address && m.body_text).length).toBeGreaterThan(40);
  });

  it("one incremental sync after deliveries, deletions and label changes makes it equal again", async () => {
    const box = await h.emulator.control.mailbox(EMAIL);
    for (let i = 0; i < 10; i++) await h.emulator.control.deliver(EMAIL);
    const added = await h.emulator.control.deliver(EMAIL);
    await h.emulator.control.deleteMessage(EMAIL, added.id); // added and deleted in one window: netted
    for (const m of box.messages.slice(100, 110)) await h.emulator.control.deleteMessage(EMAIL, m.id);
    for (const m of box.messages.slice(200, 210))
      await h.emulator.control.modifyLabels(EMAIL, m.id, { add: ["IMPORTANT"], remove: ["INBOX"] });
    const getsBefore = countRequests(await h.emulator.control.stats(), "messages.get", "200");

    await syncToMailbox(h, accountId, EMAIL);
    await expectDbEqualsMailbox(h, accountId, EMAIL);
    const deleted = await h.app.db
      .selectFrom("messages")
      .select("gmail_id")
      .where("account_id", "=", accountId)
      .where("deleted_at", "is not", null)
      .execute();
    expect(deleted.map((d) => d.gmail_id)).toEqual(
      expect.arrayContaining(box.messages.slice(100, 110).map((m) => m.id)),
    );
    // Only the 10 surviving new messages were fetched (label changes come from history, the
    // added-then-deleted one was netted out).
    // (answered ones: a message Gmail announces may answer 404 for a moment and be asked again)
    const gets = countRequests(await h.emulator.control.stats(), "messages.get", "200") - getsBefore;
    expect(gets).toBeLessThanOrEqual(10);
    await workers.close();
  });
});

function countRequests(
  stats: { requests: Record<string, Record<string, number>> },
  method: string,
  status?: string,
): number {
  let n = 0;
  for (const [name, byStatus] of Object.entries(stats.requests))
    if (name.includes(method))
      for (const [s, c] of Object.entries(byStatus)) if (status === undefined || s === status) n += c;
  return n;
}
