// The weekly reconcile and a history-expired resync are list-only: they fetch what we do not hold
// (unknown or soft-deleted ids), never a message we hold — quota units counted by the emulator.
// Target (issue 20): a reconcile of a synced 20,000-message mailbox costs at most 1.2× its listing's
// own quota (messages.list, 5 units per 500 ids) plus 5–10 units per new message.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { insertHeldMessages, markSynced } from "../../src/db/bulk-fixtures.ts";
import { type BackfillPageResult, runBackfillPage } from "../../src/sync/backfill.ts";
import {
  backfillDone,
  connectTestAccount,
  directSyncDeps,
  expectDbEqualsMailbox,
  type Harness,
  queuesIdle,
  startHarness,
  syncState,
  syncToMailbox,
  waitFor,
} from "./harness.ts";

const BIG = "big@example.com";
const SMALL = "small@example.com";
// The mailbox size of the reconcile measurement (RECONCILE_TEST_MESSAGES to change it).
const MESSAGES = Number(process.env.RECONCILE_TEST_MESSAGES ?? 20_000);
const NEW = 40;
const DELETED = 25;
const LIST_UNITS_PER_PAGE = 5;

let h: Harness;

/** A harness per describe block: each its own emulator (mailbox size), database and Redis prefix. */
function withHarness(email: string, messages: number): void {
  beforeAll(async () => {
    h = await startHarness({
      // Spam and Trash listed too, so that the mirror equals the whole mailbox.
      env: { INCLUDE_SPAM_TRASH: "true" },
      emulator: {
        accounts: [email],
        messages,
        seed: 20,
        attachments: false,
        // The steady cost: a delivery racing its own fetch (re-asked) is bench:push's subject.
        addedNotFoundRate: 0,
      },
    });
  }, 120_000);
  afterAll(async () => {
    await h?.close();
  });
}

const units = async (email: string) => (await h.emulator.control.stats()).quotaUnits[email] ?? 0;
const calls = async (method: string) => (await h.emulator.control.stats()).requests[method]?.["200"] ?? 0;

async function liveAndDeleted(accountId: number) {
  const rows = await h.app.db
    .selectFrom("messages")
    .select(["gmail_id", "deleted_at"])
    .where("account_id", "=", accountId)
    .execute();
  return {
    live: new Set(rows.filter((r) => r.deleted_at === null).map((r) => r.gmail_id)),
    deleted: new Set(rows.filter((r) => r.deleted_at !== null).map((r) => r.gmail_id)),
  };
}

describe("list-only reconcile", () => {
  withHarness(BIG, MESSAGES);
  it(`a synced ${MESSAGES}-message mailbox: ≤ 1.2× the listing's quota + ≤ 10 units per new message; new and deleted mail found`, {
    timeout: 300_000,
  }, async () => {
    const accountId = await connectTestAccount(h, BIG);
    // The synced state, written directly: every message held, the backfill done long ago.
    const box = await h.emulator.control.mailbox(BIG);
    expect(box.messages.length).toBe(MESSAGES);
    await insertHeldMessages(
      h.app.db,
      accountId,
      box.messages.map((m) => ({
        gmailId: m.id,
        threadId: m.threadId,
        labelIds: m.labelIds,
        historyId: box.historyId,
      })),
    );
    await markSynced(h.app.db, accountId, box.historyId, 7);

    // What happened meanwhile, unseen (no incremental sync runs): new mail, deletions.
    const delivered: string[] = [];
    for (let i = 0; i < NEW; i++) delivered.push((await h.emulator.control.deliver(BIG)).id);
    const deleted = box.messages.slice(100, 100 + DELETED).map((m) => m.id);
    for (const id of deleted) await h.emulator.control.deleteMessage(BIG, id);
    const gotBefore = await h.emulator.control.messageGets(BIG);

    const deps = await directSyncDeps(h, BIG);
    const unitsBefore = await units(BIG);
    const listsBefore = await calls("gmail.users.messages.list");
    const getsBefore = await calls("gmail.users.messages.get");
    const threadGetsBefore = await calls("gmail.users.threads.get");
    const attachmentGetsBefore = await calls("gmail.users.messages.attachments.get");
    const started = Date.now();
    const turns: Array<Exclude<BackfillPageResult, { skipped: unknown }>> = [];
    for (let i = 0; ; i++) {
      const r = await runBackfillPage(deps, { accountId, reason: "reconcile", ...(i > 0 ? { resumeOnly: true } : {}) });
      if ("skipped" in r) throw new Error(`reconcile turn skipped: ${r.skipped}`);
      turns.push(r);
      if (r.done) break;
    }
    const seconds = (Date.now() - started) / 1000;
    const spent = (await units(BIG)) - unitsBefore;
    const lists = (await calls("gmail.users.messages.list")) - listsBefore;
    // Units of the fetches (new mail): messages.get 5, threads.get 10, attachments.get 5.
    const fetchUnits =
      5 * ((await calls("gmail.users.messages.get")) - getsBefore) +
      10 * ((await calls("gmail.users.threads.get")) - threadGetsBefore) +
      5 * ((await calls("gmail.users.messages.attachments.get")) - attachmentGetsBefore);
    const after = await h.emulator.control.mailbox(BIG);
    const listed = after.messages.length;
    expect(listed).toBe(MESSAGES + NEW - DELETED);
    expect(lists).toBe(Math.ceil(listed / 500));
    const listingUnits = lists * LIST_UNITS_PER_PAGE;
    console.info(
      `reconcile of ${MESSAGES} held + ${NEW} new − ${DELETED} deleted: ${spent} units in ${turns.length} turns, ` +
        `${seconds.toFixed(1)} s; listing ${listingUnits} units; fetching the new mail ${fetchUnits} ` +
        `(${(fetchUnits / NEW).toFixed(2)} a message); the rest ${((spent - fetchUnits) / listingUnits).toFixed(3)}× the listing`,
    );
    expect(spent).toBeLessThanOrEqual(1.2 * listingUnits + 10 * NEW);
    expect(fetchUnits).toBeGreaterThanOrEqual(5 * NEW);
    expect(fetchUnits).toBeLessThanOrEqual(10 * NEW);
    expect(spent - fetchUnits).toBeLessThanOrEqual(1.2 * listingUnits);

    // Found: the new mail stored, the deletions soft-deleted by the sweep; nothing held was fetched.
    const { live, deleted: softDeleted } = await liveAndDeleted(accountId);
    for (const id of delivered) expect(live.has(id), `new ${id}`).toBe(true);
    for (const id of deleted) expect(softDeleted.has(id), `deleted ${id}`).toBe(true);
    expect(live).toEqual(new Set(after.messages.map((m) => m.id)));
    const gotAfter = await h.emulator.control.messageGets(BIG);
    const refetched = box.messages.filter((m) => (gotAfter[m.id] ?? 0) > (gotBefore[m.id] ?? 0));
    expect(refetched.map((m) => m.id)).toEqual([]);
    expect(await syncState(h, accountId)).toMatchObject({ backfill_phase: "done", resync_reason: null });
  });
});

