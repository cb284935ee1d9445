// The per-account sync state: the cursor (history_id, moved only forward and only in the
// transaction that stores what it covers), the backfill/resync run with its page checkpoint, and
// what the account shows about its watch, its last push, throttling and errors.
import { type Selectable, sql, type Transaction } from "kysely";
import type { Database, Executor, HistoryId, SyncStateTable } from "./database.ts";

export type SyncState = Selectable<SyncStateTable>;

export async function ensureSyncState(db: Executor, accountId: number): Promise<void> {
  await db
    .insertInto("sync_state")
    .values({ account_id: accountId })
    .onConflict((oc) => oc.column("account_id").doNothing())
    .execute();
}

export async function getSyncState(db: Executor, accountId: number): Promise<SyncState | undefined> {
  return db.selectFrom("sync_state").selectAll().where("account_id", "=", accountId).executeTakeFirst();
}

/** Locks the row for the rest of the transaction (serialises run starts and checkpoints). */
export async function getSyncStateForUpdate(
  trx: Transaction<Database>,
  accountId: number,
): Promise<SyncState | undefined> {
  return trx.selectFrom("sync_state").selectAll().where("account_id", "=", accountId).forUpdate().executeTakeFirst();
}

/**
 * Starts a backfill/resync run: pins `pinnedHistoryId` (read from getProfile BEFORE the first
 * list page) and resets the page checkpoint. The cursor is set to the pin when there is none
 * (first backfill) or when `resetCursor` (history expired: the old cursor is unusable); it only
 * ever moves forward. The run's listing scope and whether its end may sweep are pinned with it
 * (src/sync/run-scope.ts): the run lists with them whatever the configuration says later.
 */
export async function beginRun(
  trx: Transaction<Database>,
  accountId: number,
  run: {
    pinnedHistoryId: HistoryId;
    estimate: number;
    scope: { query: string | null; labelIds: string[]; includeSpamTrash: boolean };
    maySweep: boolean;
    resyncReason: string | null;
    resetCursor: boolean;
  },
): Promise<Date> {
  const row = await trx
    .updateTable("sync_state")
    .set({
      pinned_history_id: run.pinnedHistoryId,
      history_id: run.resetCursor
        ? sql`greatest(coalesce(history_id, 0), ${run.pinnedHistoryId}::numeric)`
        : sql`coalesce(history_id, ${run.pinnedHistoryId}::numeric)`,
      cursor_advanced_at: sql`CASE WHEN history_id IS NULL OR ${run.resetCursor} THEN now() ELSE cursor_advanced_at END`,
      backfill_phase: "listing",
      backfill_page_token: null,
      backfill_pages: 0,
      backfill_listed: 0,
      backfill_stored: 0,
      backfill_estimate: run.estimate,
      backfill_query: run.scope.query,
      backfill_label_ids: run.scope.labelIds,
      backfill_include_spam_trash: run.scope.includeSpamTrash,
      backfill_may_sweep: run.maySweep,
      backfill_started_at: sql`date_trunc('milliseconds', clock_timestamp())`, // ms: the run id must survive a round trip through a JS Date
      backfill_finished_at: null,
      resync_reason: run.resyncReason,
      resync_started_at: run.resyncReason !== null ? sql`clock_timestamp()` : null,
      updated_at: sql`now()`,
    })
    .where("account_id", "=", accountId)
    .returning("backfill_started_at")
    .executeTakeFirstOrThrow();
  return row.backfill_started_at as Date;
}

/**
 * Checkpoints one listed page of the run that started at `runStartedAt` (compare-and-set: a run
 * restarted meanwhile, e.g. by an expired cursor, makes this a no-op and returns false).
 */
export async function checkpointPage(
  trx: Transaction<Database>,
  accountId: number,
  runStartedAt: Date,
  page: { nextPageToken: string | null; listed: number; stored: number },
): Promise<boolean> {
  const done = page.nextPageToken === null;
  const res = await trx
    .updateTable("sync_state")
    .set((eb) => ({
      backfill_page_token: page.nextPageToken,
      backfill_pages: eb("backfill_pages", "+", 1),
      backfill_listed: eb("backfill_listed", "+", page.listed),
      backfill_stored: eb("backfill_stored", "+", page.stored),
      ...(done
        ? {
            backfill_phase: "done" as const,
            backfill_finished_at: sql`now()`,
            resync_reason: null,
            resync_started_at: null,
            last_sync_at: sql`now()`,
          }
        : {}),
      updated_at: sql`now()`,
    }))
    .where("account_id", "=", accountId)
    .where("backfill_phase", "=", "listing")
    .where("backfill_started_at", "=", runStartedAt)
    .executeTakeFirst();
  const advanced = Number(res.numUpdatedRows) === 1;
  // The run's last page: no older fetch of this run can commit any more, so the tombstones that
  // guarded against one (rows of messages deleted before we ever stored them) can go.
  if (advanced && done) await purgeTombstones(trx, accountId);
  return advanced;
}

