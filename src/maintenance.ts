// The maintenance queue's processor: the tick jobs from src/schedules.ts fan out per-account work
// from database queries, so adding an account never means adding a scheduler. Job names and
// payloads are the catalog's (src/jobs.ts); the worker has checked each job before it gets here.
import type { Queue } from "bullmq";
import type { Config } from "./config.ts";
import {
  accountsNeedingWatch,
  activeAccountsInPhase,
  backfillsInProgress,
  silentAccounts,
} from "./db/account-status.ts";
import { pruneChanges } from "./db/changes.ts";
import type { Db } from "./db/database.ts";
import { accountsWithDueMessages } from "./db/dead-letters.ts";
import { type CatalogJob, dispatchJob, JOB_NAMES, type JobData, type JobHandlers, type QUEUE_NAMES } from "./jobs.ts";
import type { Logger } from "./log.ts";
import { GmailError } from "./errors.ts";
import { backfillPriority } from "./sync/page-slices.ts";
import { renewWatch, type WatchDeps } from "./watch.ts";

/** A backfill run still listing after this many days is started again by the reconcile tick. */
export const STUCK_LISTING_DAYS = 3;

export interface MaintenanceDeps extends WatchDeps {
  db: Db;
  config: Config;
  log: Logger;
  maintenance: Queue;
  /** One poll sync per account, all in a few Redis pipelines (src/fan-out.ts). */
  enqueueIncrementals: (accountIds: number[], opts: { reason: "poll" }) => Promise<unknown>;
  enqueueBackfill: (accountId: number, opts: { reason: "reconcile"; restart?: boolean }) => Promise<unknown>;
  /** Each running backfill's next turn, in a few Redis pipelines (src/fan-out.ts). */
  resumeBackfills: (runs: Array<{ accountId: number; priority: number }>) => Promise<unknown>;
  /** Each account's reconcile at its stable moment within `spreadMs` of the tick (src/fan-out.ts). */
  enqueueReconciles: (accountIds: number[], opts: { spreadMs: number; tickAt: number }) => Promise<unknown>;
  enqueueRetry: (accountId: number) => Promise<unknown>;
  sweepTempFiles: () => Promise<unknown>;
}

/** One users.watch for the account soon (connect, re-auth); deduplicated while queued or running. */
export async function enqueueWatchRenewal(maintenance: Queue, accountId: number): Promise<void> {
  await maintenance.add(
    JOB_NAMES.watchRenew,
    { accountId } satisfies JobData<typeof JOB_NAMES.watchRenew>,
    watchJobOpts(accountId),
  );
}

// Concurrent users.watch calls have created duplicate subscriptions in practice (facts §10).
function watchJobOpts(accountId: number) {
  return {
    deduplication: { id: `watch-${accountId}` },
    removeOnComplete: { count: 100 },
    removeOnFail: { count: 500 },
  };
}

/** The maintenance jobs of the catalog, one handler each. */
const maintenanceHandlers: JobHandlers<typeof QUEUE_NAMES.maintenance, MaintenanceDeps> = {
  async [JOB_NAMES.watchRenewTick](deps, data) {
    // The daily tick renews every watch; the start-up tick only those lapsing soon.
    const withinMs = data.withinMs ?? Number.MAX_SAFE_INTEGER / 2;
    if (deps.config.PUBSUB_TOPIC === undefined) return { accounts: 0, reason: "PUBSUB_TOPIC not set" };
    const ids = await accountsNeedingWatch(deps.db, withinMs);
    await deps.maintenance.addBulk(
      ids.map((accountId) => ({ name: JOB_NAMES.watchRenew, data: { accountId }, opts: watchJobOpts(accountId) })),
    );
    return { accounts: ids.length };
  },
  async [JOB_NAMES.watchRenew](deps, data) {
    const outcome = await renewWatch(deps, data.accountId);
    // Retried with the queue's backoff (attempts, exponential): the account must not stay unwatched.
    if (outcome === "throttled")
      throw new GmailError("rate_limited", `watch of account ${data.accountId} throttled; retried later`, {
        reason: "watchThrottled",
      });
    return { outcome };
  },
  async [JOB_NAMES.pollTick](deps) {
    const ids = await silentAccounts(deps.db, deps.config.POLL_FALLBACK_MINUTES);
    if (ids.length > 0) await deps.enqueueIncrementals(ids, { reason: "poll" });
    if (ids.length > 0) deps.log.info({ accounts: ids.length }, "poll fallback: syncing accounts with no push");
    // A backfill's turns are a chain of jobs, each enqueueing the next: one lost with Redis's data
    // would leave the run listing until the reconcile tick restarts it days later. Each running
    // backfill is asked to resume at its own turn's priority; de-duplication makes this a no-op
    // while its next turn is queued (the usual case), on the backfill queue, not the live one.
    const running = await backfillsInProgress(deps.db);
    if (running.length > 0)
      await deps.resumeBackfills(
        running.map(({ accountId, pagesDone }) => ({ accountId, priority: backfillPriority(pagesDone) })),
      );
    return { accounts: ids.length, backfills: running.length };
  },
  async [JOB_NAMES.reconcileTick](deps) {
    // Spread over RECONCILE_SPREAD_HOURS, each account at the same moment every week: never the
    // whole fleet re-listing at one cron minute. A reconcile lists and fetches only what it lacks.
    const ids = await activeAccountsInPhase(deps.db, "done");
    const spreadMs = deps.config.RECONCILE_SPREAD_HOURS * 3_600_000;
    if (ids.length > 0)
      await deps.enqueueReconciles(ids, { spreadMs, tickAt: Math.floor(Date.now() / 60_000) * 60_000 });
    // A run still listing after days (its job chain broken, a page failing every time) never
    // finishes by itself: start it again, pinned afresh.
    const stuck = await activeAccountsInPhase(deps.db, "listing", STUCK_LISTING_DAYS);
    for (const accountId of stuck) await deps.enqueueBackfill(accountId, { reason: "reconcile", restart: true });
    if (stuck.length > 0)
      deps.log.warn(
        { accounts: stuck.length, days: STUCK_LISTING_DAYS },
        "reconcile: restarting backfill runs stuck in listing",
      );
    return { accounts: ids.length, restarted: stuck.length };
  },
  async [JOB_NAMES.tempSweep](deps) {
    return deps.sweepTempFiles();
  },
  async [JOB_NAMES.changesPruneTick](deps) {
    const r = await pruneChanges(deps.db, deps.config.CHANGES_RETENTION_DAYS);
    if (r.deleted > 0) deps.log.info(r, "change feed: pruned changes past retention");
    return r;
  },
  async [JOB_NAMES.retryLedgerTick](deps) {
    const ids = await accountsWithDueMessages(deps.db);
    for (const accountId of ids) await deps.enqueueRetry(accountId);
    if (ids.length > 0)
      deps.log.info({ accounts: ids.length }, "retry tick: fetching due and parked ledger messages again");
    return { accounts: ids.length };
  },
};

/** Runs a maintenance job that passed the catalog (the worker's check, or a test's literal job). */
export function processMaintenanceJob(
  job: CatalogJob<typeof QUEUE_NAMES.maintenance>,
  deps: MaintenanceDeps,
): Promise<unknown> {
  return dispatchJob(maintenanceHandlers, deps, job);
}
