// BullMQ workers: one per queue, each job dispatched to its sync run, and every failure turned into
// what the queue should do — retry with backoff (transient), park until the quota allows
// (rate limited: moveToDelayed + DelayedError, not an attempt, never pausing the queue), stop for
// good (revoked auth → reauth_required, UnrecoverableError: no retry storm), or wait briefly for
// the account's other run of the same kind to finish (advisory lock held). Before any of that, each
// job is checked against the catalog (src/jobs.ts): an unknown name or a bad payload fails at once.
import { DelayedError, type Job, UnrecoverableError, Worker } from "bullmq";
import type { Redis } from "ioredis";
import { markReauthRequired } from "./db/accounts.ts";
import { clearThrottleAndError, recordSyncError, setThrottledUntil } from "./db/sync-state.ts";
import { GmailError, isGmailError, SyncBusyError } from "./errors.ts";
import {
  type CatalogJob,
  dispatchJob,
  JOB_NAMES,
  type JobHandlers,
  parseJob,
  QUEUE_NAMES,
  type QueueName,
} from "./jobs.ts";
import {
  jobDurationSeconds,
  jobsStalledTotal,
  jobWaitSeconds,
  quotaDelayedJobsTotal,
  syncErrorsTotal,
} from "./metrics.ts";
import { runInQuotaClass } from "./gmail/quota-class.ts";
import { runBackfillPage } from "./sync/backfill.ts";
import type { SyncDeps } from "./sync/deps.ts";
import { runIncremental } from "./sync/incremental.ts";
import { runLabelRepairPage } from "./sync/label-repair.ts";
import { runRetryJob } from "./sync/retry-messages.ts";

export interface StartWorkersOptions {
  /** Jobs per queue run at once by this process (default WORKER_CONCURRENCY). */
  concurrency?: number;
  /** The maintenance queue's processor (src/maintenance.ts), given checked jobs; without it no maintenance worker runs. */
  maintenanceProcessor?: (job: CatalogJob<typeof QUEUE_NAMES.maintenance>) => Promise<unknown>;
  /** BullMQ job lock; a dead worker's job is taken over after about this long (default 30 s). */
  lockDurationMs?: number;
}

export interface WorkerDeps extends SyncDeps {
  /** A connection for the workers (maxRetriesPerRequest: null); BullMQ duplicates it as needed. */
  workerConnection: Redis;
  prefix: string;
  defaultConcurrency: number;
}

export interface RunningWorkers {
  workers: Worker[];
  close(opts?: { force?: boolean }): Promise<void>;
}

const BUSY_RETRY_MS = 2_000;
const MAX_RATE_LIMIT_DELAY_MS = 15 * 60_000;

/** The sync jobs of the catalog, one handler each; every one runs inside `guarded`. */
const syncHandlers: JobHandlers<typeof QUEUE_NAMES.backfill | typeof QUEUE_NAMES.incremental, SyncDeps> = {
  [JOB_NAMES.backfillPage]: runBackfillPage,
  [JOB_NAMES.labelRepair]: runLabelRepairPage,
  [JOB_NAMES.incremental]: runIncremental,
  [JOB_NAMES.retryMessages]: runRetryJob,
};

