// The retry ledger: every message the sync could not store is a row here, written in the same
// transaction that moves the cursor or the backfill checkpoint past it — so the cursor never waits
// on one message, and the message is never forgotten. A row is fetched again by the retry step
// (src/sync/retry-messages.ts) when next_attempt_at comes: with backoff while it is being retried,
// hourly once it is parked. Parked (a dead letter: `gmail-sync dead-letters`, a metric) means a
// person should look: a permanent failure at once, a transient one only after MAX_MESSAGE_ATTEMPTS
// attempts AND MIN_PARK_AGE_MINUTES since its first failure, so a one-minute outage parks nothing.
import { sql } from "kysely";
import { type Executor, gmailIdIn } from "./database.ts";

/** Attempts before a transiently failing message may be parked… */
export const MAX_MESSAGE_ATTEMPTS = 5;
/** …and how long it must have been failing by then. */
export const MIN_PARK_AGE_MINUTES = 30;
/** Backoff between attempts of an unparked row: 1 s, 2 s, 4 s … capped here. */
const MAX_BACKOFF_SECONDS = 600;
/** A parked row is still tried again this often (it may have been a long outage after all). */
const PARKED_RETRY_MINUTES = 60;

export interface RecordedFailure {
  /** Parked now (a dead letter); false while it is still being retried on its backoff. */
  parked: boolean;
  nextAttemptAt: Date;
}

/**
 * Counts one failed attempt for a message and schedules the next one. `permanent` parks it at once;
 * a transient failure is parked only once it has failed MAX_MESSAGE_ATTEMPTS times over at least
 * MIN_PARK_AGE_MINUTES. A resolved row that fails again starts a new count.
 */
export async function recordMessageFailure(
  db: Executor,
  accountId: number,
  gmailId: string,
  failure: { reason: string; detail: string; permanent: boolean },
): Promise<RecordedFailure> {
  const fresh = sql<boolean>`dead_letters.resolved_at IS NOT NULL`;
  const attempts = sql<number>`CASE WHEN ${fresh} THEN 1 ELSE dead_letters.attempts + 1 END`;
  const firstFailed = sql<Date>`CASE WHEN ${fresh} THEN now() ELSE dead_letters.first_failed_at END`;
  const parkNow = sql<boolean>`(${failure.permanent} OR (${attempts} >= ${MAX_MESSAGE_ATTEMPTS} AND ${firstFailed} <= now() - make_interval(mins => ${MIN_PARK_AGE_MINUTES})))`;
  const parkedAt = sql<Date | null>`CASE
    WHEN dead_letters.parked_at IS NOT NULL AND NOT ${fresh} THEN dead_letters.parked_at
    WHEN ${parkNow} THEN now()
    ELSE NULL END`;
  const row = await db
    .insertInto("dead_letters")
    .values({
      account_id: accountId,
      gmail_id: gmailId,
      reason: failure.reason,
      detail: failure.detail.slice(0, 2000),
      attempts: 1,
      parked_at: failure.permanent ? sql`now()` : null,
      next_attempt_at: failure.permanent
        ? sql`now() + make_interval(mins => ${PARKED_RETRY_MINUTES})`
        : sql`now() + interval '1 second'`,
    })
    .onConflict((oc) =>
      oc.columns(["account_id", "gmail_id"]).doUpdateSet({
        reason: failure.reason,
        detail: failure.detail.slice(0, 2000),
        attempts,
        first_failed_at: firstFailed,
        last_failed_at: sql`now()`,
        resolved_at: null,
        parked_at: parkedAt,
        next_attempt_at: sql`CASE WHEN (${parkedAt}) IS NOT NULL THEN now() + make_interval(mins => ${PARKED_RETRY_MINUTES})
          ELSE now() + make_interval(secs => least(${MAX_BACKOFF_SECONDS}, power(2, least(20, ${attempts} - 1)))) END`,
      }),
    )
    .returning(["parked_at", "next_attempt_at"])
    .executeTakeFirstOrThrow();
  return { parked: row.parked_at !== null, nextAttemptAt: row.next_attempt_at ?? new Date() };
}

/** Marks open outcomes of these messages resolved (the message is now stored or known gone). */
export async function resolveDeadLetters(db: Executor, accountId: number, gmailIds: string[]): Promise<void> {
  if (gmailIds.length === 0) return;
  await db
    .updateTable("dead_letters")
    .set({ resolved_at: sql`now()`, next_attempt_at: null })
    .where("account_id", "=", accountId)
    .where(gmailIdIn(gmailIds))
    .where("resolved_at", "is", null)
    .execute();
}

