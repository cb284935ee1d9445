// The retry ledger and per-run scope (issue 15).
// - dead_letters.next_attempt_at: a failed message is retried on its own schedule (backoff while
//   it is being retried, hourly once parked) instead of holding the sync cursor back.
// - sync_state.backfill_label_ids / backfill_include_spam_trash / backfill_may_sweep: the scope a
//   backfill run lists with is pinned when the run starts, so a configuration change mid-run can
//   neither mix two scopes in one listing nor let the end-of-run sweep delete mail outside the
//   scope the run listed. NULL on runs started before this migration: they read the live config.
import { type Kysely, sql } from "kysely";

const up_statements = [
  `ALTER TABLE dead_letters ADD COLUMN next_attempt_at timestamptz`,
  // Open rows already being retried when this lands are due at once.
  `UPDATE dead_letters SET next_attempt_at = CASE WHEN parked_at IS NULL THEN now() ELSE parked_at + interval '1 hour' END WHERE resolved_at IS NULL`,
  `CREATE INDEX dead_letters_due_idx ON dead_letters (next_attempt_at) WHERE resolved_at IS NULL`,
  `ALTER TABLE sync_state ADD COLUMN backfill_label_ids text[]`,
  `ALTER TABLE sync_state ADD COLUMN backfill_include_spam_trash boolean`,
  `ALTER TABLE sync_state ADD COLUMN backfill_may_sweep boolean`,
];

export async function up(db: Kysely<any>): Promise<void> {
  for (const statement of up_statements) await sql.raw(statement).execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const statement of [
    `DROP INDEX IF EXISTS dead_letters_due_idx`,
    `ALTER TABLE dead_letters DROP COLUMN IF EXISTS next_attempt_at`,
    `ALTER TABLE sync_state DROP COLUMN IF EXISTS backfill_label_ids`,
    `ALTER TABLE sync_state DROP COLUMN IF EXISTS backfill_include_spam_trash`,
    `ALTER TABLE sync_state DROP COLUMN IF EXISTS backfill_may_sweep`,
  ]) {
    await sql.raw(statement).execute(db);
  }
}
