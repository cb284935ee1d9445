// A bulk change (mark 70,000 messages read and starred at once) reaches the mirror through one
// incremental sync: the window holds more entries than Postgres accepts bind parameters
// (65,535), Gmail writes it as records of up to 1,000 messages, and the sync applies it set-wise
// in bounded slices. The mirror is seeded straight from the emulator's ground truth (a 70,000-
// message backfill is not what this test is about).
import { sql } from "kysely";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { RunningWorkers } from "../../src/worker.ts";
import { connectTestAccount, type Harness, startHarness, syncState, syncToMailbox } from "./harness.ts";

const EMAIL = "bulk@example.com";
const COUNT = 70_000;
let h: Harness;
let workers: RunningWorkers;

beforeAll(async () => {
  h = await startHarness({ emulator: { accounts: [EMAIL], messages: COUNT, seed: 70, attachments: false } });
  workers = h.app.startWorkers({ maintenance: false });
}, 120_000);
afterAll(async () => {
  await workers?.close();
  await h?.close();
});

it("a 70,000-message bulk relabel converges with one incremental sync", { timeout: 240_000 }, async () => {
  const accountId = await connectTestAccount(h, EMAIL);
  const box = await h.emulator.control.mailbox(EMAIL);
  expect(box.messages.length).toBe(COUNT);
  // Seed the mirror as a finished backfill would have left it.
  for (let i = 0; i < box.messages.length; i += 10_000) {
    const chunk = box.messages.slice(i, i + 10_000);
    await sql`INSERT INTO messages (account_id, gmail_id, thread_id, history_id, label_ids)
      SELECT ${accountId}, g, t, ${box.historyId}::numeric, string_to_array(l, ',')
      FROM unnest(${chunk.map((m) => m.id)}::text[], ${chunk.map((m) => m.threadId)}::text[], ${chunk.map((m) => m.labelIds.join(","))}::text[]) AS x(g, t, l)`.execute(
      h.app.db,
    );
  }
  await h.app.db
    .updateTable("sync_state")
    .set({ history_id: box.historyId, pinned_history_id: box.historyId, backfill_phase: "done" })
    .where("account_id", "=", accountId)
    .execute();

  const { changed } = await h.emulator.control.bulkModifyLabels(EMAIL, {
    all: true,
    add: ["STARRED"],
    remove: ["UNREAD"],
  });
  expect(changed).toBeGreaterThan(65_535);
  await syncToMailbox(h, accountId, EMAIL);

  const after = await h.emulator.control.mailbox(EMAIL);
  const rows = await h.app.db
    .selectFrom("messages")
    .select(["gmail_id", "label_ids"])
    .where("account_id", "=", accountId)
    .where("deleted_at", "is", null)
    .execute();
  const stored = new Map(rows.map((r) => [r.gmail_id, [...r.label_ids].sort().join(",")]));
  const wrong = after.messages.filter((m) => stored.get(m.id) !== [...m.labelIds].sort().join(","));
  expect(wrong.slice(0, 3)).toEqual([]);
  expect(stored.size).toBe(COUNT);
  expect((await syncState(h, accountId)).last_error).toBeNull();
});
