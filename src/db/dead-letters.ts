// Per-message outcomes that must not pin the cursor. A retryable failure is counted here (parked_at
// null) and blocks the cursor until it either succeeds or reaches the attempt limit; then it is
// parked (a dead letter: visible in `gmail-sync dead-letters` and a metric) and the cursor moves on.
import { type Kysely, sql, type Transaction } from "kysely";
import { type Database, gmailIdIn } from "./database.ts";

type Executor = Kysely<Database> | Transaction<Database>;

/** Attempts (job runs) before a message that keeps failing transiently is parked. */
export const MAX_MESSAGE_ATTEMPTS = 3;

/**
 * Counts one failed attempt for a message; parks it at once when `permanent` or when it has now
 * failed MAX_MESSAGE_ATTEMPTS times. Returns whether it is parked (no longer blocks the cursor).
 */
export async function recordMessageFailure(
  db: Executor,
  accountId: number,
  gmailId: string,
  failure: { reason: string; detail: string; permanent: boolean },
): Promise<boolean> {
  const row = await db
    .insertInto("dead_letters")
    .values({
      account_id: accountId,
      gmail_id: gmailId,
      reason: failure.reason,
      detail: failure.detail.slice(0, 2000),
      attempts: 1,
      parked_at: failure.permanent || MAX_MESSAGE_ATTEMPTS <= 1 ? sql`now()` : null,
    })
    .onConflict((oc) =>
      oc.columns(["account_id", "gmail_id"]).doUpdateSet({
        reason: failure.reason,
        detail: failure.detail.slice(0, 2000),
        // A resolved row that fails again starts a new count.
        attempts: sql`CASE WHEN dead_letters.resolved_at IS NOT NULL THEN 1 ELSE dead_letters.attempts + 1 END`,
        first_failed_at: sql`CASE WHEN dead_letters.resolved_at IS NOT NULL THEN now() ELSE dead_letters.first_failed_at END`,
        last_failed_at: sql`now()`,
        resolved_at: null,
        parked_at: sql`CASE
          WHEN dead_letters.parked_at IS NOT NULL AND dead_letters.resolved_at IS NULL THEN dead_letters.parked_at
          WHEN ${failure.permanent} OR (CASE WHEN dead_letters.resolved_at IS NOT NULL THEN 1 ELSE dead_letters.attempts + 1 END) >= ${MAX_MESSAGE_ATTEMPTS} THEN now()
          ELSE NULL END`,
      }),
    )
    .returning(["parked_at"])
    .executeTakeFirstOrThrow();
  return row.parked_at !== null;
}

/** Marks open outcomes of these messages resolved (the message is now stored or known gone). */
export async function resolveDeadLetters(db: Executor, accountId: number, gmailIds: string[]): Promise<void> {
  if (gmailIds.length === 0) return;
  await db
    .updateTable("dead_letters")
    .set({ resolved_at: sql`now()` })
    .where("account_id", "=", accountId)
    .where(gmailIdIn(gmailIds))
    .where("resolved_at", "is", null)
    .execute();
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
}

/** Open rows (unresolved); `parkedOnly` leaves out messages still being retried. */
export async function listDeadLetters(db: Executor, opts: { parkedOnly?: boolean; accountId?: number } = {}): Promise<DeadLetterRow[]> {
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
    ])
    .where("dead_letters.resolved_at", "is", null)
    .$if(opts.parkedOnly === true, (qb) => qb.where("dead_letters.parked_at", "is not", null))
    .$if(opts.accountId !== undefined, (qb) => qb.where("dead_letters.account_id", "=", opts.accountId as number))
    .orderBy("dead_letters.id")
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
  }));
}
