// The job catalog: queue names, payload types (ids only: never bodies, tokens or bytes), default
// options, per-account de-duplication, and the two enqueue functions every producer uses.
import { randomUUID } from "node:crypto";
import { Queue, type ConnectionOptions, type JobsOptions } from "bullmq";
import type { Redis } from "ioredis";

export const QUEUE_NAMES = { backfill: "backfill", incremental: "incremental", maintenance: "maintenance" } as const;
export type QueueName = (typeof QUEUE_NAMES)[keyof typeof QUEUE_NAMES];

export type BackfillJob = {
  accountId: number;
  reason: "connect" | "manual" | "reconcile" | "history_expired";
  query?: string;
  /** Only continue a run in progress (never start one): the safety net for a stalled backfill. */
  resumeOnly?: boolean;
  /** Start a new run even though one is listing (the reconcile tick's answer to a run stuck for days). */
  restart?: boolean;
};
export type IncrementalJob = { accountId: number; reason: "push" | "poll" | "manual" | "after_backfill"; pushReceivedAt?: number; historyId?: string };

/** Fetch again the account's due rows of the retry ledger (src/sync/retry-messages.ts). */
export type RetryJob = { accountId: number };

export const JOB_NAMES = { backfillPage: "backfill-page", incremental: "incremental", retryMessages: "retry-messages" } as const;

export interface Queues {
  backfill: Queue<BackfillJob>;
  /** Incremental syncs and ledger retries: both run under the account's incremental lock. */
  incremental: Queue<IncrementalJob | RetryJob>;
  maintenance: Queue;
  /** The BullMQ prefix (a Redis Cluster hash tag by default); other keys of ours share it. */
  prefix: string;
  /** The connection the queues were built on, for the few plain keys of ours (push times). */
  redis: Redis;
  close(): Promise<void>;
}

// Retries for transient failures (5xx, network): exponential with jitter, then the job fails and
// its account's state says why. Rate limits do not use these attempts (DelayedError).
const defaultJobOptions: JobsOptions = {
  attempts: 8,
  backoff: { type: "exponential", delay: 2000, jitter: 0.5 },
  removeOnComplete: { age: 3600, count: 1000 },
  removeOnFail: { age: 7 * 86400, count: 10000 },
};

export function createQueues(connection: Redis, prefix: string): Queues {
  const make = <T>(name: string) => {
    const q = new Queue<T>(name, { connection: connection as ConnectionOptions, prefix, defaultJobOptions });
    // An unhandled 'error' event would crash the process; connection errors are retried by ioredis.
    q.on("error", () => {});
    return q;
  };
  const backfill = make<BackfillJob>(QUEUE_NAMES.backfill);
  const incremental = make<IncrementalJob | RetryJob>(QUEUE_NAMES.incremental);
  const maintenance = make<unknown>(QUEUE_NAMES.maintenance);
  let closing: Promise<void> | undefined;
  return {
    backfill,
    incremental,
    maintenance,
    prefix,
    redis: connection,
    close() {
      closing ??= Promise.all([backfill.close(), incremental.close(), maintenance.close()]).then(() => {});
      return closing;
    },
  };
}

/** Redis key holding the earliest not-yet-measured push time of an account (ms since epoch). */
export function pushTimeKey(prefix: string, accountId: number): string {
  return `${prefix}:push-at:${accountId}`;
}

/**
 * One incremental sync per account at a time: at most one running and one queued
 * (deduplication with keepLastIfActive). Pushes while one is queued fold into it; a push while
 * one runs makes exactly one more run afterwards. The earliest push time of the folded pushes is
 * kept in a Redis key (SET NX) that the run takes when it starts, for pushToCommitSeconds.
 */
export async function enqueueIncremental(queues: Queues, accountId: number, opts: Omit<IncrementalJob, "accountId">): Promise<{ coalesced: boolean }> {
  if (opts.pushReceivedAt !== undefined) {
    await queues.redis.set(pushTimeKey(queues.prefix, accountId), String(opts.pushReceivedAt), "PX", 86_400_000, "NX");
  }
  const jobId = `inc-${accountId}-${randomUUID()}`;
  const job = await queues.incremental.add(
    JOB_NAMES.incremental,
    { accountId, ...opts },
    { jobId, deduplication: { id: `inc-${accountId}`, keepLastIfActive: true } },
  );
  return { coalesced: job.id !== jobId };
}

/**
 * Asks for the account's backfill to run (start a new run, or continue the one in progress: the
 * job reads its page checkpoint from Postgres, not from the payload). Same one-running-one-queued
 * de-duplication as incremental, so a backfill job enqueueing its next page while it runs gets
 * exactly one follow-up, and no account can flood the queue.
 */
export async function enqueueBackfill(
  queues: Queues,
  accountId: number,
  opts: { reason: BackfillJob["reason"]; query?: string; delayMs?: number; resumeOnly?: boolean; restart?: boolean },
): Promise<void> {
  const data: BackfillJob = {
    accountId,
    reason: opts.reason,
    ...(opts.query !== undefined ? { query: opts.query } : {}),
    ...(opts.resumeOnly ? { resumeOnly: true } : {}),
    ...(opts.restart ? { restart: true } : {}),
  };
  await queues.backfill.add(JOB_NAMES.backfillPage, data, {
    jobId: `bf-${accountId}-${randomUUID()}`,
    // A restart must not fold into the run's queued next page (it would be lost): it has its own
    // de-duplication id; the account's backfill lock still runs the two one after the other.
    deduplication: { id: opts.restart ? `bf-restart-${accountId}` : `bf-${accountId}`, keepLastIfActive: true },
    ...(opts.delayMs !== undefined ? { delay: opts.delayMs } : {}),
  });
}

/**
 * Asks for the account's ledger retry at `at` (now if past). One job per account and 250 ms slot:
 * the job id carries the slot, so commits wanting the same moment add one job, and an earlier
 * moment is never hidden behind a later job already queued (de-duplication by account would keep
 * the later one). A job that finds nothing due ends at once.
 */
export async function enqueueRetry(queues: Queues, accountId: number, at: Date): Promise<void> {
  // The slot after the due moment: a job runs at or after its slot, so any later call asks for a
  // later slot and never collides with a job id that already ran (BullMQ ignores such adds).
  const slot = Math.floor(Math.max(at.getTime(), Date.now()) / RETRY_SLOT_MS) + 1;
  await queues.incremental.add(JOB_NAMES.retryMessages, { accountId }, { jobId: `retry-${accountId}-${slot}`, delay: Math.max(0, slot * RETRY_SLOT_MS - Date.now()) });
}

const RETRY_SLOT_MS = 250;
