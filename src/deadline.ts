// A bounded wait: Redis and Postgres clients queue commands while disconnected (the app's Redis
// client retries forever, as BullMQ requires), so a request handler that awaits them directly
// hangs for as long as the outage lasts. Handlers race them against a deadline and answer 503.
import { DeadlineError } from "./errors.ts";

export async function withinMs<T>(ms: number, fn: () => Promise<T>, what = "Redis/Postgres"): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new DeadlineError(`no answer from ${what} within ${ms} ms`)), ms);
  });
  try {
    return await Promise.race([fn(), deadline]);
  } finally {
    clearTimeout(timer);
  }
}
