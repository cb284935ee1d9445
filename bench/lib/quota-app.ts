// An App (src/app.ts) for one variant of a Gmail-port micro-benchmark: its own Redis prefix, so each
// variant starts with its own quota bucket, at the given units per second; its keys are deleted and
// the app closed afterwards.
import { randomBytes } from "node:crypto";
import { type App, createApp } from "../../src/app.ts";
import { loadConfig } from "../../src/config.ts";
import type { Logger } from "../../src/log.ts";

export async function withQuotaApp<T>(unitsPerSecond: number, log: Logger, fn: (app: App) => Promise<T>): Promise<T> {
  const prefix = `{bench-${randomBytes(4).toString("hex")}}`;
  const config = loadConfig({
    ...process.env,
    QUEUE_PREFIX: prefix,
    GMAIL_QUOTA_UNITS_PER_SECOND: String(unitsPerSecond),
  });
  const app = createApp(config, { log });
  try {
    return await fn(app);
  } finally {
    const keys = await app.redis.keys(`${prefix}*`);
    if (keys.length > 0) await app.redis.del(...keys);
    await app.close();
  }
}
