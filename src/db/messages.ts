// Message and attachment rows: idempotent upserts keyed by Gmail ids, guarded by the message's
// historyId so that an older fetch (a backfill page that read a message before a label change the
// incremental sync already applied) can never overwrite a newer state.
import { sql } from "kysely";
import type { AttachmentResult } from "../attachments/types.ts";
import type { ParsedMessage } from "../gmail/parse-message.ts";
import type { ChangeSink } from "./changes.ts";
import { type Executor, gmailIdIn, type HistoryId } from "./database.ts";

/** What the sync stores for one message: the parsed message, its attachments already processed. */
export type MessageRecord = Omit<ParsedMessage, "attachments" | "bodyRef"> & { attachments: AttachmentResult[] };

// Postgres text cannot hold NUL; mail bodies and extracted text sometimes do.
function clean(s: string | null): string | null {
  return s === null ? null : s.includes("\u0000") ? s.replaceAll("\u0000", "") : s;
}
function cleanAll(a: string[]): string[] {
  return a.map((s) => clean(s) ?? "");
}

/** Labels added and removed between two states of a message (sets: order does not matter). */
export function labelDelta(
  before: readonly string[],
  after: readonly string[],
): { added: string[]; removed: string[] } {
  const b = new Set(before);
  const a = new Set(after);
  return { added: [...a].filter((l) => !b.has(l)).sort(), removed: [...b].filter((l) => !a.has(l)).sort() };
}

/**
 * The stored state of these messages, locked (FOR UPDATE, in id order) until the transaction ends,
 * so that the write that follows changes exactly the state read here: what the change feed
 * reports is the difference between the two. Any other write of labels or deletions must do the
 * same and report to the transaction's ChangeSink (src/db/changes.ts), or the feed misses it.
 */
export async function lockStates(trx: Executor, accountId: number, gmailIds: readonly string[]) {
  if (gmailIds.length === 0) return new Map<string, { id: number; labelIds: string[]; deleted: boolean }>();
  const rows = await trx
    .selectFrom("messages")
    .select(["id", "gmail_id", "label_ids", "deleted_at"])
    .where("account_id", "=", accountId)
    .where(gmailIdIn(gmailIds))
    .orderBy("id")
    .forUpdate()
    .execute();
  return new Map(rows.map((r) => [r.gmail_id, { id: r.id, labelIds: r.label_ids, deleted: r.deleted_at !== null }]));
}

/**
 * Upserts messages (un-deleting them: they were just seen in the mailbox) and their attachment
 * rows. A row whose stored history_id is newer than the fetched one is left alone. Returns how
 * many messages were written. With a `changes` sink, reports what actually changed: a message new
 * or back from deletion (message.added, with its labels), a live message whose labels differ
 * (message.labels_changed), and attachments stored with text that was not there before
 * (attachment.extracted). Writing an identical row again reports nothing.
 */
