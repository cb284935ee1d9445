// Message and attachment rows: idempotent upserts keyed by Gmail ids, guarded by the message's
// historyId so that an older fetch (a backfill page that read a message before a label change the
// incremental sync already applied) can never overwrite a newer state.
import { sql } from "kysely";
import type { AttachmentResult } from "../attachments/types.ts";
import type { ParsedMessage } from "../gmail/parse-message.ts";
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

/**
 * Upserts messages (un-deleting them: they were just seen in the mailbox) and their attachment
 * rows. A row whose stored history_id is newer than the fetched one is left alone. Returns how
 * many messages were written.
 */
export async function upsertMessages(trx: Executor, accountId: number, records: MessageRecord[]): Promise<number> {
  if (records.length === 0) return 0;
  // One statement per chunk keeps the bind-parameter count well below Postgres's 65,535.
  let written = 0;
  for (let i = 0; i < records.length; i += 200) {
    const chunk = records.slice(i, i + 200);
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
      .returning(["id", "gmail_id"])
      .execute();
    written += rows.length;
    const idOf = new Map(rows.map((r) => [r.gmail_id, r.id]));
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
      await trx
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
        .execute();
    }
  }
  return written;
}

/** Soft-deletes messages removed in Gmail as of history record `atHistoryId`. Returns rows changed. */
export async function softDeleteMessages(
  trx: Executor,
  accountId: number,
  gmailIds: string[],
  atHistoryId: HistoryId | null,
): Promise<number> {
  if (gmailIds.length === 0) return 0;
  const res = await trx
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
    .executeTakeFirst();
  return Number(res.numUpdatedRows);
}

/** Applies one history record's label change; skipped when the row already reflects a newer state. */
export async function applyLabelChange(
  trx: Executor,
  accountId: number,
  change: { gmailId: string; historyId: HistoryId; added: string[]; removed: string[] },
): Promise<boolean> {
  return (
    (await applyLabelChanges(trx, accountId, {
      gmailIds: [change.gmailId],
      historyId: change.historyId,
      added: change.added,
      removed: change.removed,
    })) > 0
  );
}

/**
 * Applies one label delta to many messages in one statement (a history record of a thread
 * operation or a bulk change carries the same delta for up to 1,000 messages): each row is
 * changed only when it does not already reflect a newer state. Returns rows changed.
 */
export async function applyLabelChanges(
  trx: Executor,
  accountId: number,
  change: { gmailIds: readonly string[]; historyId: HistoryId; added: string[]; removed: string[] },
): Promise<number> {
  if (change.gmailIds.length === 0) return 0;
  const res = await trx
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
    .executeTakeFirst();
  return Number(res.numUpdatedRows);
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
    .returning(sql<boolean>`(xmax <> 0)`.as("updated"))
    .executeTakeFirst();
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