/** Deletes tombstones: deleted rows that never held a message (no date, sender, subject or body). */
export async function purgeTombstones(trx: Executor, accountId: number): Promise<number> {
  const res = await trx
    .deleteFrom("messages")
    .where("account_id", "=", accountId)
    .where("deleted_at", "is not", null)
    .where("internal_date", "is", null)
    .where("from_address", "is", null)
    .where("subject", "is", null)
    .where("body_text", "is", null)
    .where(sql<boolean>`NOT EXISTS (SELECT 1 FROM attachments a WHERE a.message_id = messages.id)`)
    .executeTakeFirst();
  return Number(res.numDeletedRows);
}

/** Moves the cursor forward to `historyId` (numeric compare); a smaller or equal id is ignored. */
export async function advanceCursor(trx: Executor, accountId: number, historyId: HistoryId): Promise<boolean> {
  const res = await trx
    .updateTable("sync_state")
    .set({ history_id: historyId, cursor_advanced_at: sql`now()`, last_sync_at: sql`now()`, updated_at: sql`now()` })
    .where("account_id", "=", accountId)
    .where(sql<boolean>`(history_id IS NULL OR history_id < ${historyId}::numeric)`)
    .executeTakeFirst();
  if (Number(res.numUpdatedRows) === 0) {
    await trx.updateTable("sync_state").set({ last_sync_at: sql`now()` }).where("account_id", "=", accountId).execute();
    return false;
  }
  return true;
}

export async function recordSyncError(db: Executor, accountId: number, kind: string, message: string): Promise<void> {
  await db
    .updateTable("sync_state")
    .set({
      last_error: message.slice(0, 2000),
      last_error_kind: kind,
      last_error_at: sql`now()`,
      updated_at: sql`now()`,
    })
    .where("account_id", "=", accountId)
    .execute();
}

export async function setThrottledUntil(db: Executor, accountId: number, until: Date | null): Promise<void> {
  await db
    .updateTable("sync_state")
    .set({ throttled_until: until, updated_at: sql`now()` })
    .where("account_id", "=", accountId)
    .execute();
}

/** Stores a users.watch answer. An upsert: on connect, the watch may run before the first backfill has created the row. */
export async function recordWatch(
  db: Executor,
  accountId: number,
  watch: { expiration: Date; historyId: HistoryId },
): Promise<void> {
  const watchState = { watch_expiration: watch.expiration, watch_history_id: watch.historyId, updated_at: new Date() };
  await db
    .insertInto("sync_state")
    .values({ account_id: accountId, ...watchState })
    .onConflict((oc) => oc.column("account_id").doUpdateSet(watchState))
    .execute();
}

/** Forgets the watch's expiry (stopped, or left to lapse): the account counts as unwatched. */
export async function clearWatchExpiration(db: Executor, accountId: number): Promise<void> {
  await db
    .updateTable("sync_state")
    .set({ watch_expiration: null, updated_at: new Date() })
    .where("account_id", "=", accountId)
    .execute();
}

/** When the last push for the account arrived (the poll fallback skips accounts that get pushes). */
export async function recordPushReceived(db: Executor, accountId: number, at: Date): Promise<void> {
  await db.updateTable("sync_state").set({ last_push_at: at }).where("account_id", "=", accountId).execute();
}

/** A job succeeded: the account is no longer throttled nor in error. Writes only when there is something to clear. */
export async function clearThrottleAndError(db: Executor, accountId: number): Promise<void> {
  await db
    .updateTable("sync_state")
    .set({ throttled_until: null, last_error: null, last_error_kind: null })
    .where("account_id", "=", accountId)
    .where((eb) => eb.or([eb("throttled_until", "is not", null), eb("last_error", "is not", null)]))
    .execute();
}

/**
 * How many active accounts have backfill work: a run in progress, or none yet (connected, its first
 * turn queued: no sync_state row until it runs). They take turns (src/sync/fair-share.ts).
 */
export async function countBackfillsInProgress(db: Executor): Promise<number> {
  const { n } = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM accounts a LEFT JOIN sync_state s ON s.account_id = a.id
    WHERE a.status = 'active' AND (s.account_id IS NULL OR s.backfill_phase <> 'done')`
    .execute(db)
    .then((r) => r.rows[0] as { n: number });
  return n;
}

/** How many accounts' backfill runs have finished (a benchmark's end condition). */
export async function countBackfillsDone(db: Executor): Promise<number> {
  const { done } = await sql<{
    done: number;
  }>`SELECT count(*)::int AS done FROM sync_state WHERE backfill_phase = 'done'`
    .execute(db)
    .then((r) => r.rows[0] as { done: number });
  return done;
}