export function startWorkers(deps: WorkerDeps, opts: StartWorkersOptions = {}): RunningWorkers {
  const concurrency = opts.concurrency ?? deps.defaultConcurrency;
  const lockDuration = opts.lockDurationMs ?? 30_000;
  const common = {
    connection: deps.workerConnection,
    prefix: deps.prefix,
    concurrency,
    lockDuration,
    stalledInterval: lockDuration,
    // Every run is idempotent and resumes from Postgres: a job orphaned by a dead worker more than
    // once is still safe to run again rather than fail.
    maxStalledCount: 5,
  };
  const workers: Worker[] = [];
  const make = <Q extends QueueName>(
    queue: Q,
    processor: (checked: CatalogJob<Q>, job: Job, token: string | undefined) => Promise<unknown>,
  ) => {
    const w = new Worker(queue, async (job, token) => processor(checkedJob(deps, queue, job), job, token), common);
    // During a Redis outage BullMQ reports the refused connection several times a second per
    // queue; one line per queue every 10 s says the same without drowning the log.
    let lastErrorLog = 0;
    w.on("error", (err) => {
      const now = Date.now();
      if (now - lastErrorLog < 10_000) return;
      lastErrorLog = now;
      deps.log.warn({ queue, err: err.message }, "worker error (repeats within 10 s are not logged)");
    });
    w.on("stalled", (jobId) => {
      jobsStalledTotal.inc({ queue });
      deps.log.warn({ queue, jobId }, "job stalled (its worker died or blocked); it will run again");
    });
    w.on("failed", (job, err) => {
      if (job !== undefined && !(err instanceof DelayedError))
        deps.log.warn({ queue, jobId: job.id, attemptsMade: job.attemptsMade, err: err.message }, "job failed");
    });
    workers.push(w);
  };

  // Backfill slices spend the project's quota only above the reserve live syncs keep (quota-class.ts).
  make(QUEUE_NAMES.backfill, (checked, job, token) =>
    guarded(deps, QUEUE_NAMES.backfill, job, token, () =>
      runInQuotaClass("bulk", () => dispatchJob(syncHandlers, deps, checked)),
    ),
  );
  make(QUEUE_NAMES.incremental, (checked, job, token) =>
    guarded(deps, QUEUE_NAMES.incremental, job, token, () => dispatchJob(syncHandlers, deps, checked)),
  );
  if (opts.maintenanceProcessor !== undefined) {
    const processor = opts.maintenanceProcessor;
    make(QUEUE_NAMES.maintenance, (checked, job) => timed(QUEUE_NAMES.maintenance, job, () => processor(checked)));
  }

  let closing: Promise<void> | undefined;
  return {
    workers,
    close(closeOpts = {}) {
      closing ??= Promise.all(workers.map((w) => w.close(closeOpts.force === true))).then(() => {});
      return closing;
    },
  };
}

/**
 * The worker boundary: a job whose name is not a catalog job of this queue, or whose payload fails
 * its schema, fails now and for good (UnrecoverableError: no retry can fix a producer's mistake),
 * logged and counted (job outcome "invalid"); the worker goes on with its next job.
 */
function checkedJob<Q extends QueueName>(deps: WorkerDeps, queue: Q, job: Job): CatalogJob<Q> {
  const checked = parseJob(queue, job.name, job.data);
  if (checked.ok) return checked.job;
  jobDurationSeconds.observe({ queue, outcome: "invalid" }, 0);
  deps.log.error(
    { queue, jobId: job.id, reason: checked.reason },
    "job rejected by the job catalog: failed without retry",
  );
  throw new UnrecoverableError(`job ${job.id} rejected: ${checked.reason}`);
}

async function timed<T>(queue: QueueName, job: Job, fn: () => Promise<T>): Promise<T> {
  const readyAt = job.timestamp + (job.opts.delay ?? 0);
  jobWaitSeconds.observe({ queue }, Math.max(0, (job.processedOn ?? Date.now()) - readyAt) / 1000);
  const end = jobDurationSeconds.startTimer({ queue });
  try {
    const r = await fn();
    end({ outcome: "completed" });
    return r;
  } catch (err) {
    end({ outcome: err instanceof DelayedError ? "delayed" : "failed" });
    throw err;
  }
}

async function delay(job: Job, token: string | undefined, ms: number): Promise<never> {
  await job.moveToDelayed(Date.now() + ms, token);
  throw new DelayedError();
}

const parksKey = (prefix: string, accountId: number) => `${prefix}:parks:acct:${accountId}`;

/**
 * How long to park a rate-limited job. Gmail's own retry time when it gave one; otherwise (429
 * "Resource has been exhausted", 403 "Queries per minute per user": the refusal forms in emulator/README.md, "Realism")
 * an exponential backoff over the account's consecutive parks (1 s, 2 s, 4 s … up to 15 min), since
 * a per-minute window may stay closed for up to a minute and retrying every second only extends
 * the overuse. Any completed job of the account resets the count. (Our own governor's waits never
 * come here: they are pacing, with an exact delay.)
 */
