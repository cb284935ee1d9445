// Reads of accounts together with their sync state: the maintenance ticks' work lists, the push
// route's account lookup and the per-account status view. The accounts ⋈ sync_state join is
// written once, in accountsJoinSyncState; the metrics and demo queries use it too.
import {
  type QueryCreator,
  type SelectQueryBuilderWithInnerJoin,
  type SelectQueryBuilderWithLeftJoin,
  sql,
} from "kysely";
import type { AccountStatus, Database, Executor } from "./database.ts";

/** Nothing selected yet (kysely's own `{}`, spelled so the linter does not read it as "any object"). */
type NoColumns = Record<never, never>;

/**
 * `accounts JOIN sync_state` on the account id. "left" keeps accounts whose sync_state row does not
 * exist yet (created by the first backfill or watch; its columns read null); "inner" only those
 * with one. Takes a QueryCreator so that it also serves inside a WITH.
 */
export function accountsJoinSyncState(
  db: QueryCreator<Database>,
  join: "left",
): SelectQueryBuilderWithLeftJoin<Database, "accounts", NoColumns, "sync_state">;
export function accountsJoinSyncState(
  db: QueryCreator<Database>,
  join: "inner",
): SelectQueryBuilderWithInnerJoin<Database, "accounts", NoColumns, "sync_state">;
export function accountsJoinSyncState(db: QueryCreator<Database>, join: "left" | "inner") {
  const accounts = db.selectFrom("accounts");
  return join === "left"
    ? accounts.leftJoin("sync_state", "sync_state.account_id", "accounts.id")
    : accounts.innerJoin("sync_state", "sync_state.account_id", "accounts.id");
}

/** Active accounts whose backfill is in `phase` (and, given, whose run started over `startedDaysAgo` days ago). */
export async function activeAccountsInPhase(
  db: Executor,
  phase: "done" | "listing",
  startedDaysAgo?: number,
): Promise<number[]> {
  const rows = await accountsJoinSyncState(db, "inner")
    .select("accounts.id")
    .where("accounts.status", "=", "active")
    .where("sync_state.backfill_phase", "=", phase)
    .$if(startedDaysAgo !== undefined, (qb) =>
      qb.where("sync_state.backfill_started_at", "<", sql<Date>`now() - make_interval(days => ${startedDaysAgo})`),
    )
    .execute();
  return rows.map((r) => r.id);
}

/** Active accounts with a backfill run in progress, and the pages each has completed. */
export async function backfillsInProgress(db: Executor): Promise<Array<{ accountId: number; pagesDone: number }>> {
  const rows = await accountsJoinSyncState(db, "inner")
    .select(["accounts.id", "sync_state.backfill_pages"])
    .where("accounts.status", "=", "active")
    .where("sync_state.backfill_phase", "=", "listing")
    .execute();
  return rows.map((r) => ({ accountId: r.id, pagesDone: r.backfill_pages }));
}

/**
 * Active accounts with a cursor (first backfill pinned it) that neither a push nor a sync has
 * touched for `minutes`: a dropped push or a lapsed watch must not leave a mailbox behind.
 */
export async function silentAccounts(db: Executor, minutes: number): Promise<number[]> {
  const cutoff = sql<Date>`now() - make_interval(mins => ${minutes})`;
  const rows = await accountsJoinSyncState(db, "inner")
    .select("accounts.id")
    .where("accounts.status", "=", "active")
    .where("sync_state.history_id", "is not", null)
    // A backfill in progress ends with an incremental sync from its pinned cursor: polling it
    // meanwhile only re-reads history (2,000 new accounts polled every minute flooded the live
    // queue ahead of pushes in the fleet benchmark: push p99 19 s). The poll tick nudges its turns
    // instead (src/maintenance.ts).
    .where("sync_state.backfill_phase", "<>", "listing")
    .where((eb) => eb.or([eb("sync_state.last_push_at", "is", null), eb("sync_state.last_push_at", "<", cutoff)]))
    .where((eb) => eb.or([eb("sync_state.last_sync_at", "is", null), eb("sync_state.last_sync_at", "<", cutoff)]))
    .execute();
  return rows.map((r) => r.id);
}

/** Active accounts whose watch is missing or expires within `withinMs` (soonest first). */
export async function accountsNeedingWatch(db: Executor, withinMs: number): Promise<number[]> {
  const rows = await accountsJoinSyncState(db, "left")
    .select("accounts.id")
    .where("accounts.status", "=", "active")
    .where((eb) =>
      eb.or([
        eb("sync_state.watch_expiration", "is", null),
        eb("sync_state.watch_expiration", "<", new Date(Date.now() + withinMs)),
      ]),
    )
    .orderBy("sync_state.watch_expiration", (ob) => ob.asc().nullsFirst())
    .execute();
  return rows.map((r) => r.id);
}

/**
 * The account a push names, and whether the push is stale: our cursor is already at or past its
 * historyId (compared in SQL: history ids are uint64 decimals, not JS numbers).
 */
export async function findPushAccount(
  db: Executor,
  email: string,
  historyId: string,
): Promise<{ id: number; status: AccountStatus; stale: boolean } | undefined> {
  return accountsJoinSyncState(db, "left")
    .select([
      "accounts.id",
      "accounts.status",
      sql<boolean>`coalesce(sync_state.history_id >= ${historyId}::numeric, false)`.as("stale"),
    ])
    .where("accounts.email", "=", email)
    .executeTakeFirst();
}

/** Every account (or the one with `email`) with its sync state and the counts `gmail-sync accounts` shows. */
export async function accountStatusRows(db: Executor, opts: { email?: string } = {}) {
  return accountsJoinSyncState(db, "left")
    .select([
      "accounts.id",
      "accounts.email",
      "accounts.status",
      "accounts.status_reason",
      "sync_state.history_id",
      "sync_state.cursor_advanced_at",
      "sync_state.backfill_phase",
      "sync_state.backfill_pages",
      "sync_state.backfill_listed",
      "sync_state.backfill_stored",
      "sync_state.backfill_estimate",
      "sync_state.backfill_started_at",
      "sync_state.backfill_finished_at",
      "sync_state.resync_reason",
      "sync_state.last_sync_at",
      "sync_state.last_error",
      "sync_state.last_error_kind",
      "sync_state.last_error_at",
      "sync_state.throttled_until",
      "sync_state.watch_expiration",
      sql<number>`(SELECT count(*) FROM messages m WHERE m.account_id = accounts.id AND m.deleted_at IS NULL)::int`.as(
        "messages",
      ),
      sql<number>`(SELECT count(*) FROM attachments a JOIN messages m ON m.id = a.message_id WHERE m.account_id = accounts.id AND m.deleted_at IS NULL)::int`.as(
        "attachments",
      ),
      sql<number>`(SELECT count(*) FROM dead_letters d WHERE d.account_id = accounts.id AND d.resolved_at IS NULL AND d.parked_at IS NOT NULL)::int`.as(
        "dead_letters",
      ),
      sql<number>`(SELECT count(*) FROM dead_letters d WHERE d.account_id = accounts.id AND d.resolved_at IS NULL AND d.parked_at IS NULL)::int`.as(
        "retrying",
      ),
      sql<number | null>`extract(epoch FROM now() - sync_state.cursor_advanced_at)::float8`.as("cursor_age"),
      sql<boolean>`coalesce(sync_state.throttled_until > now(), false)`.as("throttled"),
    ])
    .$if(opts.email !== undefined, (qb) => qb.where("accounts.email", "=", (opts.email as string).toLowerCase()))
    .orderBy("accounts.id")
    .execute();
}
