// The change feed at the repository level, on real Postgres: each write reports exactly what it
// changed (an identical upsert nothing), the changes commit with their rows or not at all, seqs
// become visible in commit order under concurrent writers (a consumer resuming from its last seq
// sees every change exactly once, across rollbacks), and retention answers an old cursor with
// CursorExpiredError.
import { sql, type Transaction } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { setAccountStatus, markReauthRequired } from "../../src/db/accounts.ts";
import {
  appendChanges,
  type ChangeBuffer,
  changeBuffer,
  changeFeedBounds,
  type NewChange,
  pruneChanges,
  transactionWithChanges,
} from "../../src/db/changes.ts";
import {
  applyLabelChanges,
  type MessageRecord,
  recordDeletion,
  softDeleteMessages,
  upsertMessages,
} from "../../src/db/messages.ts";
import { createDb, type Database } from "../../src/db/database.ts";
import { CursorExpiredError } from "../../src/errors.ts";
import { type ChangeEnvelope, readFeedPage } from "../../src/feed/read.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";

let tdb: TestDatabase;
let accountId: number;

const attachment = (partId: string, text: string | null, checksum: string) => ({
  partId,
  filename: `${partId}.txt`,
  mimeType: "text/plain",
  contentId: null,
  size: 3,
  detectedType: "text/plain",
  checksum,
  text,
  textTruncated: false,
  route: "memory" as const,
  skippedReason: text === null ? ("fetch_failed" as const) : null,
  metadata: {},
});

const record = (
  gmailId: string,
  historyId: string,
  labelIds: string[],
  attachments: MessageRecord["attachments"] = [],
): MessageRecord => ({
  gmailId,
  threadId: `t-${gmailId}`,
  historyId,
  internalDate: new Date(0),
  labelIds,
  fromAddress: "a@example.com",
  toAddresses: [],
  ccAddresses: [],
  subject: "subject",
  messageIdHeader: null,
  inReplyTo: null,
  snippet: null,
  bodyText: "body",
  sizeEstimate: 10,
  attachments,
});

const SHA_A = "a".repeat(64);
const SHA_B = "b".repeat(64);

/** Runs `fn` in a feed transaction (as storeTransaction does) and returns the changes it committed. */
async function feedTx(fn: (trx: Transaction<Database>, feed: ChangeBuffer) => Promise<unknown>, historic = false) {
  const feed = changeBuffer(accountId, historic);
  const before = (await changeFeedBounds(tdb.db)).head;
  await transactionWithChanges(tdb.db, feed, (trx) => fn(trx, feed));
  return (await readFeedPage(tdb.db, { after: before, limit: 1000 })).changes;
}

const brief = (changes: ChangeEnvelope[]) =>
  changes.map((c) =>
    [
      c.kind,
      c.gmailId ?? "",
      c.partId ?? "",
      [...(c.labelsAdded ?? []).map((l) => `+${l}`), ...(c.labelsRemoved ?? []).map((l) => `-${l}`)].join(" "),
    ]
      .filter((s) => s !== "")
      .join(" "),
  );

beforeAll(async () => {
  tdb = await createTestDatabase();
  accountId = (
    await tdb.db.insertInto("accounts").values({ email: "feed@example.com" }).returning("id").executeTakeFirstOrThrow()
  ).id;
});
afterAll(async () => {
  await tdb?.drop();
});

