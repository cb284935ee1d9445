// The maintenance queue's processor: the tick jobs from src/schedules.ts fan out per-account work
// from database queries, so adding an account never means adding a scheduler.
import type { Job, Queue } from "bullmq";
import { sql } from "kysely";
import type { Config } from "./config.ts";
import type { Db } from "./db/database.ts";
import { accountsWithDueMessages } from "./db/dead-letters.ts";
import type { Logger } from "./log.ts";
import { TICKS } from "./schedules.ts";
import { accountsNeedingWatch, renewWatch, type WatchDeps } from "./watch.ts";

export const WATCH_RENEW_JOB = "watch-renew";
/** A backfill run still listing after this many days is started again by the reconcile tick. */
export const STUCK_LISTING_DAYS = 3;

export interface MaintenanceDeps extends WatchDeps {
  db: Db;
  config: Config;
  log: Logger;
  maintenance: Queue;
  enqueueIncremental: (accountId: number, opts: { reason: "poll" }) => Promise<unknown>;
  enqueueBackfill: (accountId: number, opts: { reason: "reconcile"; restart?: boolean }) => Promise<unknown>;
  enqueueRetry: (accountId: number) => Promise<unknown>;
  sweepTempFiles: () => Promise<unknown>;
}

/** One users.watch for the account soon (connect, re-auth); deduplicated while queued or running. */
export async function enqueueWatchRenewal(maintenance: Queue, accountId: number): Promise<void> {
  await maintenance.add(WATCH_RENEW_JOB, { accountId }, watchJobOpts(accountId));
}

// Concurrent users.watch calls have created duplicate subscriptions in practice (facts §10).
function watchJobOpts(accountId: number) {
  return { deduplication: { id: `watch-${accountId}` }, removeOnComplete: { count: 100 }, removeOnFail: { count: 500 } };
}

/** Active accounts whose backfill is in `phase` (and, given, whose run started over `startedDaysAgo` days ago). */
function activeAccountsInPhase(db: Db, phase: "done" | "listing", startedDaysAgo?: number) {
  return db
    .selectFrom("accounts")
    .innerJoin("sync_state", "sync_state.account_id", "accounts.id")
    .select("accounts.id")
    .where("accounts.status", "=", "active")
    .where("sync_state.backfill_phase", "=", phase)
    .$if(startedDaysAgo !== undefined, (qb) => qb.where("sync_state.backfill_started_at", "<", sql<Date>`now() - make_interval(days => ${startedDaysAgo})`))
    .execute();
}

export async function processMaintenanceJob(job: Job, deps: MaintenanceDeps): Promise<unknown> {
  switch (job.name) {
    case TICKS.watchRenew: {
      // The daily tick renews every watch; the start-up tick only those lapsing soon.
      const withinMs = typeof job.data?.withinMs === "number" ? job.data.withinMs : Number.MAX_SAFE_INTEGER / 2;
      if (deps.config.PUBSUB_TOPIC === undefined) return { accounts: 0, reason: "PUBSUB_TOPIC not set" };
      const ids = await accountsNeedingWatch(deps.db, withinMs);
      await deps.maintenance.addBulk(ids.map((accountId) => ({ name: WATCH_RENEW_JOB, data: { accountId }, opts: watchJobOpts(accountId) })));
      return { accounts: ids.length };
    }
    case WATCH_RENEW_JOB:
      return { outcome: await renewWatch(deps, Number(job.data.accountId)) };
    case TICKS.poll: {
      const ids = await silentAccounts(deps.db, deps.config.POLL_FALLBACK_MINUTES);
      for (const accountId of ids) await deps.enqueueIncremental(accountId, { reason: "poll" });
      if (ids.length > 0) deps.log.info({ accounts: ids.length }, "poll fallback: syncing accounts with no push");
      return { accounts: ids.length };
    }
    case TICKS.reconcile: {
      const rows = await activeAccountsInPhase(deps.db, "done");
      for (const r of rows) await deps.enqueueBackfill(r.id, { reason: "reconcile" });
      // A run still listing after days (its job chain broken, a page failing every time) never
      // finishes by itself: start it again, pinned afresh.
      const stuck = await activeAccountsInPhase(deps.db, "listing", STUCK_LISTING_DAYS);
      for (const r of stuck) await deps.enqueueBackfill(r.id, { reason: "reconcile", restart: true });
      if (stuck.length > 0) deps.log.warn({ accounts: stuck.length, days: STUCK_LISTING_DAYS }, "reconcile: restarting backfill runs stuck in listing");
      return { accounts: rows.length, restarted: stuck.length };
    }
    case TICKS.tempSweep:
      return deps.sweepTempFiles();
    case TICKS.retryLedger: {
      const ids = await accountsWithDueMessages(deps.db);
      for (const accountId of ids) await deps.enqueueRetry(accountId);
      if (ids.length > 0) deps.log.info({ accounts: ids.length }, "retry tick: fetching due and parked ledger messages again");
      return { accounts: ids.length };
    }
    default:
      throw new Error(`unknown maintenance job ${job.name}`);
  }
}

/**
 * Active accounts with a cursor (first backfill pinned it) that neither a push nor a sync has
 * touched for `minutes`: a dropped push or a lapsed watch must not leave a mailbox behind.
 */
export async function silentAccounts(db: Db, minutes: number): Promise<number[]> {
  const cutoff = sql<Date>`now() - make_interval(mins => ${minutes})`;
  const rows = await db
    .selectFrom("accounts")
    .innerJoin("sync_state", "sync_state.account_id", "accounts.id")
    .select("accounts.id")
    .where("accounts.status", "=", "active")
    .where("sync_state.history_id", "is not", null)
    .where((eb) => eb.or([eb("sync_state.last_push_at", "is", null), eb("sync_state.last_push_at", "<", cutoff)]))
    .where((eb) => eb.or([eb("sync_state.last_sync_at", "is", null), eb("sync_state.last_sync_at", "<", cutoff)]))
    .execute();
  return rows.map((r) => r.id);
}
