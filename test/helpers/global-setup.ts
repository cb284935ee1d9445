// Runs once per `vitest run`: checks that Postgres and Redis answer, and builds a migrated
// template database that every test file clones (CREATE DATABASE ... TEMPLATE is ~50 ms).
import { createHash } from "node:crypto";
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { createDb } from "../../src/db/database.ts";
import { migrateToLatest, migrationsFolder } from "../../src/db/migrate.ts";
import { adminUrl, databaseUrlFor, redisUrl } from "./env.ts";

function templateName(): string {
  const h = createHash("sha256");
  for (const f of readdirSync(migrationsFolder).sort())
    h.update(f).update(readFileSync(path.join(migrationsFolder, f)));
  return `gmail_sync_tpl_${h.digest("hex").slice(0, 12)}`;
}

export async function setup({ provide }: { provide: (key: string, value: unknown) => void }): Promise<void> {
  const redis = new Redis(redisUrl, { lazyConnect: true, maxRetriesPerRequest: 1 });
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    throw new Error(`tests need Redis at ${redisUrl}: ${(err as Error).message}`);
  } finally {
    redis.disconnect();
  }

  const admin = new pg.Client({ connectionString: adminUrl });
  try {
    await admin.connect();
  } catch (err) {
    throw new Error(`tests need Postgres at ${adminUrl}: ${(err as Error).message}`);
  }
  const name = templateName();
  try {
    // Several `vitest run`s may start together (developers, CI, helpers): one builds the template.
    await admin.query("SELECT pg_advisory_lock(hashtext('gmail-sync-test-template'))");
    const exists = await admin.query("SELECT 1 FROM pg_database WHERE datname = $1", [name]);
    if (exists.rowCount === 0) {
      const building = `${name}_building`;
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(building)} WITH (FORCE)`);
      await admin.query(`CREATE DATABASE ${pg.escapeIdentifier(building)}`);
      const db = createDb(databaseUrlFor(building), 1);
      try {
        await migrateToLatest(db);
      } finally {
        await db.destroy();
      }
      await admin.query(`ALTER DATABASE ${pg.escapeIdentifier(building)} RENAME TO ${pg.escapeIdentifier(name)}`);
    }
    // Test databases left behind by a killed run (named with their creation time) are removed
    // once they are a few hours old, so a run never drops another run's live database.
    const stale = await admin.query(
      "SELECT datname FROM pg_database WHERE datname ~ '^gmail_sync_t_[0-9]+_[0-9a-f]+$' AND split_part(datname, '_', 4)::bigint < $1",
      [Math.floor(Date.now() / 1000) - 3 * 3600],
    );
    for (const row of stale.rows)
      await admin.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(row.datname)} WITH (FORCE)`);
  } finally {
    await admin.end();
  }
  provide("templateDatabase", name);
}
