// Large states built fast, for benchmarks and tests only (bench/fleet.ts, test/sync/reconcile-cost):
// thousands of accounts, or a mailbox we "already hold", written in a few statements instead of
// through the connect flow and the sync. The product never calls these.
import { sql } from "kysely";
import type { Executor, HistoryId } from "./database.ts";

/**
 * Active accounts under `emails` (no tokens: nothing can sync them), each with a sync_state row as a
 * synced account has: backfill done, a cursor, its last push and sync `quietMinutes` ago (default
 * 0), a watch expiring in `watchDays`.
 * Returns their ids in the order of `emails`.
 */
export async function insertSyncedAccounts(
  db: Executor,
  emails: readonly string[],
  opts: { historyId: HistoryId; watchDays: number; quietMinutes?: number },
): Promise<number[]> {
  const quiet = opts.quietMinutes ?? 0;
  const ids: number[] = [];
  for (let i = 0; i < emails.length; i += 5_000) {
    const chunk = emails.slice(i, i + 5_000);
    const rows = await sql<{ id: number; email: string }>`
      INSERT INTO accounts (email, status)
      SELECT e, 'active' FROM unnest(${[...chunk]}::text[]) AS e
      RETURNING id, email`.execute(db);
    const byEmail = new Map(rows.rows.map((r) => [r.email, r.id]));
    const chunkIds = chunk.map((e) => byEmail.get(e) as number);
    await sql`
      INSERT INTO sync_state (account_id, pinned_history_id, history_id, cursor_advanced_at, backfill_phase,
        backfill_started_at, backfill_finished_at, last_sync_at, last_push_at, watch_expiration, watch_history_id)
      SELECT id, ${opts.historyId}::numeric, ${opts.historyId}::numeric, now(), 'done', now(), now(),
        now() - make_interval(mins => ${quiet}), now() - make_interval(mins => ${quiet}),
        now() + make_interval(days => ${opts.watchDays}), ${opts.historyId}::numeric
      FROM unnest(${chunkIds}::int[]) AS id`.execute(db);
    ids.push(...chunkIds);
  }
  return ids;
}

/**
 * Message rows for ids we "hold" (no content): what a synced mailbox's rows look like to the
 * list-only reconcile, which only asks whether an id is held live. Idempotent.
 */
export async function insertHeldMessages(
  db: Executor,
  accountId: number,
  rows: ReadonlyArray<{ gmailId: string; threadId: string; labelIds: string[]; historyId: HistoryId }>,
): Promise<void> {
  for (let i = 0; i < rows.length; i += 5_000) {
    const json = JSON.stringify(
      rows.slice(i, i + 5_000).map((r) => ({ g: r.gmailId, t: r.threadId, l: r.labelIds, h: r.historyId })),
    );
    await sql`
      INSERT INTO messages (account_id, gmail_id, thread_id, history_id, label_ids)
      SELECT ${accountId}, v.g, v.t, v.h, ARRAY(SELECT jsonb_array_elements_text(v.l))
      FROM jsonb_to_recordset(${json}::jsonb) AS v(g text, t text, l jsonb, h numeric)
      ON CONFLICT (account_id, gmail_id) DO NOTHING`.execute(db);
  }
}

/** Marks the account's backfill done `daysAgo` with its cursor at `historyId`, its rows untouched since. */
export async function markSynced(
  db: Executor,
  accountId: number,
  historyId: HistoryId,
  daysAgo: number,
): Promise<void> {
  await sql`UPDATE sync_state SET backfill_phase = 'done', history_id = ${historyId}::numeric,
    pinned_history_id = ${historyId}::numeric, cursor_advanced_at = now(), last_sync_at = now(),
    backfill_started_at = now() - make_interval(days => ${daysAgo}),
    backfill_finished_at = now() - make_interval(days => ${daysAgo})
    WHERE account_id = ${accountId}`.execute(db);
  await sql`UPDATE messages SET updated_at = now() - make_interval(days => ${daysAgo})
    WHERE account_id = ${accountId}`.execute(db);
}
