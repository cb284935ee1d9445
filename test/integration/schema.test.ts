// The schema is a public interface: these tests pin it to the kysely Database type, forbid any
// binary column, and prove the migrations go up, stay idempotent and come down.
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createDb, type Database } from "../../src/db/database.ts";
import { migrateDown, migrateToLatest, migrationStatus } from "../../src/db/migrate.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";

// What information_schema reports for each TypeScript column type we use.
type PgType<T> = T extends string[]
  ? "ARRAY"
  : T extends Date
    ? "timestamp with time zone"
    : T extends boolean
      ? "boolean"
      : T extends number
        ? "integer" | "bigint"
        : T extends string
          ? "text" | "numeric" | "tsvector"
          : T extends Record<string, unknown>
            ? "jsonb"
            : never;
type Select<C> = C extends { __select__: infer S } ? S : C;
type Catalog = {
  [Tbl in keyof Database]: { [Col in keyof Database[Tbl]]-?: PgType<NonNullable<Select<Database[Tbl][Col]>>> };
};

// The compiler checks this object against the Database type (every column, right kind); the
// test below checks it against the applied schema. Together: type == schema.
const catalog: Catalog = {
  accounts: {
    id: "integer",
    email: "text",
    status: "text",
    status_reason: "text",
    scopes: "ARRAY",
    refresh_token_encrypted: "text",
    access_token_encrypted: "text",
    access_token_expires_at: "timestamp with time zone",
    token_key_id: "text",
    created_at: "timestamp with time zone",
    updated_at: "timestamp with time zone",
  },
  sync_state: {
    account_id: "integer",
    pinned_history_id: "numeric",
    history_id: "numeric",
    cursor_advanced_at: "timestamp with time zone",
    backfill_phase: "text",
    backfill_page_token: "text",
    backfill_pages: "integer",
    backfill_listed: "integer",
    backfill_stored: "integer",
    backfill_estimate: "integer",
    backfill_query: "text",
    backfill_started_at: "timestamp with time zone",
    backfill_label_ids: "ARRAY",
    backfill_include_spam_trash: "boolean",
    backfill_may_sweep: "boolean",
    backfill_finished_at: "timestamp with time zone",
    resync_reason: "text",
    resync_started_at: "timestamp with time zone",
    last_sync_at: "timestamp with time zone",
    last_push_at: "timestamp with time zone",
    last_error: "text",
    last_error_kind: "text",
    last_error_at: "timestamp with time zone",
    throttled_until: "timestamp with time zone",
    watch_expiration: "timestamp with time zone",
    watch_history_id: "numeric",
    updated_at: "timestamp with time zone",
  },
  messages: {
    id: "bigint",
    account_id: "integer",
    gmail_id: "text",
    thread_id: "text",
    history_id: "numeric",
    internal_date: "timestamp with time zone",
    label_ids: "ARRAY",
    from_address: "text",
    to_addresses: "ARRAY",
    cc_addresses: "ARRAY",
    subject: "text",
    message_id_header: "text",
    in_reply_to: "text",
    snippet: "text",
    body_text: "text",
    size_estimate: "integer",
    deleted_at: "timestamp with time zone",
    created_at: "timestamp with time zone",
    updated_at: "timestamp with time zone",
    search: "tsvector",
  },
  attachments: {
    id: "bigint",
    message_id: "bigint",
    part_id: "text",
    filename: "text",
    mime_type: "text",
    detected_type: "text",
    content_id: "text",
    size_bytes: "bigint",
    checksum: "text",
    extracted_text: "text",
    text_truncated: "boolean",
    metadata: "jsonb",
    skipped_reason: "text",
    extracted_at: "timestamp with time zone",
    created_at: "timestamp with time zone",
    search: "tsvector",
  },
  dead_letters: {
    id: "bigint",
    account_id: "integer",
    gmail_id: "text",
    reason: "text",
    detail: "text",
    attempts: "integer",
    first_failed_at: "timestamp with time zone",
    last_failed_at: "timestamp with time zone",
    parked_at: "timestamp with time zone",
    resolved_at: "timestamp with time zone",
    next_attempt_at: "timestamp with time zone",
  },
  changes: {
    seq: "bigint",
    account_id: "integer",
    kind: "text",
    historic: "boolean",
    gmail_id: "text",
    thread_id: "text",
    labels_added: "ARRAY",
    labels_removed: "ARRAY",
    attachment_id: "bigint",
    part_id: "text",
    status: "text",
    reason: "text",
    created_at: "timestamp with time zone",
  },
  change_feed_state: {
    id: "boolean",
    pruned_through: "bigint",
    pruned_at: "timestamp with time zone",
  },
  change_feed_pending: {
    txid: "bigint",
  },
};

let t: TestDatabase;
beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.drop();
});

