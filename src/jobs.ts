// The job catalog: every queue, every job name, and each job's payload as a zod schema (ids and
// small flags only: never bodies, tokens or bytes), plus default options, per-account
// de-duplication and the enqueue functions producers use. The worker checks each job against it
// before running anything (src/worker.ts): an unknown name or a bad payload fails at once, for good.
// Handlers are not imported here (the sync runs import this file to enqueue); instead the
// JobHandlers type makes each queue's dispatch table name every job of that queue exactly once.
import { randomUUID } from "node:crypto";
import { Queue, type ConnectionOptions, type JobsOptions } from "bullmq";
import type { Redis } from "ioredis";
import { z } from "zod";

export const QUEUE_NAMES = { backfill: "backfill", incremental: "incremental", maintenance: "maintenance" } as const;
export type QueueName = (typeof QUEUE_NAMES)[keyof typeof QUEUE_NAMES];

export const JOB_NAMES = {
  backfillPage: "backfill-page",
  /** After a history-expired resync: labels of held messages that changed while history was lost. */
  labelRepair: "label-repair",
  incremental: "incremental",
  retryMessages: "retry-messages",
  // Maintenance: the scheduled ticks (src/schedules.ts) and the per-account watch renewal they fan out to.
  watchRenewTick: "watch-renew-tick",
  watchRenew: "watch-renew",
  pollTick: "poll-tick",
  reconcileTick: "reconcile-tick",
  tempSweep: "temp-sweep",
  retryLedgerTick: "retry-ledger-tick",
  // The change feed's retention (src/db/changes.ts pruneChanges, CHANGES_RETENTION_DAYS).
  changesPruneTick: "changes-prune-tick",
} as const;

const accountId = z.number().int().positive();
// Strict objects: a key the catalog does not name (a body, a token) fails the job rather than
// riding along in Redis.
const backfillPayload = z.strictObject({
  accountId,
  reason: z.enum(["connect", "manual", "reconcile", "history_expired"]),
  query: z.string().optional(),
  /** Only continue a run in progress (never start one): the safety net for a stalled backfill. */
  resumeOnly: z.boolean().optional(),
  /** Start a new run even though one is listing (the reconcile tick's answer to a run stuck for days). */
  restart: z.boolean().optional(),
});
const incrementalPayload = z.strictObject({
  accountId,
  reason: z.enum(["push", "poll", "manual", "after_backfill"]),
  pushReceivedAt: z.number().int().nonnegative().optional(),
  historyId: z
    .string()
    .regex(/^\d{1,20}$/)
    .optional(),
});
/** One threads.list page of the account's label repair (src/sync/label-repair.ts; its page token waits in Redis). */
const labelRepairPayload = z.strictObject({ accountId });
/** Fetch again the account's due rows of the retry ledger (src/sync/retry-messages.ts). */
const retryPayload = z.strictObject({ accountId });
const tickPayload = z.strictObject({});

export type BackfillJob = z.infer<typeof backfillPayload>;
export type IncrementalJob = z.infer<typeof incrementalPayload>;
export type RetryJob = z.infer<typeof retryPayload>;
export type LabelRepairJob = z.infer<typeof labelRepairPayload>;

/** Each job name: the queue it runs on and its payload's schema. */
export const JOBS = {
  [JOB_NAMES.backfillPage]: { queue: QUEUE_NAMES.backfill, payload: backfillPayload },
  // Bulk work under the account's backfill lock, like the pages.
  [JOB_NAMES.labelRepair]: { queue: QUEUE_NAMES.backfill, payload: labelRepairPayload },
  [JOB_NAMES.incremental]: { queue: QUEUE_NAMES.incremental, payload: incrementalPayload },
  // Ledger retries share the incremental queue: both run under the account's incremental lock.
  [JOB_NAMES.retryMessages]: { queue: QUEUE_NAMES.incremental, payload: retryPayload },
  // The start-up tick passes withinMs (renew only watches lapsing that soon); the daily one none.
  [JOB_NAMES.watchRenewTick]: {
    queue: QUEUE_NAMES.maintenance,
    payload: z.strictObject({ withinMs: z.number().int().positive().optional() }),
  },
  [JOB_NAMES.watchRenew]: { queue: QUEUE_NAMES.maintenance, payload: z.strictObject({ accountId }) },
  [JOB_NAMES.pollTick]: { queue: QUEUE_NAMES.maintenance, payload: tickPayload },
  [JOB_NAMES.reconcileTick]: { queue: QUEUE_NAMES.maintenance, payload: tickPayload },
  [JOB_NAMES.tempSweep]: { queue: QUEUE_NAMES.maintenance, payload: tickPayload },
  [JOB_NAMES.retryLedgerTick]: { queue: QUEUE_NAMES.maintenance, payload: tickPayload },
  [JOB_NAMES.changesPruneTick]: { queue: QUEUE_NAMES.maintenance, payload: tickPayload },
} as const satisfies Record<(typeof JOB_NAMES)[keyof typeof JOB_NAMES], { queue: QueueName; payload: z.ZodType }>;

