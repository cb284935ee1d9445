// The write rules that make a backfill page and the incremental sync safe to interleave, on real
// Postgres: an older fetch never overwrites a newer state, a deletion seen before the message was
// stored leaves a tombstone that the older fetch cannot resurrect, labels apply in history order.
import { afterAll, beforeAll, expect, it } from "vitest";
import { resolveDeadLetters } from "../../src/db/dead-letters.ts";
import {
  applyLabelChange,
  knownIds,
  type MessageRecord,
  recordDeletion,
  softDeleteMessages,
  storedCurrentIds,
  upsertMessages,
} from "../../src/db/messages.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";

let tdb: TestDatabase;
let accountId: number;

const record = (gmailId: string, historyId: string, labelIds: string[]): MessageRecord => ({
  gmailId,
  threadId: `t-${gmailId}`,
  historyId,
  internalDate: new Date(0),
  labelIds,
  fromAddress: "a@example.com",
  toAddresses: [],
  ccAddresses: [],
  subject: "s\u0000ubject", // NUL would make Postgres reject the row
  messageIdHeader: null,
  inReplyTo: null,
  snippet: null,
  bodyText: "body",
  sizeEstimate: 10,
  attachments: [
    {
      partId: "1",
      filename: "a.txt",
      mimeType: "text/plain",
      contentId: null,
      size: 3,
      detectedType: "text/plain",
      checksum: null,
      text: "abc",
      textTruncated: false,
      route: "memory",
      skippedReason: null,
      metadata: {},
    },
  ],
});

const row = (gmailId: string) =>
  tdb.db
    .selectFrom("messages")
    .selectAll()
    .where("account_id", "=", accountId)
    .where("gmail_id", "=", gmailId)
    .executeTakeFirstOrThrow();

beforeAll(async () => {
  tdb = await createTestDatabase();
  accountId = (
    await tdb.db.insertInto("accounts").values({ email: "fay@example.com" }).returning("id").executeTakeFirstOrThrow()
  ).id;
});
afterAll(async () => {
  await tdb?.drop();
});

it("upserts idempotently and never lets an older fetch overwrite a newer state", async () => {
  expect(await upsertMessages(tdb.db, accountId, [record("m1", "100", ["INBOX"])])).toBe(1);
  expect(await upsertMessages(tdb.db, accountId, [record("m1", "100", ["INBOX"])])).toBe(1); // same again: one row
  expect(
    await applyLabelChange(tdb.db, accountId, {
      gmailId: "m1",
      historyId: "120",
      added: ["STARRED"],
      removed: ["INBOX"],
    }),
  ).toBe(true);
  expect(
    await applyLabelChange(tdb.db, accountId, { gmailId: "m1", historyId: "110", added: ["SPAM"], removed: [] }),
  ).toBe(false); // older record
  expect(await upsertMessages(tdb.db, accountId, [record("m1", "105", ["INBOX"])])).toBe(0); // fetched before the change
  const r = await row("m1");
  expect(r.label_ids).toEqual(["STARRED"]);
  expect(r.subject).toBe("subject");
  const parts = await tdb.db.selectFrom("attachments").select("part_id").where("message_id", "=", r.id).execute();
  expect(parts).toEqual([{ part_id: "1" }]);
});

it("a deletion seen before the message was stored leaves a tombstone an older fetch cannot undo", async () => {
  expect(await recordDeletion(tdb.db, accountId, { gmailId: "m2", threadId: "t-m2", historyId: "200" })).toBe(false); // tombstone
  expect(await upsertMessages(tdb.db, accountId, [record("m2", "190", ["INBOX"])])).toBe(0);
  expect((await row("m2")).deleted_at).not.toBeNull();
  // A live message deleted later is soft-deleted; a newer fetch (it came back) un-deletes.
  await upsertMessages(tdb.db, accountId, [record("m3", "300", ["INBOX"])]);
  expect(await recordDeletion(tdb.db, accountId, { gmailId: "m3", threadId: "t-m3", historyId: "310" })).toBe(true);
  expect(await recordDeletion(tdb.db, accountId, { gmailId: "m3", threadId: "t-m3", historyId: "320" })).toBe(false); // already deleted
  expect((await row("m3")).deleted_at).not.toBeNull();
  await upsertMessages(tdb.db, accountId, [record("m3", "400", ["INBOX"])]);
  expect((await row("m3")).deleted_at).toBeNull();
  const count = await tdb.db
    .selectFrom("messages")
    .select((eb) => eb.fn.countAll<number>().as("n"))
    .where("account_id", "=", accountId)
    .executeTakeFirstOrThrow();
  expect(Number(count.n)).toBe(3);
});

it("id lists of any length reach Postgres as one parameter (a 70,000-message window does not exceed the 65,535 bind limit)", async () => {
  const ids = Array.from({ length: 70_000 }, (_, i) => `bulk${i.toString(16).padStart(8, "0")}`);
  await upsertMessages(tdb.db, accountId, [
    record(ids[0] as string, "500", ["INBOX"]),
    record(ids[69_999] as string, "500", ["INBOX"]),
  ]);
  expect(await knownIds(tdb.db, accountId, ids)).toEqual(new Set([ids[0], ids[69_999]]));
  expect(
    (await storedCurrentIds(tdb.db, accountId, ids, { minHistoryId: new Map([[ids[0] as string, "400"]]) })).has(
      ids[0] as string,
    ),
  ).toBe(true);
  await resolveDeadLetters(tdb.db, accountId, ids);
  expect(await softDeleteMessages(tdb.db, accountId, ids, "600")).toBe(2);
});
