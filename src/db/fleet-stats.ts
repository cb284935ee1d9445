// Reads behind the fleet benchmark (bench/fleet.ts) and the capacity figures of the README: what the
// tables weigh, and when each account's rows arrived. Aggregate statements only.
import { sql } from "kysely";
import { type Executor, gmailIdIn } from "./database.ts";

/** Every table of the schema with its total size on disk (heap, TOAST and indexes) and exact row count. */
export async function tableSizes(db: Executor): Promise<Array<{ table: string; bytes: number; rows: number }>> {
  const { rows } = await sql<{ table: string; bytes: string }>`
    SELECT c.relname AS table, pg_total_relation_size(c.oid)::text AS bytes
    FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
    WHERE n.nspname = current_schema() AND c.relkind IN ('r', 'p') AND c.relname NOT LIKE 'kysely_%'
    ORDER BY 1`.execute(db);
  const out: Array<{ table: string; bytes: number; rows: number }> = [];
  for (const r of rows) {
    const count = await sql<{ n: string }>`SELECT count(*)::text AS n FROM ${sql.table(r.table)}`.execute(db);
    out.push({ table: r.table, bytes: Number(r.bytes), rows: Number(count.rows[0]?.n ?? 0) });
  }
  return out;
}

/** Messages stored per account and second (by the second their row was written), for `accountIds`. */
export async function storedPerAccountSecond(
  db: Executor,
  accountIds: readonly number[],
): Promise<Array<{ accountId: number; second: number; n: number }>> {
  if (accountIds.length === 0) return [];
  const { rows } = await sql<{ account_id: number; s: string; n: string }>`
    SELECT account_id, floor(extract(epoch FROM created_at))::text AS s, count(*)::text AS n
    FROM messages WHERE account_id = ANY(${[...accountIds]}::int[]) AND deleted_at IS NULL
    GROUP BY 1, 2`.execute(db);
  return rows.map((r) => ({ accountId: r.account_id, second: Number(r.s), n: Number(r.n) }));
}

/** Of `gmailIds` (any account), those stored live. */
export async function storedGmailIds(db: Executor, gmailIds: readonly string[]): Promise<Set<string>> {
  if (gmailIds.length === 0) return new Set();
  const rows = await db
    .selectFrom("messages")
    .select("gmail_id")
    .where(gmailIdIn(gmailIds))
    .where("deleted_at", "is", null)
    .execute();
  return new Set(rows.map((r) => r.gmail_id));
}

/** Accounts by backfill phase. */
export async function backfillPhases(db: Executor): Promise<Record<string, number>> {
  const rows = await db
    .selectFrom("sync_state")
    .select(["backfill_phase", sql<string>`count(*)::text`.as("n")])
    .groupBy("backfill_phase")
    .execute();
  return Object.fromEntries(rows.map((r) => [r.backfill_phase, Number(r.n)]));
}

/** When each of `accountIds` finished its backfill run (absent: not finished). */
export async function backfillFinishedAt(db: Executor, accountIds: readonly number[]): Promise<Map<number, number>> {
  if (accountIds.length === 0) return new Map();
  const rows = await db
    .selectFrom("sync_state")
    .select(["account_id", "backfill_finished_at"])
    .where("account_id", "in", [...accountIds])
    .where("backfill_phase", "=", "done")
    .execute();
  return new Map(
    rows.flatMap((r) => (r.backfill_finished_at === null ? [] : [[r.account_id, r.backfill_finished_at.getTime()]])),
  );
}