export type JobName = keyof typeof JOBS;
export type JobData<N extends JobName> = z.infer<(typeof JOBS)[N]["payload"]>;
/** The job names that run on queue(s) Q. */
export type JobNameOf<Q extends QueueName> = {
  [N in JobName]: (typeof JOBS)[N]["queue"] extends Q ? N : never;
}[JobName];
/** A job that passed the catalog: name and parsed payload, one union member per job name of Q. */
export type CatalogJob<Q extends QueueName = QueueName> = {
  [N in JobNameOf<Q>]: { name: N; data: JobData<N> };
}[JobNameOf<Q>];
/** A dispatch table: one handler per job name of Q, no more, no fewer (the compiler checks). */
export type JobHandlers<Q extends QueueName, Ctx> = {
  [N in JobNameOf<Q>]: (ctx: Ctx, data: JobData<N>) => Promise<unknown>;
};

/**
 * Checks a job BullMQ handed to queue `queue`'s worker: its name must be a catalog job of that
 * queue and its payload must match the schema. The reason names the failing fields, never their
 * values (a payload that should not be there may hold a secret).
 */
export function parseJob<Q extends QueueName>(
  queue: Q,
  name: string,
  data: unknown,
): { ok: true; job: CatalogJob<Q> } | { ok: false; reason: string } {
  if (!Object.hasOwn(JOBS, name))
    return { ok: false, reason: `unknown job name ${JSON.stringify(name.slice(0, 100))} on queue ${queue}` };
  const spec = JOBS[name as JobName];
  if (spec.queue !== queue) return { ok: false, reason: `job ${name} belongs on queue ${spec.queue}, not ${queue}` };
  const parsed = spec.payload.safeParse(data);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "payload"}: ${i.message}`);
    return { ok: false, reason: `invalid payload for job ${name}: ${issues.slice(0, 5).join("; ")}` };
  }
  return { ok: true, job: { name, data: parsed.data } as CatalogJob<Q> };
}

/** Runs a checked job's one handler. */
export function dispatchJob<Q extends QueueName, Ctx>(
  handlers: JobHandlers<Q, Ctx>,
  ctx: Ctx,
  job: CatalogJob<Q>,
): Promise<unknown> {
  // The union of jobs does not let the compiler pair a name's handler with its data; the
  // JobHandlers and CatalogJob types above already did.
  const handler = handlers[job.name as JobNameOf<Q>] as (ctx: Ctx, data: unknown) => Promise<unknown>;
  return handler(ctx, job.data);
}

export interface Queues {
  /** Backfill slices (and label-repair pages: enqueueLabelRepair). */
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
export async function enqueueIncremental(
  queues: Queues,
  accountId: number,
  opts: Omit<IncrementalJob, "accountId">,
): Promise<{ coalesced: boolean }> {
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
export async function enqueueBackfill(queues: Queues, accountId: number, opts: BackfillRequest): Promise<void> {
  const job = backfillJob(accountId, opts);
  await queues.backfill.add(job.name, job.data, job.opts);
}

export interface BackfillRequest {
  reason: BackfillJob["reason"];
  query?: string;
  delayMs?: number;
  resumeOnly?: boolean;
  restart?: boolean;
  /** BullMQ priority (1 runs first); none: before every prioritized job (a run's first turn). */
  priority?: number;
}

/** The backfill job enqueueBackfill adds, for adding many at once (src/fan-out.ts) the same way. */
export function backfillJob(
  accountId: number,
  opts: BackfillRequest,
): { name: typeof JOB_NAMES.backfillPage; data: BackfillJob; opts: JobsOptions } {
  const data: BackfillJob = {
    accountId,
    reason: opts.reason,
    ...(opts.query !== undefined ? { query: opts.query } : {}),
    ...(opts.resumeOnly ? { resumeOnly: true } : {}),
    ...(opts.restart ? { restart: true } : {}),
  };
  return {
    name: JOB_NAMES.backfillPage,
    data,
    opts: {
      jobId: `bf-${accountId}-${randomUUID()}`,
      // A restart must not fold into the run's queued next page (it would be lost): it has its own
      // de-duplication id; the account's backfill lock still runs the two one after the other.
      deduplication: { id: opts.restart ? `bf-restart-${accountId}` : `bf-${accountId}`, keepLastIfActive: true },
      ...(opts.delayMs !== undefined ? { delay: opts.delayMs } : {}),
      ...(opts.priority !== undefined ? { priority: opts.priority } : {}),
    },
  };
}

/** The account's next label-repair page (one queued per account), at backfill priority `priority`. */
export async function enqueueLabelRepair(queues: Queues, accountId: number, opts: { priority?: number } = {}) {
  // The queue is typed by its main job; the worker checks every job against the catalog anyway.
  await (queues.backfill as unknown as Queue<LabelRepairJob>).add(
    JOB_NAMES.labelRepair,
    { accountId },
    {
      jobId: `labels-${accountId}-${randomUUID()}`,
      deduplication: { id: `labels-${accountId}`, keepLastIfActive: true },
      ...(opts.priority !== undefined ? { priority: opts.priority } : {}),
    },
  );
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
  await queues.incremental.add(
    JOB_NAMES.retryMessages,
    { accountId },
    { jobId: `retry-${accountId}-${slot}`, delay: Math.max(0, slot * RETRY_SLOT_MS - Date.now()) },
  );
}

const RETRY_SLOT_MS = 250;
