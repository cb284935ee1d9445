// A throw-away migrated Postgres database for one benchmark run, dropped (WITH FORCE) afterwards.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { createDb } from "../../src/db/database.ts";
import { ensureDatabase, migrateToLatest } from "../../src/db/migrate.ts";

export interface BenchDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function createBenchDatabase(label: string): Promise<BenchDatabase> {
  const adminUrl = process.env.DATABASE_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const name = `gmail_sync_bench_${label}_${randomBytes(4).toString("hex")}`;
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  await ensureDatabase(url.toString());
  const db = createDb(url.toString(), 1);
  await migrateToLatest(db);
  await db.destroy();
  return {
    url: url.toString(),
    async drop() {
      const admin = new pg.Client({ connectionString: adminUrl });
      await admin.connect();
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`);
      await admin.end();
    },
  };
}