async function rateLimitDelay(deps: WorkerDeps, accountId: number, retryAfterMs: number | undefined): Promise<number> {
  const key = parksKey(deps.prefix, accountId);
  const parks = await deps.redis
    .multi()
    .incr(key)
    .expire(key, 3600)
    .exec()
    .then((r) => Number(r?.[0]?.[1] ?? 1))
    .catch(() => 1);
  const backoff = 1_000 * 2 ** Math.min(20, Math.max(0, parks - 1));
  return Math.min(MAX_RATE_LIMIT_DELAY_MS, Math.max(250, retryAfterMs ?? backoff));
}

function accountIdOf(job: Job): number {
  return Number((job.data as { accountId?: unknown }).accountId);
}

/** Runs a sync job and maps its failure to a queue action; records the account's visible state. */
async function guarded(
  deps: WorkerDeps,
  queue: QueueName,
  job: Job,
  token: string | undefined,
  run: () => Promise<unknown>,
): Promise<unknown> {
  const accountId = accountIdOf(job);
  if (!Number.isInteger(accountId) || accountId <= 0)
    throw new UnrecoverableError(`job ${job.id} has no valid accountId`);
  const readyAt = job.timestamp + (job.opts.delay ?? 0);
  jobWaitSeconds.observe({ queue }, Math.max(0, (job.processedOn ?? Date.now()) - readyAt) / 1000);
  const end = jobDurationSeconds.startTimer({ queue });
  try {
    const result = await run();
    end({ outcome: "completed" });
    await deps.redis.del(parksKey(deps.prefix, accountId)).catch(() => 0);
    await clearThrottleAndError(deps.db, accountId);
    return result;
  } catch (err) {
    if (err instanceof DelayedError) {
      end({ outcome: "delayed" });
      throw err;
    }
    if (err instanceof SyncBusyError) {
      end({ outcome: "delayed" });
      return delay(job, token, BUSY_RETRY_MS);
    }
    if (isGmailError(err, "rate_limited")) {
      end({ outcome: "rate_limited" });
      const local = err.reason === "localQuota" || err.reason === "localConcurrency";
      // Our own governor's waits are pacing, not refusals: they keep their short, exact delay.
      const waitMs = local
        ? Math.min(MAX_RATE_LIMIT_DELAY_MS, Math.max(250, err.retryAfterMs ?? 1_000))
        : await rateLimitDelay(deps, accountId, err.retryAfterMs);
      syncErrorsTotal.inc({ error_type: "rate_limit" });
      quotaDelayedJobsTotal.inc({ queue });
      await setThrottledUntil(deps.db, accountId, new Date(Date.now() + waitMs)).catch(() => {});
      deps.log.info({ queue, accountId, waitMs }, "account rate limited: job parked until its quota allows");
      return delay(job, token, waitMs);
    }
    end({ outcome: "failed" });
    const message = (err as Error)?.message ?? String(err);
    if (isGmailError(err, "auth_revoked")) {
      syncErrorsTotal.inc({ error_type: "auth" });
      await markReauthRequired(deps.db, accountId, message);
      await recordSyncError(deps.db, accountId, "auth_revoked", message);
      deps.log.warn(
        { queue, accountId, reason: err.reason },
        "account authorization revoked: reauth_required, its jobs stop",
      );
      throw new UnrecoverableError(`account ${accountId} needs re-authorization: ${message}`);
    }
    if (err instanceof GmailError && err.kind === "permanent") {
      syncErrorsTotal.inc({ error_type: "permanent" });
      await recordSyncError(deps.db, accountId, "permanent", message);
      throw new UnrecoverableError(message);
    }
    syncErrorsTotal.inc({ error_type: "transient" });
    await recordSyncError(deps.db, accountId, err instanceof GmailError ? err.kind : "transient", message).catch(
      () => {},
    );
    throw err;
  }
}
