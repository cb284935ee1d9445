// The recurring work, as one BullMQ job scheduler per kind ("tick"), each fanning out per-account
// jobs from a database query (src/maintenance.ts) — never one scheduler per account. Upserted from
// one place, the migrate/init step: concurrent upserts from many instances have duplicated or
// stopped schedules in BullMQ (taskforcesh/bullmq issues #2876…#3430). The tick names and payloads are
// the job catalog's (src/jobs.ts); each scheduler's id is its tick's job name.
import type { Queue } from "bullmq";
import type { Redis } from "ioredis";
import type { Config } from "./config.ts";
import { JOB_NAMES, type JobData } from "./jobs.ts";

export const TICKS = {
  watchRenew: JOB_NAMES.watchRenewTick,
  poll: JOB_NAMES.pollTick,
  reconcile: JOB_NAMES.reconcileTick,
  tempSweep: JOB_NAMES.tempSweep,
  retryLedger: JOB_NAMES.retryLedgerTick,
  changesPrune: JOB_NAMES.changesPruneTick,
} as const;
export type TickName = (typeof TICKS)[keyof typeof TICKS];

const DAY_MS = 24 * 3600 * 1000;
const keep = { removeOnComplete: { count: 50 }, removeOnFail: { count: 200 } };

/** Creates or updates the tick schedulers. Idempotent by scheduler id; call sequentially. */
export async function upsertSchedules(maintenance: Queue, config: Config): Promise<void> {
  // Google recommends renewing every watch daily (it lasts 7 days).
  await maintenance.upsertJobScheduler(
    TICKS.watchRenew,
    { every: DAY_MS },
    { name: TICKS.watchRenew, data: {}, opts: keep },
  );
  // The tick is frequent and cheap; the query decides which accounts have been silent too long.
  await maintenance.upsertJobScheduler(TICKS.poll, { every: 60_000 }, { name: TICKS.poll, data: {}, opts: keep });
  await maintenance.upsertJobScheduler(
    TICKS.reconcile,
    { pattern: config.RECONCILE_CRON, tz: "UTC" },
    { name: TICKS.reconcile, data: {}, opts: keep },
  );
  const sweepMs = Math.min(config.TEMP_FILE_ORPHAN_MINUTES, 15) * 60_000;
  await maintenance.upsertJobScheduler(
    TICKS.tempSweep,
    { every: sweepMs },
    { name: TICKS.tempSweep, data: {}, opts: keep },
  );
  // Parked messages are tried again hourly (their next_attempt_at); this also catches any due
  // ledger row whose delayed retry job Redis lost.
  await maintenance.upsertJobScheduler(
    TICKS.retryLedger,
    { every: 3_600_000 },
    { name: TICKS.retryLedger, data: {}, opts: keep },
  );
  // Change-feed retention, hourly: a day's worth of changes is pruned in 24 small steps.
  await maintenance.upsertJobScheduler(
    TICKS.changesPrune,
    { every: 3_600_000 },
    { name: TICKS.changesPrune, data: {}, opts: keep },
  );
}

/**
 * At start-up: renew now any watch that is missing or lapses within 24 h (a process that was down
 * for days must not wait for the daily tick), and sweep orphans left by a crash. The job ids are
 * per hour so a fleet starting together adds each once.
 */
export async function enqueueStartupTicks(maintenance: Queue): Promise<void> {
  const hour = new Date()
    .toISOString()
    .slice(0, 13)
    .replace(/[^0-9]/g, "");
  await maintenance.add(TICKS.watchRenew, { withinMs: DAY_MS } satisfies JobData<typeof TICKS.watchRenew>, {
    jobId: `startup-watch-${hour}`,
    ...keep,
  });
  await maintenance.add(TICKS.tempSweep, {}, { jobId: `startup-sweep-${hour}`, ...keep });
}

/**
 * At start-up of serve/worker: if Redis lost the schedulers (data loss, a new Redis), recreate
 * them — by one instance only (a short Redis lock), since concurrent upserts are what duplicated or
 * stopped schedules in BullMQ. Normally they exist and this only reads.
 */
export async function ensureSchedules(
  maintenance: Queue,
  redis: Redis,
  config: Config,
  log: { warn(o: object, m: string): void },
): Promise<"present" | "recreated" | "skipped"> {
  const present = new Set((await maintenance.getJobSchedulers()).map((s) => s.key));
  const missing = Object.values(TICKS).filter((t) => !present.has(t));
  if (missing.length === 0) return "present";
  const lock = `${config.QUEUE_PREFIX}:schedules-lock`;
  if ((await redis.set(lock, String(process.pid), "PX", 60_000, "NX")) === null) return "skipped";
  log.warn({ missing }, "job schedulers missing in Redis (data loss?): recreating them");
  await upsertSchedules(maintenance, config);
  return "recreated";
}
