// Per-user quota as Gmail applies it: a bucket of units refilled at `unitsPerSecond` (Gmail's
// "250 units per user per second, moving average (allows short bursts)" → one second of burst),
// each method charged its documented cost, plus a cap on requests in flight per user ("Too many
// concurrent requests for user"). unitsPerSecond 0 switches both off.
import { errors } from "./errors.ts";
import type { Settings } from "./state.ts";

/** Documented unit costs (developers.google.com/workspace/gmail/api/reference/quota). */
export const METHOD_COST: Record<string, number> = {
  "gmail.users.getProfile": 1,
  "gmail.users.labels.list": 1,
  "gmail.users.labels.get": 1,
  "gmail.users.messages.list": 5,
  "gmail.users.messages.get": 5,
  "gmail.users.messages.attachments.get": 5,
  "gmail.users.messages.modify": 5,
  "gmail.users.messages.delete": 10,
  "gmail.users.messages.trash": 5,
  "gmail.users.messages.untrash": 5,
  "gmail.users.messages.batchModify": 50,
  "gmail.users.threads.modify": 10,
  "gmail.users.threads.trash": 10,
  "gmail.users.threads.untrash": 10,
  "gmail.users.history.list": 2,
  "gmail.users.threads.list": 10,
  "gmail.users.threads.get": 10,
  "gmail.users.watch": 100,
  "gmail.users.stop": 50,
};

export interface Quota {
  /** Charges `cost` units to `user` or throws Gmail's 429. */
  charge(user: string, cost: number): void;
  /** Marks a request in flight; returns the release function, or throws 429 over the cap. */
  enter(user: string): () => void;
  /** Forgets the windows (a changed limit starts clean). */
  reset(): void;
  readonly spent: Map<string, number>;
}

// INTERIM: per-second mode only, until the per-minute window lands.
export function createQuota(settings: Settings, now: () => number = Date.now): Quota {
  const buckets = new Map<string, { tokens: number; at: number }>();
  const inFlight = new Map<string, number>();
  const spent = new Map<string, number>();
  return {
    spent,
    reset() {
      buckets.clear();
    },
    charge(user, cost) {
      const rate = settings.quotaUnitsPerSecond;
      const errorStatus = settings.quotaErrorStatus;
      if (rate > 0) {
        const t = now();
        const b = buckets.get(user) ?? { tokens: rate, at: t };
        b.tokens = Math.min(rate, b.tokens + ((t - b.at) / 1000) * rate);
        b.at = t;
        buckets.set(user, b);
        if (b.tokens < cost) {
          const waitMs = ((cost - b.tokens) / rate) * 1000;
          const seconds = Math.max(1, Math.ceil(waitMs / 1000));
          throw errorStatus === 403 ? errors.userRateLimit403(seconds) : errors.userRateLimit(new Date(t + waitMs), seconds);
        }
        b.tokens -= cost;
      }
      spent.set(user, (spent.get(user) ?? 0) + cost);
    },
    enter(user) {
      const maxConcurrent = settings.maxConcurrentPerUser;
      if (maxConcurrent <= 0) return () => {};
      const n = inFlight.get(user) ?? 0;
      if (n >= maxConcurrent) throw errors.tooManyConcurrent();
      inFlight.set(user, n + 1);
      let released = false;
      return () => {
        if (released) return;
        released = true;
        inFlight.set(user, (inFlight.get(user) ?? 1) - 1);
      };
    },
  };
}
