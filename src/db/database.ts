// The kysely Database type (kept equal to the applied migrations; test/integration/schema.test.ts
// compares the two), the Executor every repository function takes, and the one place a pg pool is
// created.
import type { ColumnType, Generated, Transaction } from "kysely";
import { Kysely, PostgresDialect, sql } from "kysely";
import pg from "pg";

/** History ids are uint64: numeric(20,0), which pg returns as a decimal string. */
export type HistoryId = string;
type Timestamp = ColumnType<Date, Date | string, Date | string>;
type DefaultedTimestamp = ColumnType<Date, Date | string | undefined, Date | string>;
type Defaulted<T> = ColumnType<T, T | undefined, T>;
/** Generated columns: readable, never written. */
type ReadOnly<T> = ColumnType<T, never, never>;

export type AccountStatus = "active" | "reauth_required" | "disabled";
export type BackfillPhase = "pending" | "listing" | "done";

export interface AccountsTable {
  id: Generated<number>;
  email: string;
  status: Defaulted<AccountStatus>;
  status_reason: string | null;
  scopes: Defaulted<string[]>;
  refresh_token_encrypted: string | null;
  access_token_encrypted: string | null;
  access_token_expires_at: Timestamp | null;
  token_key_id: string | null;
  created_at: DefaultedTimestamp;
  updated_at: DefaultedTimestamp;
}

export interface SyncStateTable {
  account_id: number;
  pinned_history_id: HistoryId | null;
  history_id: HistoryId | null;
  cursor_advanced_at: Timestamp | null;
  backfill_phase: Defaulted<BackfillPhase>;
  backfill_page_token: string | null;
  backfill_pages: Defaulted<number>;
  backfill_listed: Defaulted<number>;
  backfill_stored: Defaulted<number>;
  backfill_estimate: number | null;
  backfill_query: string | null;
  /** The run's pinned scope (migration 0002); null on runs started before it: live config. */
  backfill_label_ids: string[] | null;
  backfill_include_spam_trash: boolean | null;
  backfill_may_sweep: boolean | null;
  backfill_started_at: Timestamp | null;
  backfill_finished_at: Timestamp | null;
  resync_reason: string | null;
  resync_started_at: Timestamp | null;
  last_sync_at: Timestamp | null;
  last_push_at: Timestamp | null;
  last_error: string | null;
  last_error_kind: string | null;
  last_error_at: Timestamp | null;
  throttled_until: Timestamp | null;
  watch_expiration: Timestamp | null;
  watch_history_id: HistoryId | null;
  updated_at: DefaultedTimestamp;
}

export interface MessagesTable {
  id: Generated<number>;
  account_id: number;
  gmail_id: string;
  thread_id: string;
  history_id: HistoryId | null;
  internal_date: Timestamp | null;
  label_ids: Defaulted<string[]>;
  from_address: string | null;
  to_addresses: Defaulted<string[]>;
  cc_addresses: Defaulted<string[]>;
  subject: string | null;
  message_id_header: string | null;
  in_reply_to: string | null;
  snippet: string | null;
  body_text: string | null;
  size_estimate: number | null;
  deleted_at: Timestamp | null;
  created_at: DefaultedTimestamp;
  updated_at: DefaultedTimestamp;
  search: ReadOnly<string>;
}

export interface AttachmentsTable {
  id: Generated<number>;
  message_id: number;
  part_id: string;
  filename: string | null;
  mime_type: string | null;
  detected_type: string | null;
  content_id: string | null;
  size_bytes: number | null;
  checksum: string | null;
  extracted_text: string | null;
  text_truncated: Defaulted<boolean>;
  metadata: Defaulted<Record<string, unknown>>;
  skipped_reason: string | null;
  extracted_at: Timestamp | null;
  created_at: DefaultedTimestamp;
  search: ReadOnly<string>;
}

export interface DeadLettersTable {
  id: Generated<number>;
  account_id: number;
  gmail_id: string;
  reason: string;
  detail: string | null;
  attempts: Defaulted<number>;
  first_failed_at: DefaultedTimestamp;
  last_failed_at: DefaultedTimestamp;
  parked_at: Timestamp | null;
  resolved_at: Timestamp | null;
  /** When the retry step fetches it again (migration 0002); null once resolved. */
  next_attempt_at: Timestamp | null;
}

/** The change feed (migration 0003, src/db/changes.ts): one row per change, in commit order. */
export interface ChangesTable {
  seq: Generated<number>;
  account_id: number;
  kind: string;
  historic: boolean;
  gmail_id: string | null;
  thread_id: string | null;
  labels_added: string[] | null;
  labels_removed: string[] | null;
  attachment_id: number | null;
  part_id: string | null;
  status: string | null;
  reason: string | null;
  created_at: DefaultedTimestamp;
}

/** One row: how far retention has pruned the change feed. */
export interface ChangeFeedStateTable {
  id: Defaulted<boolean>;
  pruned_through: Defaulted<number>;
  pruned_at: Timestamp | null;
}

/** Markers of transactions that staged changes (src/db/changes.ts); deleted before their commit ends. */
export interface ChangeFeedPendingTable {
  txid: Defaulted<number>;
}

export interface Database {
  accounts: AccountsTable;
  sync_state: SyncStateTable;
  messages: MessagesTable;
  attachments: AttachmentsTable;
  dead_letters: DeadLettersTable;
  changes: ChangesTable;
  change_feed_state: ChangeFeedStateTable;
  change_feed_pending: ChangeFeedPendingTable;
}

export type Db = Kysely<Database>;

/**
 * What a repository function runs its query on: the pool, or a transaction it is part of (so the
 * caller decides the transaction boundaries). Functions that open a transaction or hold a session
 * themselves take a Db.
 */
export type Executor = Kysely<Database> | Transaction<Database>;

/**
 * `gmail_id = ANY($1::text[])`: a list of ids as ONE bind parameter. Kysely's `in` writes one
 * parameter per id, and a history window that touches more than 65,535 messages (mark 80,000
 * read, empty a large Trash) would exceed Postgres's limit and wedge the sync.
 */
export function gmailIdIn(ids: readonly string[]) {
  return sql<boolean>`gmail_id = ANY(${[...ids]}::text[])`;
}

// bigint columns hold identity counters and byte sizes, far below 2^53: read them as numbers.
// numeric (history ids) stays a decimal string: it can exceed 2^64, let alone 2^53.
const types = {
  getTypeParser(oid: number, format?: "text" | "binary") {
    if (oid === pg.types.builtins.INT8) return (v: string) => Number(v);
    return pg.types.getTypeParser(oid, format);
  },
};

export function createPool(databaseUrl: string, max: number): pg.Pool {
  const pool = new pg.Pool({ connectionString: databaseUrl, max, types, connectionTimeoutMillis: 10_000 });
  // An idle client losing its connection (server restart, pg_terminate_backend) emits here;
  // without a listener it would crash the process. The pool replaces the client.
  pool.on("error", () => {});
  // The pool listens only while a client is idle in it. A checked-out client between queries (the
  // advisory-lock session a sync holds for its whole run) that loses its connection emits on the
  // client itself: unheard, that crashes the worker. Its next query fails instead, and release
  // drops the broken client.
  pool.on("connect", (client) => client.on("error", () => {}));
  return pool;
}

export function createDb(databaseUrl: string, max = 10): Db {
  return new Kysely<Database>({ dialect: new PostgresDialect({ pool: createPool(databaseUrl, max) }) });
}