describe("what each write reports", () => {
  it("message.added once with its labels and its extracted attachments; an identical upsert reports nothing", async () => {
    const m1 = record(
      "m1",
      "100",
      ["INBOX", "UNREAD"],
      [attachment("2", "hello", SHA_A), attachment("3", null, SHA_B)],
    );
    const first = await feedTx(
      (trx, feed) => upsertMessages(trx, accountId, [m1, record("m2", "100", ["INBOX"])], feed),
      true,
    );
    expect(brief(first)).toEqual([
      "message.added m1 +INBOX +UNREAD",
      "attachment.extracted m1 2",
      "message.added m2 +INBOX",
    ]);
    expect(first.every((c) => c.historic && c.account === "feed@example.com" && c.accountId === accountId)).toBe(true);
    expect(first[0]?.threadId).toBe("t-m1");
    expect(first[1]?.attachmentId).toBeTypeOf("number");
    // No body, no text in the feed.
    expect(JSON.stringify(first)).not.toMatch(/hello|body|subject/);

    expect(await feedTx((trx, feed) => upsertMessages(trx, accountId, [m1], feed))).toEqual([]);
    // The failed attachment completed later (the retry step): only it is reported.
    const completed = record(
      "m1",
      "101",
      ["UNREAD", "INBOX"],
      [attachment("2", "hello", SHA_A), attachment("3", "later", SHA_B)],
    );
    expect(brief(await feedTx((trx, feed) => upsertMessages(trx, accountId, [completed], feed)))).toEqual([
      "attachment.extracted m1 3",
    ]);
    // A re-fetch with other labels (a backfill re-listing after a missed label change).
    expect(
      brief(
        await feedTx((trx, feed) => upsertMessages(trx, accountId, [record("m1", "102", ["INBOX", "STARRED"])], feed)),
      ),
    ).toEqual(["message.labels_changed m1 +STARRED -UNREAD"]);
    // An older fetch than the stored state writes nothing and reports nothing.
    expect(await feedTx((trx, feed) => upsertMessages(trx, accountId, [record("m1", "90", ["TRASH"])], feed))).toEqual(
      [],
    );
  });

  it("label changes report the real delta; deletions report live rows only; a deleted message coming back is added again", async () => {
    const relabel = await feedTx((trx, feed) =>
      applyLabelChanges(
        trx,
        accountId,
        { gmailIds: ["m1", "m2"], historyId: "200", added: ["STARRED"], removed: ["INBOX"] },
        feed,
      ),
    );
    // m1 already had STARRED: only INBOX moved for it.
    expect(brief(relabel).sort()).toEqual([
      "message.labels_changed m1 -INBOX",
      "message.labels_changed m2 +STARRED -INBOX",
    ]);
    expect(brief(await feedTx((trx, feed) => softDeleteMessages(trx, accountId, ["m2", "nope"], "210", feed)))).toEqual(
      ["message.deleted m2"],
    );
    expect(await feedTx((trx, feed) => softDeleteMessages(trx, accountId, ["m2"], "220", feed))).toEqual([]);
    // A tombstone (never held) is not a change a consumer saw; deleting a live row is.
    expect(
      await feedTx((trx, feed) =>
        recordDeletion(trx, accountId, { gmailId: "m9", threadId: "t9", historyId: "230" }, feed),
      ),
    ).toEqual([]);
    expect(
      brief(
        await feedTx((trx, feed) =>
          recordDeletion(trx, accountId, { gmailId: "m1", threadId: "t-m1", historyId: "240" }, feed),
        ),
      ),
    ).toEqual(["message.deleted m1"]);
    // A label change on a deleted row is not reported; the message restored later is added again.
    expect(
      await feedTx((trx, feed) =>
        applyLabelChanges(trx, accountId, { gmailIds: ["m1"], historyId: "250", added: ["X"], removed: [] }, feed),
      ),
    ).toEqual([]);
    expect(
      brief(await feedTx((trx, feed) => upsertMessages(trx, accountId, [record("m9", "260", ["INBOX"])], feed))),
    ).toEqual(["message.added m9 +INBOX"]);
  });

  it("account status changes are reported once, with their reason", async () => {
    const before = (await changeFeedBounds(tdb.db)).head;
    expect(await markReauthRequired(tdb.db, accountId, "invalid_grant")).toBe(true);
    expect(await markReauthRequired(tdb.db, accountId, "invalid_grant")).toBe(false);
    await setAccountStatus(tdb.db, accountId, "reauth_required", "still");
    await setAccountStatus(tdb.db, accountId, "active");
    const { changes } = await readFeedPage(tdb.db, { after: before, limit: 10 });
    expect(changes.map((c) => [c.kind, c.status, c.reason])).toEqual([
      ["account.status_changed", "reauth_required", "invalid_grant"],
      ["account.status_changed", "active", null],
    ]);
  });

  it("a rolled-back transaction leaves neither its rows nor its changes, and draws no seq", async () => {
    const before = await changeFeedBounds(tdb.db);
    const feed = changeBuffer(accountId, false);
    await expect(
      transactionWithChanges(tdb.db, feed, async (trx) => {
        await upsertMessages(trx, accountId, [record("rb1", "1", ["INBOX"])], feed);
        await appendChanges(trx, feed.changes.splice(0)); // staged…
        throw new Error("boom"); // …and rolled back
      }),
    ).rejects.toThrow("boom");
    expect(
      await tdb.db.selectFrom("messages").select("id").where("gmail_id", "=", "rb1").executeTakeFirst(),
    ).toBeUndefined();
    expect((await changeFeedBounds(tdb.db)).head).toBe(before.head);
    // Seqs are drawn at COMMIT: the next change follows the last one without a gap.
    const next = await feedTx((trx, f) => upsertMessages(trx, accountId, [record("rb2", "1", ["INBOX"])], f));
    expect(next.map((c) => [c.gmailId, c.seq])).toEqual([["rb2", before.head + 1]]);
    // Staged twice in one transaction: both, in order, in one commit.
    const twice = await feedTx(async (trx, f) => {
      await appendChanges(trx, [{ accountId, kind: "message.deleted", historic: false, gmailId: "x1" }]);
      await appendChanges(trx, [{ accountId, kind: "message.deleted", historic: false, gmailId: "x2" }]);
      f.add({ kind: "message.deleted", gmailId: "x3" });
    });
    expect(twice.map((c) => c.gmailId)).toEqual(["x1", "x2", "x3"]);
    expect(new Set(twice.map((c) => c.at)).size).toBe(1);
    expect(await tdb.db.selectFrom("change_feed_pending").selectAll().execute()).toEqual([]);
  });
});