export async function upsertMessages(
  trx: Executor,
  accountId: number,
  records: MessageRecord[],
  changes?: ChangeSink,
): Promise<number> {
  if (records.length === 0) return 0;
  // One statement per chunk keeps the bind-parameter count well below Postgres's 65,535.
  let written = 0;
  for (let i = 0; i < records.length; i += 200) {
    const chunk = records.slice(i, i + 200);
    const before = changes
      ? await lockStates(
          trx,
          accountId,
          chunk.map((m) => m.gmailId),
        )
      : undefined;
    const rows = await trx
      .insertInto("messages")
      .values(
        chunk.map((m) => ({
          account_id: accountId,
          gmail_id: m.gmailId,
          thread_id: m.threadId,
          history_id: m.historyId,
          internal_date: m.internalDate,
          label_ids: cleanAll(m.labelIds),
          from_address: clean(m.fromAddress),
          to_addresses: cleanAll(m.toAddresses),
          cc_addresses: cleanAll(m.ccAddresses),
          subject: clean(m.subject),
          message_id_header: clean(m.messageIdHeader),
          in_reply_to: clean(m.inReplyTo),
          snippet: clean(m.snippet),
          body_text: clean(m.bodyText),
          size_estimate: m.sizeEstimate,
        })),
      )
      .onConflict((oc) =>
        oc
          .columns(["account_id", "gmail_id"])
          .doUpdateSet((eb) => ({
            thread_id: eb.ref("excluded.thread_id"),
            history_id: eb.ref("excluded.history_id"),
            internal_date: eb.ref("excluded.internal_date"),
            label_ids: eb.ref("excluded.label_ids"),
            from_address: eb.ref("excluded.from_address"),
            to_addresses: eb.ref("excluded.to_addresses"),
            cc_addresses: eb.ref("excluded.cc_addresses"),
            subject: eb.ref("excluded.subject"),
            message_id_header: eb.ref("excluded.message_id_header"),
            in_reply_to: eb.ref("excluded.in_reply_to"),
            snippet: eb.ref("excluded.snippet"),
            body_text: eb.ref("excluded.body_text"),
            size_estimate: eb.ref("excluded.size_estimate"),
            deleted_at: null,
            updated_at: sql`now()`,
          }))
          .where(
            sql<boolean>`messages.history_id IS NULL OR excluded.history_id IS NULL OR excluded.history_id >= messages.history_id`,
          ),
      )
      .returning(["id", "gmail_id", "thread_id", "label_ids"])
      .execute();
    written += rows.length;
    const idOf = new Map(rows.map((r) => [r.gmail_id, r.id]));
    // Attachments of messages that were live before: reported only when their text is new.
    const liveBefore = before ? [...before.values()].filter((b) => !b.deleted).map((b) => b.id) : [];
    const attachmentsBefore =
      changes && liveBefore.length > 0
        ? await trx
            .selectFrom("attachments")
            .select(["message_id", "part_id", "checksum", sql<boolean>`extracted_text IS NOT NULL`.as("has_text")])
            .where(sql<boolean>`message_id = ANY(${liveBefore}::bigint[])`)
            .execute()
        : [];
    const attachmentIds = new Map<string, number>();
    const attachmentRows = chunk.flatMap((m) => {
      const messageId = idOf.get(m.gmailId);
      if (messageId === undefined) return [];
      return m.attachments.map((a) => ({
        message_id: messageId,
        part_id: a.partId,
        filename: clean(a.filename),
        mime_type: a.mimeType,
        detected_type: a.detectedType,
        content_id: clean(a.contentId),
        size_bytes: a.size,
        checksum: a.checksum,
        extracted_text: clean(a.text),
        text_truncated: a.textTruncated,
        metadata: a.metadata ?? {},
        skipped_reason: a.skippedReason,
        extracted_at: a.text !== null ? new Date() : null,
      }));
    });
    for (let j = 0; j < attachmentRows.length; j += 500) {
      const stored = await trx
        .insertInto("attachments")
        .values(attachmentRows.slice(j, j + 500))
        .onConflict((oc) =>
          oc.columns(["message_id", "part_id"]).doUpdateSet((eb) => ({
            filename: eb.ref("excluded.filename"),
            mime_type: eb.ref("excluded.mime_type"),
            detected_type: eb.ref("excluded.detected_type"),
            content_id: eb.ref("excluded.content_id"),
            size_bytes: eb.ref("excluded.size_bytes"),
            checksum: eb.ref("excluded.checksum"),
            extracted_text: eb.ref("excluded.extracted_text"),
            text_truncated: eb.ref("excluded.text_truncated"),
            metadata: eb.ref("excluded.metadata"),
            skipped_reason: eb.ref("excluded.skipped_reason"),
            extracted_at: eb.ref("excluded.extracted_at"),
          })),
        )
        .returning(["id", "message_id", "part_id"])
        .execute();
      for (const a of stored) attachmentIds.set(`${a.message_id}/${a.part_id}`, a.id);
    }
    if (changes && before) {
      const hadText = new Map(attachmentsBefore.map((a) => [`${a.message_id}/${a.part_id}`, a]));
      const byGmailId = new Map(rows.map((r) => [r.gmail_id, r]));
      for (const m of chunk) {
        const row = byGmailId.get(m.gmailId);
        if (row === undefined) continue; // an older fetch than the stored state: nothing written
        const prev = before.get(m.gmailId);
        const fresh = prev === undefined || prev.deleted;
        if (fresh) {
          changes.add({
            kind: "message.added",
            gmailId: row.gmail_id,
            threadId: row.thread_id,
            labelsAdded: [...row.label_ids].sort(),
          });
        } else {
          const d = labelDelta(prev.labelIds, row.label_ids);
          if (d.added.length > 0 || d.removed.length > 0)
            changes.add({
              kind: "message.labels_changed",
              gmailId: row.gmail_id,
              threadId: row.thread_id,
              labelsAdded: d.added,
              labelsRemoved: d.removed,
            });
        }
        for (const a of m.attachments) {
          if (a.text === null) continue;
          const key = `${row.id}/${a.partId}`;
          const old = fresh ? undefined : hadText.get(key);
          if (old?.has_text && old.checksum === a.checksum) continue;
          const attachmentId = attachmentIds.get(key);
          changes.add({
            kind: "attachment.extracted",
            gmailId: row.gmail_id,
            threadId: row.thread_id,
            partId: a.partId,
            ...(attachmentId !== undefined ? { attachmentId } : {}),
          });
        }
      }
    }
  }
  return written;
}

