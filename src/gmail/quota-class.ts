// Live work before backfill under the project bucket. Every Gmail call runs in a quota class: "live"
// (push and poll syncs, ledger retries, watch renewals: someone is waiting for them), "first" (the
// first turn of a newly connected account's backfill: its owner is waiting to see mail; bounded to
// one small slice per account) or "bulk" (every other backfill and resync turn). The worker sets
// bulk for the backfill queue (src/worker.ts), the backfill its first turn (src/sync/backfill.ts).
// The quota governor (quota.ts) lets a call take from the project bucket only while it leaves the
// class's reserve (PROJECT_RESERVE, a share of the bucket's one-second capacity): when the project
// binds, backfills drain the bucket down to their reserve, a new account's first turn finds tokens
// above bulk's floor, and a push sync finds them all — neither queues behind the backfills' waits.
import { AsyncLocalStorage } from "node:async_hooks";

export type QuotaClass = "live" | "first" | "bulk";

/** Share of the project bucket's capacity a call of each class must leave to the classes before it. */
export const PROJECT_RESERVE: Readonly<Record<QuotaClass, number>> = { live: 0, first: 0.1, bulk: 0.25 };

const current = new AsyncLocalStorage<QuotaClass>();

/** Runs `fn` (and every call it makes, however deep) in quota class `cls`. */
export function runInQuotaClass<T>(cls: QuotaClass, fn: () => T): T {
  return current.run(cls, fn);
}

/** The class of the calling context; outside any: live (the CLI, tests, maintenance). */
export function currentQuotaClass(): QuotaClass {
  return current.getStore() ?? "live";
}