describe("ordering under concurrent writers", () => {
  it("a reader resuming from its last seq sees every committed change exactly once, in seq order", async () => {
    const start = (await changeFeedBounds(tdb.db)).head;
    const seen: number[] = [];
    let cursor = start;
    let stop = false;
    const reader = (async () => {
      while (!stop) {
        const page = await readFeedPage(tdb.db, { after: cursor, limit: 50 });
        for (const c of page.changes) seen.push(c.seq);
        cursor = page.next;
        await new Promise((r) => setTimeout(r, 2));
      }
    })();
    // 24 writers at once; each stages its changes, holds its transaction open a random while, then
    // commits (a third roll back).
    const change = (i: number, k: number): NewChange => ({
      accountId,
      kind: "message.labels_changed",
      historic: false,
      gmailId: `w${i}-${k}`,
      labelsAdded: ["L"],
    });
    // Each commit lingers a random while after its changes are inserted (a deferred trigger that
    // fires after the feed's, inside COMMIT): without the feed lock, a later seq would then become
    // visible first and the reader would pass the earlier one for good.
    await sql`CREATE FUNCTION linger() RETURNS trigger LANGUAGE plpgsql AS $$
      BEGIN PERFORM pg_sleep(random() * 0.03); RETURN NULL; END $$`.execute(tdb.db);
    await sql`CREATE CONSTRAINT TRIGGER change_feed_zz_linger AFTER INSERT ON change_feed_pending
      DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION linger()`.execute(tdb.db);
    // Writers on a pool of their own, so that none waits for a connection and the reader never does.
    const writers = createDb(tdb.url, 30);
    const outcomes = await Promise.allSettled(
      Array.from({ length: 24 }, (_, i) =>
        writers.transaction().execute(async (trx) => {
          await new Promise((r) => setTimeout(r, Math.random() * 30));
          await appendChanges(trx, [change(i, 0), change(i, 1)]);
          await new Promise((r) => setTimeout(r, Math.random() * 40));
          if (i % 3 === 2) throw new Error("rolled back");
        }),
      ),
    );
    await writers.destroy();
    await sql`DROP TRIGGER change_feed_zz_linger ON change_feed_pending`.execute(tdb.db);
    await sql`DROP FUNCTION linger()`.execute(tdb.db);
    expect(outcomes.filter((o) => o.status === "rejected")).toHaveLength(8);
    const committed = (await readFeedPage(tdb.db, { after: start, limit: 1000 })).changes.map((c) => c.seq);
    expect(committed).toHaveLength(32);
    await new Promise((r) => setTimeout(r, 100));
    stop = true;
    await reader;
    expect(seen).toEqual(committed); // each once, in order, none passed over
    // A transaction's changes are contiguous: nobody else's seq falls inside them.
    const rows = await tdb.db
      .selectFrom("changes")
      .select(["seq", "gmail_id"])
      .where("seq", ">", start)
      .orderBy("seq")
      .execute();
    for (let j = 0; j < rows.length; j += 2)
      expect(rows[j]!.gmail_id?.split("-")[0]).toBe(rows[j + 1]!.gmail_id?.split("-")[0]);
  });
});

describe("retention", () => {
  it("prunes changes past CHANGES_RETENTION_DAYS, moves the horizon, and refuses a cursor before it", async () => {
    const head = (await changeFeedBounds(tdb.db)).head;
    const all = await readFeedPage(tdb.db, { after: 0, limit: 1000 });
    const cut = all.changes[Math.floor(all.changes.length / 2)]!.seq;
    await sql`UPDATE changes SET created_at = now() - interval '20 days' WHERE seq <= ${cut}`.execute(tdb.db);
    const r = await pruneChanges(tdb.db, 14, { batch: 3 });
    expect(r.prunedThrough).toBe(cut);
    expect(r.deleted).toBe(all.changes.filter((c) => c.seq <= cut).length);
    const bounds = await changeFeedBounds(tdb.db);
    expect(bounds.oldest).toBeGreaterThan(cut);
    expect(bounds.head).toBe(head);
    await expect(readFeedPage(tdb.db, { after: cut - 1, limit: 10 })).rejects.toBeInstanceOf(CursorExpiredError);
    await expect(readFeedPage(tdb.db, { after: 0, limit: 10 })).rejects.toThrow(/older than the change feed keeps/);
    expect((await readFeedPage(tdb.db, { after: cut, limit: 1 })).changes[0]?.seq).toBe(bounds.oldest);
    // No cursor: from the oldest kept change.
    expect((await readFeedPage(tdb.db, { limit: 1 })).changes[0]?.seq).toBe(bounds.oldest);
    // Nothing old enough: nothing pruned, the horizon stays.
    expect(await pruneChanges(tdb.db, 14)).toEqual({ deleted: 0, prunedThrough: cut });
  });
});
