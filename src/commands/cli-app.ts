// The App for one-shot commands: logs go to stderr so that stdout carries only the command's output
// (tables, --json), and the app is always closed.
import pino from "pino";
import { type App, createApp, createStoreApp, type StoreApp } from "../app.ts";
import { loadConfig } from "../config.ts";
import { findAccountByEmail } from "../db/accounts.ts";
import { createLogger } from "../log.ts";

export async function withCliApp<T>(fn: (app: App) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const app = createApp(config, { log: stderrLogger(config.LOG_LEVEL), oneShot: true });
  try {
    return await fn(app);
  } finally {
    await app.close();
  }
}

/** The same for commands that only read (or migrate) the database: no Redis, no queues. */
export async function withStoreApp<T>(fn: (app: StoreApp) => Promise<T>): Promise<T> {
  const config = loadConfig();
  const app = createStoreApp(config, { log: stderrLogger(config.LOG_LEVEL) });
  try {
    return await fn(app);
  } finally {
    await app.close();
  }
}

/** Logs on stderr, synchronously: stdout is the command's output. */
export function stderrLogger(level: string) {
  return createLogger(level, pino.destination({ dest: 2, sync: true }));
}

export async function requireAccount(app: App, email: string): Promise<{ id: number; email: string; status: string }> {
  const row = await findAccountByEmail(app.db, email);
  if (row === undefined) throw new Error(`unknown account ${email} (see \`gmail-sync accounts\`)`);
  return row;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
