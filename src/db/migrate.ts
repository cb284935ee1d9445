// Schema migrations with kysely's Migrator. On Postgres it runs every pending migration in one
// transaction under a session advisory lock, so many workers starting at once migrate once.
import { promises as fs } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { sql } from "kysely";
import { FileMigrationProvider, type MigrationResultSet, Migrator } from "kysely/migration";
import pg from "pg";
import { MigrationError } from "../errors.ts";
import type { Db } from "./database.ts";

export const migrationsFolder = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../migrations");

function migrator(db: Db): Migrator {
  return new Migrator({
    db,
    provider: new FileMigrationProvider({ fs, path, migrationFolder: migrationsFolder }),
  });
}

/** Creates the database named in the URL when it does not exist (connecting to `postgres`). */
export async function ensureDatabase(databaseUrl: string): Promise<boolean> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.slice(1));
  url.pathname = "/postgres";
  const client = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    const found = await client.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (found.rowCount !== 0) return false;
    try {
      await client.query(`CREATE DATABASE ${pg.escapeIdentifier(name)}`);
      return true;
    } catch (err) {
      // Another process created it between our check and our CREATE: that is success.
      if ((err as { code?: string }).code === "42P04") return false;
      throw err;
    }
  } finally {
    await client.end();
  }
}

/** Drops the database DATABASE_URL names, closing its sessions (benchmarks' throw-away databases). */
export async function dropDatabase(databaseUrl: string): Promise<void> {
  const url = new URL(databaseUrl);
  const name = decodeURIComponent(url.pathname.slice(1));
  url.pathname = "/postgres";
  const client = new pg.Client({ connectionString: url.toString(), connectionTimeoutMillis: 10_000 });
  await client.connect();
  try {
    await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
  } finally {
    await client.end();
  }
}

function check(result: MigrationResultSet): MigrationResultSet {
  if (result.error !== undefined) {
    const failed = result.results?.find((r) => r.status === "Error");
    const why = result.error instanceof Error ? result.error.message : String(result.error);
    throw new MigrationError(`migration ${failed?.migrationName ?? "(unknown)"} failed: ${why}`);
  }
  return result;
}

export async function migrateToLatest(db: Db): Promise<string[]> {
  const result = check(await migrator(db).migrateToLatest());
  return (result.results ?? []).map((r) => r.migrationName);
}

export async function migrateDown(db: Db): Promise<string[]> {
  const result = check(await migrator(db).migrateDown());
  return (result.results ?? []).map((r) => r.migrationName);
}

export interface MigrationStatus {
  name: string;
  executedAt: Date | null;
}

export async function migrationStatus(db: Db): Promise<MigrationStatus[]> {
  const all = await migrator(db).getMigrations();
  return all.map((m) => ({ name: m.name, executedAt: m.executedAt ?? null }));
}

/** True when every migration in migrations/ has been applied (used by /readyz). */
export async function migrationsApplied(db: Db): Promise<boolean> {
  const all = await migrationStatus(db);
  return all.every((m) => m.executedAt !== null);
}

/** Cheap liveness probe of the database connection. */
export async function pingDb(db: Db): Promise<void> {
  await sql`SELECT 1`.execute(db);
}