/**
 * Soft-deletes messages removed in Gmail as of history record `atHistoryId`. Returns rows changed,
 * each reported to `changes` as message.deleted.
 */
export async function softDeleteMessages(
  trx: Executor,
  accountId: number,
  gmailIds: string[],
  atHistoryId: HistoryId | null,
  changes?: ChangeSink,
): Promise<number> {
  if (gmailIds.length === 0) return 0;
  const rows = await trx
    .updateTable("messages")
    .set({
      deleted_at: sql`now()`,
      updated_at: sql`now()`,
      ...(atHistoryId !== null ? { history_id: atHistoryId } : {}),
    })
    .where("account_id", "=", accountId)
    .where(gmailIdIn(gmailIds))
    .where("deleted_at", "is", null)
    .$if(atHistoryId !== null, (qb) =>
      qb.where(sql<boolean>`(history_id IS NULL OR history_id < ${atHistoryId}::numeric)`),
    )
    .returning(["gmail_id", "thread_id"])
    .execute();
  for (const r of rows) changes?.add({ kind: "message.deleted", gmailId: r.gmail_id, threadId: r.thread_id });
  return rows.length;
}

/** Applies one history record's label change; skipped when the row already reflects a newer state. */
export async function applyLabelChange(
  trx: Executor,
  accountId: number,
  change: { gmailId: string; historyId: HistoryId; added: string[]; removed: string[] },
  changes?: ChangeSink,
): Promise<boolean> {
  return (
    (await applyLabelChanges(
      trx,
      accountId,
      {
        gmailIds: [change.gmailId],
        historyId: change.historyId,
        added: change.added,
        removed: change.removed,
      },
      changes,
    )) > 0
  );
}

/**
 * Applies one label delta to many messages in one statement (a history record of a thread
 * operation or a bulk change carries the same delta for up to 1,000 messages): each row is
 * changed only when it does not already reflect a newer state. Returns rows changed. Reports to
 * `changes` each live message whose labels really moved (adding a label it has is no change).
 */
export async function applyLabelChanges(
  trx: Executor,
  accountId: number,
  change: { gmailIds: readonly string[]; historyId: HistoryId; added: string[]; removed: string[] },
  changes?: ChangeSink,
): Promise<number> {
  if (change.gmailIds.length === 0) return 0;
  const before = changes ? await lockStates(trx, accountId, change.gmailIds) : undefined;
  const rows = await trx
    .updateTable("messages")
    .set({
      label_ids: sql<
        string[]
      >`ARRAY(SELECT l FROM unnest(label_ids || ${change.added}::text[]) AS l EXCEPT SELECT unnest(${change.removed}::text[]) ORDER BY 1)`,
      history_id: change.historyId,
      updated_at: sql`now()`,
    })
    .where("account_id", "=", accountId)
    .where(gmailIdIn(change.gmailIds))
    .where(sql<boolean>`(history_id IS NULL OR history_id < ${change.historyId}::numeric)`)
    .returning(["gmail_id", "thread_id", "label_ids"])
    .execute();
  if (changes && before) {
    for (const r of rows) {
      const prev = before.get(r.gmail_id);
      if (prev === undefined || prev.deleted) continue;
      const d = labelDelta(prev.labelIds, r.label_ids);
      if (d.added.length > 0 || d.removed.length > 0)
        changes.add({
          kind: "message.labels_changed",
          gmailId: r.gmail_id,
          threadId: r.thread_id,
          labelsAdded: d.added,
          labelsRemoved: d.removed,
        });
    }
  }
  return rows.length;
}

/**
 * Of `gmailIds`, the ones already stored (not deleted) at least as new as `minHistoryId`, or
 * written since `since`: those need no fetch.
 */
