// The aggregate reads behind the state gauges src/metrics-collect.ts exports at each scrape: one
// statement per source, so a scrape costs the same for ten accounts or ten thousand.
import { sql } from "kysely";
import { accountsJoinSyncState } from "./account-status.ts";
import type { Executor } from "./database.ts";

/**
 * Account counts by status and backfill progress, cursor and last-success ages, the watch soonest to
 * expire, and one count per cursor-age range ([from, to) seconds, over enabled accounts) as
 * `age_0`, `age_1`… in the order of `cursorAgeBuckets`.
 */
export async function accountTotals(db: Executor, cursorAgeBuckets: ReadonlyArray<{ from: number; to: number }>) {
  const buckets = cursorAgeBuckets.map((b, i) =>
    sql<number>`count(*) FILTER (WHERE enabled AND cursor_age >= ${b.from} AND cursor_age < ${b.to})`.as(`age_${i}`),
  );
  return db
    .with("a", (qb) =>
      accountsJoinSyncState(qb, "left").select([
        "accounts.status",
        sql<string>`coalesce(sync_state.backfill_phase, 'pending')`.as("phase"),
        sql<boolean>`accounts.status <> 'disabled'`.as("enabled"),
        sql<number>`coalesce(sync_state.backfill_listed, 0)`.as("listed"),
        sql<number>`coalesce(sync_state.backfill_stored, 0)`.as("stored"),
        sql<number | null>`extract(epoch FROM now() - sync_state.cursor_advanced_at)`.as("cursor_age"),
        sql<number>`extract(epoch FROM now() - coalesce(sync_state.last_sync_at, accounts.created_at))`.as(
          "success_age",
        ),
        sql<number | null>`extract(epoch FROM sync_state.watch_expiration - now())`.as("watch_left"),
      ]),
    )
    .selectFrom("a")
    .select([
      sql<number>`count(*) FILTER (WHERE status = 'active' AND phase = 'done')`.as("active"),
      sql<number>`count(*) FILTER (WHERE status = 'active' AND phase <> 'done')`.as("backfilling"),
      sql<number>`count(*) FILTER (WHERE status = 'reauth_required')`.as("reauth_required"),
      sql<number>`count(*) FILTER (WHERE status = 'disabled')`.as("disabled"),
      sql<number>`coalesce(sum(listed), 0)`.as("listed"),
      sql<number>`coalesce(sum(stored), 0)`.as("stored"),
      sql<number | null>`max(cursor_age) FILTER (WHERE enabled)`.as("cursor_age_max"),
      sql<number | null>`max(success_age) FILTER (WHERE status = 'active')`.as("success_age_max"),
      sql<number>`count(*) FILTER (WHERE status = 'active' AND success_age > 3600)`.as("stale"),
      sql<number | null>`min(watch_left) FILTER (WHERE status = 'active')`.as("watch_soonest"),
      sql<number>`count(*) FILTER (WHERE status = 'active' AND watch_left IS NOT NULL)`.as("watched"),
      ...buckets,
    ])
    .executeTakeFirstOrThrow();
}

/** Parked, unresolved ledger rows (dead letters) per failure reason. */
export async function parkedDeadLettersByReason(db: Executor) {
  return db
    .selectFrom("dead_letters")
    .select(["reason", sql<number>`count(*)`.as("n")])
    .where("parked_at", "is not", null)
    .where("resolved_at", "is", null)
    .groupBy("reason")
    .execute();
}

/** Open ledger rows not parked (messages the retry step still has to bring in), and the age in seconds of the oldest. */
export async function retryingMessagesSummary(db: Executor) {
  return db
    .selectFrom("dead_letters")
    .select([
      sql<number>`count(*)`.as("n"),
      sql<number | null>`extract(epoch FROM now() - min(first_failed_at))`.as("oldest"),
    ])
    .where("parked_at", "is", null)
    .where("resolved_at", "is", null)
    .executeTakeFirstOrThrow();
}

/** Cursor and last-success ages in seconds of the first `limit` enabled accounts by id. */
export async function accountAges(db: Executor, limit: number) {
  return accountsJoinSyncState(db, "left")
    .select([
      "accounts.id",
      sql<number | null>`extract(epoch FROM now() - sync_state.cursor_advanced_at)`.as("cursor_age"),
      sql<number>`extract(epoch FROM now() - coalesce(sync_state.last_sync_at, accounts.created_at))`.as("success_age"),
    ])
    .where("accounts.status", "<>", "disabled")
    .orderBy("accounts.id")
    .limit(limit)
    .execute();
}
