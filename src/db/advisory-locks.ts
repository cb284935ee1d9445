// Postgres session advisory locks keyed by two ints. A session lock belongs to the connection that
// took it and outlives transactions, so both calls must run on the same pinned connection
// (db.connection()); the server drops it with the session if the process dies.
import { sql } from "kysely";
import type { Executor } from "./database.ts";

/** Takes the lock if free; false (without waiting) when another session holds it. */
export async function tryAdvisoryLock(conn: Executor, key1: number, key2: number): Promise<boolean> {
  const got = await sql<{ ok: boolean }>`SELECT pg_try_advisory_lock(${key1}::int, ${key2}::int) AS ok`.execute(conn);
  return got.rows[0]?.ok === true;
}

/** Releases a lock this session holds. */
export async function advisoryUnlock(conn: Executor, key1: number, key2: number): Promise<void> {
  await sql`SELECT pg_advisory_unlock(${key1}::int, ${key2}::int)`.execute(conn);
}
