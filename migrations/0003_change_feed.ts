// The change feed (issue 19): an outbox of what changed in the mirror, written in the same
// transaction as the change it describes, for consumers that follow the mirror (a search index, a
// CRM, an assistant) instead of re-reading tables.
// - changes: one row per change, `seq` increasing in commit order. Ids, labels and statuses only:
//   never a body or an attachment's text (consumers read the rows). No foreign key to accounts: a
//   purged account's changes (the last one says so) stay until retention prunes them.
// - How seqs follow commit order: a transaction stages its changes in a transaction-local setting
//   and a marker row (src/db/changes.ts appendChanges); a deferred constraint trigger on the marker
//   runs inside COMMIT, takes the feed's transaction-level advisory lock, and only then draws the
//   seqs and inserts the rows (and NOTIFYs). The lock is held until the commit is visible, so no
//   lower seq can become visible after a higher one; no application round trip happens while it is
//   held; a transaction that rolls back before its commit draws no seq at all.
// - change_feed_state: one row; `pruned_through` is the highest seq retention has deleted, so a
//   cursor below it is known to have missed changes (410), while any other gap is not.
import { type Kysely, sql } from "kysely";

const up_statements = [
  `CREATE TABLE changes (
    seq bigserial PRIMARY KEY,
    account_id integer NOT NULL,
    kind text NOT NULL CHECK (kind IN ('message.added', 'message.deleted', 'message.labels_changed', 'attachment.extracted', 'account.status_changed')),
    historic boolean NOT NULL,
    gmail_id text,
    thread_id text,
    labels_added text[],
    labels_removed text[],
    attachment_id bigint,
    part_id text,
    status text,
    reason text,
    created_at timestamptz NOT NULL DEFAULT statement_timestamp()
  )`,
  `CREATE INDEX changes_account_seq_idx ON changes (account_id, seq)`,
  // Rows arrive in created_at order (written under the feed lock), so a BRIN index serves reads by
  // time ("what changed since 09:00") at almost no cost per insert. Retention walks the oldest rows
  // by seq instead (the same order).
  `CREATE INDEX changes_created_at_idx ON changes USING brin (created_at)`,
  `CREATE TABLE change_feed_state (
    id boolean PRIMARY KEY DEFAULT true CHECK (id),
    pruned_through bigint NOT NULL DEFAULT 0,
    pruned_at timestamptz
  )`,
  `INSERT INTO change_feed_state DEFAULT VALUES`,
  // One marker row per staging call, deleted by the trigger in the same transaction: unlogged (no
  // WAL for rows that never outlive their transaction).
  `CREATE UNLOGGED TABLE change_feed_pending (txid bigint NOT NULL DEFAULT pg_current_xact_id()::text::bigint)`,
  `CREATE INDEX change_feed_pending_txid_idx ON change_feed_pending (txid)`,
  // 1735589891 = 0x67730003: the feed's advisory lock key (src/sync/lock.ts uses 0x67730001/2).
  `CREATE FUNCTION change_feed_flush() RETURNS trigger LANGUAGE plpgsql AS $$
  DECLARE
    pending text := current_setting('gmail_sync.pending_changes', true);
    at timestamptz;
    last bigint;
  BEGIN
    DELETE FROM change_feed_pending WHERE txid = pg_current_xact_id()::text::bigint;
    IF pending IS NULL OR pending = '' THEN
      RETURN NULL; -- another marker of this transaction flushed everything already
    END IF;
    PERFORM set_config('gmail_sync.pending_changes', '', true);
    PERFORM pg_advisory_xact_lock(1735589891, 0);
    at := clock_timestamp();
    WITH ins AS (
      INSERT INTO changes (account_id, kind, historic, gmail_id, thread_id, labels_added, labels_removed,
                           attachment_id, part_id, status, reason, created_at)
      SELECT account_id, kind, historic, gmail_id, thread_id, labels_added, labels_removed, attachment_id,
             part_id, status, reason, at
      FROM ROWS FROM (jsonb_to_recordset(pending::jsonb) AS (account_id integer, kind text, historic boolean,
             gmail_id text, thread_id text, labels_added text[], labels_removed text[], attachment_id bigint,
             part_id text, status text, reason text)) WITH ORDINALITY
           AS x(account_id, kind, historic, gmail_id, thread_id, labels_added, labels_removed, attachment_id,
                part_id, status, reason, ord)
      ORDER BY ord
      RETURNING seq)
    SELECT max(seq) INTO last FROM ins;
    IF last IS NOT NULL THEN
      PERFORM pg_notify('gmail_sync_changes', last::text);
    END IF;
    RETURN NULL;
  END $$`,
  `CREATE CONSTRAINT TRIGGER change_feed_flush AFTER INSERT ON change_feed_pending
     DEFERRABLE INITIALLY DEFERRED FOR EACH ROW EXECUTE FUNCTION change_feed_flush()`,
];

export async function up(db: Kysely<any>): Promise<void> {
  for (const statement of up_statements) await sql.raw(statement).execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ["change_feed_pending", "change_feed_state", "changes"])
    await sql.raw(`DROP TABLE IF EXISTS ${table}`).execute(db);
  await sql.raw(`DROP FUNCTION IF EXISTS change_feed_flush()`).execute(db);
}