export async function storedCurrentIds(
  trx: Executor,
  accountId: number,
  gmailIds: string[],
  opts: { since?: Date; minHistoryId?: Map<string, string> },
): Promise<Set<string>> {
  if (gmailIds.length === 0) return new Set();
  const rows = await trx
    .selectFrom("messages")
    .select(["gmail_id", "history_id", "updated_at"])
    .where("account_id", "=", accountId)
    .where(gmailIdIn(gmailIds))
    .where("deleted_at", "is", null)
    .execute();
  const out = new Set<string>();
  for (const r of rows) {
    if (opts.since !== undefined && r.updated_at >= opts.since) out.add(r.gmail_id);
    const min = opts.minHistoryId?.get(r.gmail_id);
    if (min !== undefined && r.history_id !== null && BigInt(r.history_id) >= BigInt(min)) out.add(r.gmail_id);
  }
  return out;
}

/** Live (not soft-deleted) message ids not written since `before`, for the resync's sweep. */
export async function liveIdsUntouchedSince(
  trx: Executor,
  accountId: number,
  before: Date,
  excludeLabels: string[],
): Promise<string[]> {
  const rows = await trx
    .selectFrom("messages")
    .select("gmail_id")
    .where("account_id", "=", accountId)
    .where("deleted_at", "is", null)
    .where("updated_at", "<", before)
    .$if(excludeLabels.length > 0, (qb) => qb.where(sql<boolean>`NOT (label_ids && ${excludeLabels}::text[])`))
    .execute();
  return rows.map((r) => r.gmail_id);
}

/**
 * Records a deletion from history (record `atHistoryId`): soft-deletes the row, or — when we do
 * not hold the message yet — inserts a tombstone, so that a backfill page that fetched it before
 * the deletion and commits after cannot bring it back (its older history_id loses the guard).
 * Returns whether a live row was deleted.
 */
export async function recordDeletion(
  trx: Executor,
  accountId: number,
  d: { gmailId: string; threadId: string; historyId: HistoryId },
  changes?: ChangeSink,
): Promise<boolean> {
  const row = await trx
    .insertInto("messages")
    .values({
      account_id: accountId,
      gmail_id: d.gmailId,
      thread_id: d.threadId,
      history_id: d.historyId,
      deleted_at: sql`now()`,
    })
    .onConflict((oc) =>
      oc
        .columns(["account_id", "gmail_id"])
        .doUpdateSet({ deleted_at: sql`now()`, history_id: sql`excluded.history_id`, updated_at: sql`now()` })
        .where(
          sql<boolean>`messages.deleted_at IS NULL AND (messages.history_id IS NULL OR messages.history_id < excluded.history_id)`,
        ),
    )
    .returning(["thread_id", sql<boolean>`(xmax <> 0)`.as("updated")])
    .executeTakeFirst();
  // A tombstone (inserted) was never a live row a consumer saw: only a live row's deletion is reported.
  if (row?.updated === true) changes?.add({ kind: "message.deleted", gmailId: d.gmailId, threadId: row.thread_id });
  return row?.updated === true;
}

/**
 * Of the given ids (each with a history record id at which the message was seen to exist), those
 * whose row is soft-deleted by a state older than that record: the deletion was wrong or undone.
 */
export async function deletedBefore(
  trx: Executor,
  accountId: number,
  seenAt: ReadonlyMap<string, HistoryId>,
): Promise<Set<string>> {
  if (seenAt.size === 0) return new Set();
  const rows = await trx
    .selectFrom("messages")
    .select(["gmail_id", "history_id"])
    .where("account_id", "=", accountId)
    .where(gmailIdIn([...seenAt.keys()]))
    .where("deleted_at", "is not", null)
    .execute();
  return new Set(
    rows
      .filter((r) => r.history_id === null || BigInt(r.history_id) < BigInt(seenAt.get(r.gmail_id) ?? "0"))
      .map((r) => r.gmail_id),
  );
}

/** Of `gmailIds`, those we hold a row for (live or deleted). */
export async function knownIds(trx: Executor, accountId: number, gmailIds: string[]): Promise<Set<string>> {
  if (gmailIds.length === 0) return new Set();
  const rows = await trx
    .selectFrom("messages")
    .select("gmail_id")
    .where("account_id", "=", accountId)
    .where(gmailIdIn(gmailIds))
    .execute();
  return new Set(rows.map((r) => r.gmail_id));
}

/** How many message rows are held, soft-deleted ones and tombstones included; of one account when given. */
export async function countMessageRows(db: Executor, opts: { accountId?: number } = {}): Promise<number> {
  const row = await db
    .selectFrom("messages")
    .select((eb) => eb.fn.countAll().as("n"))
    .$if(opts.accountId !== undefined, (qb) => qb.where("account_id", "=", opts.accountId as number))
    .executeTakeFirstOrThrow();
  return Number(row.n);
}