export interface DueMessage {
  gmailId: string;
  reason: string;
  parked: boolean;
}

/** Open rows whose next attempt is due (all open rows, parked or not, with `includeNotDue`), oldest due first. */
export async function dueMessages(
  db: Executor,
  accountId: number,
  opts: { limit: number; includeNotDue?: boolean; parkedOnly?: boolean },
): Promise<DueMessage[]> {
  const rows = await db
    .selectFrom("dead_letters")
    .select(["gmail_id", "reason", "parked_at"])
    .where("account_id", "=", accountId)
    .where("resolved_at", "is", null)
    .$if(opts.includeNotDue !== true, (qb) => qb.where("next_attempt_at", "<=", sql<Date>`now()`))
    .$if(opts.parkedOnly === true, (qb) => qb.where("parked_at", "is not", null))
    .orderBy("next_attempt_at")
    .limit(opts.limit)
    .execute();
  return rows.map((r) => ({ gmailId: r.gmail_id, reason: r.reason, parked: r.parked_at !== null }));
}

/** When the account's next unparked row is due (parked rows wait for the hourly tick); null: none. */
export async function nextRetryAt(db: Executor, accountId: number): Promise<Date | null> {
  const row = await db
    .selectFrom("dead_letters")
    .select(sql<Date | null>`min(next_attempt_at)`.as("at"))
    .where("account_id", "=", accountId)
    .where("resolved_at", "is", null)
    .where("parked_at", "is", null)
    .executeTakeFirst();
  return row?.at ?? null;
}

/** Active accounts with a ledger row due now (the hourly tick's work list). */
export async function accountsWithDueMessages(db: Executor): Promise<number[]> {
  const rows = await db
    .selectFrom("dead_letters")
    .innerJoin("accounts", "accounts.id", "dead_letters.account_id")
    .select("dead_letters.account_id")
    .distinct()
    .where("accounts.status", "=", "active")
    .where("dead_letters.resolved_at", "is", null)
    .where("dead_letters.next_attempt_at", "<=", sql<Date>`now()`)
    .execute();
  return rows.map((r) => r.account_id);
}

export interface DeadLetterRow {
  id: number;
  accountId: number;
  email: string;
  gmailId: string;
  reason: string;
  detail: string | null;
  attempts: number;
  firstFailedAt: Date;
  lastFailedAt: Date;
  parkedAt: Date | null;
  nextAttemptAt: Date | null;
}

/** Open rows (unresolved), oldest first; `parkedOnly` leaves out messages still being retried; at most `limit`. */
export async function listDeadLetters(
  db: Executor,
  opts: { parkedOnly?: boolean; accountId?: number; limit?: number } = {},
): Promise<DeadLetterRow[]> {
  const rows = await db
    .selectFrom("dead_letters")
    .innerJoin("accounts", "accounts.id", "dead_letters.account_id")
    .select([
      "dead_letters.id",
      "dead_letters.account_id",
      "accounts.email",
      "dead_letters.gmail_id",
      "dead_letters.reason",
      "dead_letters.detail",
      "dead_letters.attempts",
      "dead_letters.first_failed_at",
      "dead_letters.last_failed_at",
      "dead_letters.parked_at",
      "dead_letters.next_attempt_at",
    ])
    .where("dead_letters.resolved_at", "is", null)
    .$if(opts.parkedOnly === true, (qb) => qb.where("dead_letters.parked_at", "is not", null))
    .$if(opts.accountId !== undefined, (qb) => qb.where("dead_letters.account_id", "=", opts.accountId as number))
    .orderBy("dead_letters.id")
    .$if(opts.limit !== undefined, (qb) => qb.limit(opts.limit as number))
    .execute();
  return rows.map((r) => ({
    id: r.id,
    accountId: r.account_id,
    email: r.email,
    gmailId: r.gmail_id,
    reason: r.reason,
    detail: r.detail,
    attempts: r.attempts,
    firstFailedAt: r.first_failed_at,
    lastFailedAt: r.last_failed_at,
    parkedAt: r.parked_at,
    nextAttemptAt: r.next_attempt_at,
  }));
}

/**
 * Makes the account's parked rows due now (the operator page's "retry dead letters"): the next
 * retry job fetches them again, under the account's lock, as the hourly tick would. Returns how many.
 */
export async function makeParkedDue(db: Executor, accountId: number): Promise<number> {
  const res = await db
    .updateTable("dead_letters")
    .set({ next_attempt_at: sql`now()` })
    .where("account_id", "=", accountId)
    .where("resolved_at", "is", null)
    .where("parked_at", "is not", null)
    .executeTakeFirst();
  return Number(res.numUpdatedRows);
}
