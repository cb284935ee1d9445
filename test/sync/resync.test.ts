// An expired cursor (history.list 404) leads to the reconciling resync: a fresh pinned cursor, a
// complete re-listing, and soft-deletion of exactly the messages deleted while history was lost —
// none duplicated, none lost, changes in the lost window (labels, deliveries) repaired too.
import { afterAll, beforeAll, expect, it } from "vitest";
import { fullResyncsTotal } from "../../src/metrics.ts";
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

const EMAIL = "bob@example.com";
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    emulator: { accounts: [EMAIL], messages: 300, seed: 11 },
    env: { INCLUDE_SPAM_TRASH: "true" },
  });
  h.app.startWorkers({ maintenance: false });
});
afterAll(async () => {
  await h?.close();
});

async function resyncCount(): Promise<number> {
  const m = await fullResyncsTotal.get();
  return m.values.find((v) => v.labels.reason === "history_expired")?.value ?? 0;
}

it("expired cursor → reconciling resync: deleted-in-the-gap soft-deleted, none duplicated, none lost", {
  timeout: 90_000,
}, async () => {
  const accountId = await connectTestAccount(h, EMAIL);
  await h.app.enqueueBackfill(accountId, { reason: "connect" });
  await waitFor("backfill", () => backfillDone(h, accountId), 60_000);
  await syncToMailbox(h, accountId, EMAIL);
  await expectDbEqualsMailbox(h, accountId, EMAIL);
  const cursorBefore = (await syncState(h, accountId)).history_id as string;

  // Changes nobody syncs, then the history that describes them is gone.
  const box = await h.emulator.control.mailbox(EMAIL);
  const lost = box.messages.slice(20, 25).map((m) => m.id);
  for (const id of lost) await h.emulator.control.deleteMessage(EMAIL, id);
  for (const m of box.messages.slice(40, 43))
    await h.emulator.control.modifyLabels(EMAIL, m.id, { add: ["STARRED"], remove: ["INBOX"] });
  for (let i = 0; i < 3; i++) await h.emulator.control.deliver(EMAIL);
  await h.emulator.control.expireHistory(EMAIL);
  const resyncsBefore = await resyncCount();

  await h.app.enqueueIncremental(accountId, { reason: "poll" });
  await waitFor(
    "resync to start",
    async () =>
      (await syncState(h, accountId)).resync_reason === "history_expired" || (await resyncCount()) > resyncsBefore,
    30_000,
    20,
  );
  await waitFor(
    "resync to finish",
    async () => {
      const s = await syncState(h, accountId);
      return s.backfill_phase === "done" && s.resync_reason === null && (await queuesIdle(h));
    },
    60_000,
  );
  await syncToMailbox(h, accountId, EMAIL);

  await expectDbEqualsMailbox(h, accountId, EMAIL);
  const rows = await h.app.db
    .selectFrom("messages")
    .select(["gmail_id", "deleted_at"])
    .where("account_id", "=", accountId)
    .where("gmail_id", "in", lost)
    .execute();
  expect(rows).toHaveLength(lost.length);
  expect(rows.every((r) => r.deleted_at !== null)).toBe(true);
  expect(await resyncCount()).toBe(resyncsBefore + 1);
  const after = await syncState(h, accountId);
  expect(BigInt(after.history_id as string)).toBeGreaterThan(BigInt(cursorBefore));
});
