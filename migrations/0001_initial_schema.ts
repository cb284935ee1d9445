// Initial schema. The database is the product's output: these table and column names are a public
// interface (README "Database schema"). A landed migration is never edited; add a new one.
import { type Kysely, sql } from "kysely";

const up_statements = [
  `CREATE TABLE accounts (
    id integer GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    email text NOT NULL UNIQUE CHECK (email = lower(email) AND email LIKE '%_@_%'),
    status text NOT NULL DEFAULT 'active' CHECK (status IN ('active', 'reauth_required', 'disabled')),
    status_reason text,
    scopes text[] NOT NULL DEFAULT '{}',
    refresh_token_encrypted text,
    access_token_encrypted text,
    access_token_expires_at timestamptz,
    token_key_id text,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now()
  )`,
  // One row per account. History ids are uint64 in Gmail's API, beyond bigint: numeric(20,0).
  `CREATE TABLE sync_state (
    account_id integer PRIMARY KEY REFERENCES accounts(id) ON DELETE CASCADE,
    pinned_history_id numeric(20,0),
    history_id numeric(20,0),
    cursor_advanced_at timestamptz,
    backfill_phase text NOT NULL DEFAULT 'pending' CHECK (backfill_phase IN ('pending', 'listing', 'done')),
    backfill_page_token text,
    backfill_pages integer NOT NULL DEFAULT 0,
    backfill_listed integer NOT NULL DEFAULT 0,
    backfill_stored integer NOT NULL DEFAULT 0,
    backfill_estimate integer,
    backfill_query text,
    backfill_started_at timestamptz,
    backfill_finished_at timestamptz,
    resync_reason text,
    resync_started_at timestamptz,
    last_sync_at timestamptz,
    last_push_at timestamptz,
    last_error text,
    last_error_kind text,
    last_error_at timestamptz,
    throttled_until timestamptz,
    watch_expiration timestamptz,
    watch_history_id numeric(20,0),
    updated_at timestamptz NOT NULL DEFAULT now()
  )`,
  `CREATE TABLE messages (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id integer NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    gmail_id text NOT NULL,
    thread_id text NOT NULL,
    history_id numeric(20,0),
    internal_date timestamptz,
    label_ids text[] NOT NULL DEFAULT '{}',
    from_address text,
    to_addresses text[] NOT NULL DEFAULT '{}',
    cc_addresses text[] NOT NULL DEFAULT '{}',
    subject text,
    message_id_header text,
    in_reply_to text,
    snippet text,
    body_text text,
    size_estimate integer,
    deleted_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    updated_at timestamptz NOT NULL DEFAULT now(),
    -- Explicit config (one-argument to_tsvector is not immutable) and left() caps: a tsvector over
    -- ~1 MB fails the whole INSERT, so a huge body must not reach it uncut.
    search tsvector GENERATED ALWAYS AS (
      setweight(to_tsvector('simple', left(coalesce(subject, ''), 2000)), 'A') ||
      setweight(to_tsvector('simple', left(coalesce(from_address, ''), 1000)), 'B') ||
      setweight(to_tsvector('simple', left(coalesce(body_text, ''), 200000)), 'C')
    ) STORED,
    UNIQUE (account_id, gmail_id)
  )`,
  `CREATE INDEX messages_account_thread_idx ON messages (account_id, thread_id)`,
  `CREATE INDEX messages_account_internal_date_idx ON messages (account_id, internal_date DESC)`,
  `CREATE INDEX messages_search_idx ON messages USING gin (search)`,
  `CREATE TABLE attachments (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    message_id bigint NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    part_id text NOT NULL,
    filename text,
    mime_type text,
    detected_type text,
    content_id text,
    size_bytes bigint,
    checksum text CHECK (checksum ~ '^[0-9a-f]{64}$'),
    extracted_text text,
    text_truncated boolean NOT NULL DEFAULT false,
    metadata jsonb NOT NULL DEFAULT '{}',
    skipped_reason text,
    extracted_at timestamptz,
    created_at timestamptz NOT NULL DEFAULT now(),
    search tsvector GENERATED ALWAYS AS (
      setweight(to_tsvector('simple', left(coalesce(filename, ''), 1000)), 'B') ||
      setweight(to_tsvector('simple', left(coalesce(extracted_text, ''), 200000)), 'C')
    ) STORED,
    UNIQUE (message_id, part_id)
  )`,
  `CREATE INDEX attachments_checksum_idx ON attachments (checksum)`,
  `CREATE INDEX attachments_search_idx ON attachments USING gin (search)`,
  // Per-message outcomes that must not pin the cursor: failures being retried (parked_at null) and
  // dead letters (parked_at set), visible through the CLI and a metric.
  `CREATE TABLE dead_letters (
    id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    account_id integer NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    gmail_id text NOT NULL,
    reason text NOT NULL,
    detail text,
    attempts integer NOT NULL DEFAULT 1,
    first_failed_at timestamptz NOT NULL DEFAULT now(),
    last_failed_at timestamptz NOT NULL DEFAULT now(),
    parked_at timestamptz,
    resolved_at timestamptz,
    UNIQUE (account_id, gmail_id)
  )`,
];

export async function up(db: Kysely<any>): Promise<void> {
  for (const statement of up_statements) await sql.raw(statement).execute(db);
}

export async function down(db: Kysely<any>): Promise<void> {
  for (const table of ["dead_letters", "attachments", "messages", "sync_state", "accounts"]) {
    await sql.raw(`DROP TABLE IF EXISTS ${table}`).execute(db);
  }
}
