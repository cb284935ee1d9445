// The label repair of a history-expired resync (src/sync/label-repair.ts): which listed threads
// changed since we last saw them, and their messages' labels set from a minimal threads.get.
import { sql } from "kysely";
import type { ChangeSink } from "./changes.ts";
import type { Executor, HistoryId } from "./database.ts";
import { labelDelta, lockStates } from "./messages.ts";

/** For each of `threadIds` we hold live messages of: the newest history id among them (null if none known). */
export async function threadHistoryMax(
  db: Executor,
  accountId: number,
  threadIds: readonly string[],
): Promise<Map<string, string | null>> {
  if (threadIds.length === 0) return new Map();
  const rows = await db
    .selectFrom("messages")
    .select(["thread_id", sql<string | null>`max(history_id)::text`.as("max_history_id")])
    .where("account_id", "=", accountId)
    .where(sql<boolean>`thread_id = ANY(${[...threadIds]}::text[])`)
    .where("deleted_at", "is", null)
    .groupBy("thread_id")
    .execute();
  return new Map(rows.map((r) => [r.thread_id, r.max_history_id]));
}

/**
 * Sets each held live message's labels to what Gmail reported at `historyId`, where the row is older
 * than that (a newer state — the incremental sync running alongside — is never overwritten). One
 * statement for any number of rows. Returns rows changed. With the change feed's sink (the caller's
 * transaction), the rows are locked first and each real label change is reported to it.
 */
export async function setLabelsAt(
  db: Executor,
  accountId: number,
  rows: ReadonlyArray<{ gmailId: string; labelIds: string[]; historyId: HistoryId }>,
  feed?: ChangeSink,
): Promise<number> {
  if (rows.length === 0) return 0;
  const before = feed
    ? await lockStates(
        db,
        accountId,
        rows.map((r) => r.gmailId),
      )
    : undefined;
  const json = JSON.stringify(rows.map((r) => ({ gmail_id: r.gmailId, labels: r.labelIds, hid: r.historyId })));
  const res = await sql`
    UPDATE messages AS m
    SET label_ids = ARRAY(SELECT l FROM jsonb_array_elements_text(v.labels) AS l ORDER BY 1),
        history_id = v.hid,
        updated_at = now()
    FROM jsonb_to_recordset(${json}::jsonb) AS v(gmail_id text, labels jsonb, hid numeric)
    WHERE m.account_id = ${accountId}
      AND m.gmail_id = v.gmail_id
      AND m.deleted_at IS NULL
      AND (m.history_id IS NULL OR m.history_id < v.hid)
    RETURNING m.gmail_id, m.label_ids`.execute(db);
  if (feed && before) {
    for (const row of res.rows as Array<{ gmail_id: string; label_ids: string[] }>) {
      const delta = labelDelta(before.get(row.gmail_id)?.labelIds ?? [], row.label_ids);
      if (delta.added.length > 0 || delta.removed.length > 0) {
        feed.add({
          kind: "message.labels_changed",
          gmailId: row.gmail_id,
          labelsAdded: delta.added,
          labelsRemoved: delta.removed,
        });
      }
    }
  }
  return res.rows.length;
}
