// A throw-away migrated Postgres database for one benchmark run, dropped (WITH FORCE) afterwards.
import { randomBytes } from "node:crypto";
import { createStoreApp } from "../../src/app.ts";
import { loadConfig } from "../../src/config.ts";
import { dropDatabase, ensureDatabase, migrateToLatest } from "../../src/db/migrate.ts";
import { createLogger } from "../../src/log.ts";

export interface BenchDatabase {
  url: string;
  drop(): Promise<void>;
}

export async function createBenchDatabase(label: string): Promise<BenchDatabase> {
  const adminUrl = process.env.DATABASE_ADMIN_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
  const url = new URL(adminUrl);
  url.pathname = `/gmail_sync_bench_${label}_${randomBytes(4).toString("hex")}`;
  await ensureDatabase(url.toString());
  const app = createStoreApp(loadConfig({ ...process.env, DATABASE_URL: url.toString() }), {
    log: createLogger("silent"),
    poolSize: 1,
  });
  try {
    await migrateToLatest(app.db);
  } finally {
    await app.close();
  }
  return { url: url.toString(), drop: () => dropDatabase(url.toString()) };
}
