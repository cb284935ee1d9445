// Each test file gets its own database, cloned from the migrated template built in global-setup,
// and dropped afterwards, so files run in parallel without seeing each other's rows.
import { randomBytes } from "node:crypto";
import pg from "pg";
import { inject } from "vitest";
import { createDb, type Db } from "../../src/db/database.ts";
import { adminUrl, databaseUrlFor } from "./env.ts";
import { trackDatabase } from "./leaks.ts";

declare module "vitest" {
  export interface ProvidedContext {
    templateDatabase: string;
  }
}

function testDatabaseName(): string {
  return `gmail_sync_t_${Math.floor(Date.now() / 1000)}_${randomBytes(5).toString("hex")}`;
}

export interface TestDatabase {
  name: string;
  url: string;
  db: Db;
  drop(): Promise<void>;
}

async function admin<T>(fn: (c: pg.Client) => Promise<T>): Promise<T> {
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    return await fn(client);
  } finally {
    await client.end();
  }
}

/** A fresh database: migrated (cloned from the template) unless `empty` is set. */
export async function createTestDatabase(opts: { empty?: boolean } = {}): Promise<TestDatabase> {
  const name = testDatabaseName();
  trackDatabase(name);
  const template = opts.empty ? "template1" : inject("templateDatabase");
  await admin(async (c) => {
    // Two clones of one template at the same instant can fail with "source database is being
    // accessed by other users"; a short retry absorbs that.
    for (let attempt = 0; ; attempt++) {
      try {
        await c.query(`CREATE DATABASE ${pg.escapeIdentifier(name)} TEMPLATE ${pg.escapeIdentifier(template)}`);
        return;
      } catch (err) {
        if (attempt >= 20 || (err as { code?: string }).code !== "55006") throw err;
        await new Promise((r) => setTimeout(r, 100 + Math.random() * 200));
      }
    }
  });
  const url = databaseUrlFor(name);
  const db = createDb(url, 5);
  return {
    name,
    url,
    db,
    async drop() {
      await db.destroy();
      await admin((c) => c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`));
    },
  };
}

/** A database name that does not exist yet (for tests of database creation). */
export function unusedDatabaseUrl(): { name: string; url: string; drop(): Promise<void> } {
  const name = testDatabaseName();
  return {
    name,
    url: databaseUrlFor(name),
    drop: () =>
      admin((c) => c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(name)} WITH (FORCE)`)).then(() => {}),
  };
}