async function columns(db = t.db) {
  const { rows } = await sql<{ table_name: string; column_name: string; data_type: string }>`
    SELECT table_name, column_name, data_type FROM information_schema.columns
    WHERE table_schema = 'public' AND table_name NOT LIKE 'kysely_%'
    ORDER BY table_name, ordinal_position`.execute(db);
  return rows;
}

describe("schema", () => {
  it("has no binary column anywhere: attachment and message bytes are never stored", async () => {
    const binary = (await columns()).filter((c) => ["bytea", "oid", "bit", "bit varying"].includes(c.data_type));
    expect(binary).toEqual([]);
    const { rows: large } = await sql<{ n: number }>`SELECT count(*)::int AS n FROM pg_largeobject_metadata`.execute(
      t.db,
    );
    expect(large[0]?.n).toBe(0);
  });

  it("matches the kysely Database type, table by table and column by column", async () => {
    const applied: Record<string, Record<string, string>> = {};
    for (const c of await columns()) (applied[c.table_name] ??= {})[c.column_name] = c.data_type;
    expect(applied).toEqual(catalog);
  });

  it("keeps history ids beyond bigint and caps search input", async () => {
    const [acct] = await sql<{ id: number }>`INSERT INTO accounts (email) VALUES ('a@example.com') RETURNING id`
      .execute(t.db)
      .then((r) => r.rows);
    await t.db.insertInto("sync_state").values({ account_id: acct!.id, history_id: "18446744073709551615" }).execute();
    const row = await t.db.selectFrom("sync_state").select("history_id").executeTakeFirstOrThrow();
    expect(row.history_id).toBe("18446744073709551615");
    // 3 MB of distinct words would overflow an uncapped tsvector (max 1 MB) and fail the insert.
    const huge = Array.from({ length: 300_000 }, (_, i) => `w${i.toString(36)}x`).join(" ");
    const msg = await t.db
      .insertInto("messages")
      .values({
        account_id: acct!.id,
        gmail_id: "18c0ffee00000001",
        thread_id: "18c0ffee00000001",
        body_text: huge,
        subject: "quarterly invoice",
      })
      .returning("id")
      .executeTakeFirstOrThrow();
    const hit = await sql<{
      id: number;
    }>`SELECT id FROM messages WHERE search @@ websearch_to_tsquery('simple', 'invoice')`.execute(t.db);
    expect(hit.rows.map((r) => r.id)).toEqual([msg.id]);
  });

  it("rejects a malformed checksum", async () => {
    const m = await t.db.selectFrom("messages").select("id").executeTakeFirstOrThrow();
    await expect(
      t.db.insertInto("attachments").values({ message_id: m.id, part_id: "1", checksum: "not-a-sha256" }).execute(),
    ).rejects.toThrow(/check constraint/);
  });
});

describe("migrations", () => {
  it("apply to an empty database, are a no-op the second time, and come down one step", async () => {
    const empty = await createTestDatabase({ empty: true });
    try {
      expect(await migrateToLatest(empty.db)).toEqual([
        "0001_initial_schema",
        "0002_retry_ledger_and_run_scope",
        "0003_change_feed",
      ]);
      expect(await migrateToLatest(empty.db)).toEqual([]);
      expect((await migrationStatus(empty.db)).every((m) => m.executedAt !== null)).toBe(true);
      expect(await columns(empty.db)).toEqual(await columns());
      const names = async () => (await columns(empty.db)).map((c) => `${c.table_name}.${c.column_name}`);
      expect(await migrateDown(empty.db)).toEqual(["0003_change_feed"]);
      expect((await names()).filter((c) => c.startsWith("change"))).toEqual([]);
      const latest = await names();
      expect(await migrateDown(empty.db)).toEqual(["0002_retry_ledger_and_run_scope"]);
      const first = await names();
      expect(latest.filter((c) => !first.includes(c)).sort()).toEqual([
        "dead_letters.next_attempt_at",
        "sync_state.backfill_include_spam_trash",
        "sync_state.backfill_label_ids",
        "sync_state.backfill_may_sweep",
      ]);
      expect(await migrateDown(empty.db)).toEqual(["0001_initial_schema"]);
      expect(await columns(empty.db)).toEqual([]);
    } finally {
      await empty.drop();
    }
  });

  it("run once when many workers start at the same moment", async () => {
    const empty = await createTestDatabase({ empty: true });
    const dbs = Array.from({ length: 4 }, () => createDb(empty.url, 1));
    try {
      const results = await Promise.all(dbs.map((db) => migrateToLatest(db)));
      expect(results.flat()).toEqual(["0001_initial_schema", "0002_retry_ledger_and_run_scope", "0003_change_feed"]);
    } finally {
      await Promise.all(dbs.map((db) => db.destroy()));
      await empty.drop();
    }
  });
});