describe("history-expired resync", () => {
  const KEEP = 600;
  withHarness(SMALL, KEEP);
  it("fetches only what it does not hold, and repairs labels changed in the gap from threads.list", {
    timeout: 180_000,
  }, async () => {
    // A real first backfill, through the workers.
    const workers = h.app.startWorkers({ maintenance: false });
    try {
      const accountId = await connectTestAccount(h, SMALL);
      await h.app.enqueueBackfill(accountId, { reason: "connect" });
      await waitFor("first backfill", () => backfillDone(h, accountId), 120_000);
      await syncToMailbox(h, accountId, SMALL);
      await expectDbEqualsMailbox(h, accountId, SMALL);

      // Changes nobody syncs; then the history that describes them expires.
      const box = await h.emulator.control.mailbox(SMALL);
      const gone = box.messages.slice(10, 15).map((m) => m.id);
      for (const id of gone) await h.emulator.control.deleteMessage(SMALL, id);
      const relabelled = box.messages.slice(30, 33);
      for (const m of relabelled)
        await h.emulator.control.modifyLabels(SMALL, m.id, { add: ["STARRED"], remove: ["INBOX"] });
      const fresh: string[] = [];
      for (let i = 0; i < 3; i++) fresh.push((await h.emulator.control.deliver(SMALL)).id);
      await h.emulator.control.expireHistory(SMALL);
      const gotBefore = await h.emulator.control.messageGets(SMALL);
      const unitsBefore = await units(SMALL);

      await h.app.enqueueIncremental(accountId, { reason: "poll" });
      await waitFor("resync to start", async () => (await syncState(h, accountId)).resync_reason === "history_expired");
      await waitFor(
        "resync and label repair to finish",
        async () => (await syncState(h, accountId)).backfill_phase === "done" && (await queuesIdle(h)),
        120_000,
      );
      await syncToMailbox(h, accountId, SMALL);
      await expectDbEqualsMailbox(h, accountId, SMALL);

      // Held messages were not fetched again (threads.get minimal for the relabelled threads only).
      const gotAfter = await h.emulator.control.messageGets(SMALL);
      const refetched = box.messages.filter((m) => (gotAfter[m.id] ?? 0) > (gotBefore[m.id] ?? 0)).map((m) => m.id);
      expect(refetched).toEqual([]);
      for (const id of fresh) expect(gotAfter[id] ?? 0, `new ${id}`).toBeGreaterThan(0);
      const spent = (await units(SMALL)) - unitsBefore;
      // Re-fetching the mailbox cost ~4 units a message (2,400 here). Now: the listing (5), the
      // pin (1), threads.list (10), ≤ 10 per changed thread and per new message, history.list (2 each).
      console.info(`history-expired resync of ${KEEP} messages: ${spent} units`);
      expect(spent).toBeLessThanOrEqual(5 + 1 + 10 + 10 * (relabelled.length + gone.length) + 10 * fresh.length + 40);
    } finally {
      await workers.close();
    }
  });
});
