// Gauges that describe state rather than events, read from Postgres and BullMQ when /metrics is
// scraped (not on a timer: an idle process does no work, and values are as fresh as the scrape).
// One aggregate query per source; results are shared by concurrent scrapes and reused for a few
// seconds, and a slow or failing source keeps its previous values and counts an error instead of
// failing the whole scrape.
import type { Queue } from "bullmq";
import type { Config } from "./config.ts";
import { changeFeedBounds } from "./db/changes.ts";
import type { Db } from "./db/database.ts";
import {
  accountAges,
  accountTotals,
  parkedDeadLettersByReason,
  retryingMessagesSummary,
} from "./db/metrics-queries.ts";
import type { Logger } from "./log.ts";
import {
  accountCursorAgeSeconds,
  accountLastSuccessAgeSeconds,
  accountsByCursorAge,
  accountsGauge,
  accountsStale,
  accountsWatched,
  backfillMessages,
  changeFeedHeadSeq,
  changeFeedOldestSeq,
  cursorAgeMaxSeconds,
  deadLettersOpen,
  messagesRetrying,
  messagesRetryingOldestSeconds,
  lastSuccessAgeMaxSeconds,
  metricsAccountsTruncated,
  metricsCollectErrorsTotal,
  queueJobs,
  quotaLimitUnitsPerSecond,
  watchExpirySoonestSeconds,
} from "./metrics.ts";

/** Cursor-age ranges [from, to) in seconds, up to 7 days, Gmail's history retention. */
export const CURSOR_AGE_BUCKETS = [
  { age: "lt_5m", from: 0, to: 300 },
  { age: "5m_1h", from: 300, to: 3600 },
  { age: "1h_6h", from: 3600, to: 6 * 3600 },
  { age: "6h_1d", from: 6 * 3600, to: 86400 },
  { age: "1d_3d", from: 86400, to: 3 * 86400 },
  { age: "3d_5d", from: 3 * 86400, to: 5 * 86400 },
  { age: "5d_7d", from: 5 * 86400, to: 7 * 86400 },
  { age: "gt_7d", from: 7 * 86400, to: Number.MAX_SAFE_INTEGER },
] as const;

/** Queue states exported by gmail_sync_queue_jobs (BullMQ v6 has no "paused" count). */
export const QUEUE_STATES = [
  "waiting",
  "active",
  "delayed",
  "prioritized",
  "waiting-children",
  "failed",
  "completed",
] as const;

/** Per-account series are capped so a flag meant for small installs cannot explode cardinality. */
export const PER_ACCOUNT_SERIES_CAP = 200;

const TIMEOUT_MS = 2_000;
const REUSE_MS = 5_000;

export interface ScrapeCollectorDeps {
  db: Db;
  config: Config;
  /** BullMQ queues keyed by their name (backfill, incremental, maintenance); omitted = no queue gauges. */
  queues?: Readonly<Record<string, Pick<Queue, "getJobCounts">>>;
  log?: Logger;
  /** Scrapes closer together than this reuse the last values (default 5 s; tests pass 0). */
  reuseMs?: number;
}

function withTimeout<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what} collector timed out after ${TIMEOUT_MS} ms`)), TIMEOUT_MS);
  });
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer));
}

const num = (v: unknown): number => (v === null || v === undefined ? 0 : Number(v));

async function collectDatabase(db: Db, config: Config, seenReasons: Set<string>): Promise<void> {
  const row = await accountTotals(db, CURSOR_AGE_BUCKETS);
  const deadLetters = await parkedDeadLettersByReason(db);
  // Open ledger rows not parked: messages the retry step still has to bring in.
  const retrying = await retryingMessagesSummary(db);

  for (const status of ["active", "backfilling", "reauth_required", "disabled"] as const) {
    accountsGauge.set({ status }, num(row[status]));
  }
  backfillMessages.set({ stage: "listed" }, num(row.listed));
  backfillMessages.set({ stage: "stored" }, num(row.stored));
  cursorAgeMaxSeconds.set(Math.max(0, num(row.cursor_age_max)));
  const cells = row as unknown as Record<string, unknown>;
  for (const [i, b] of CURSOR_AGE_BUCKETS.entries()) accountsByCursorAge.set({ age: b.age }, num(cells[`age_${i}`]));
  lastSuccessAgeMaxSeconds.set(Math.max(0, num(row.success_age_max)));
  accountsStale.set(num(row.stale));
  // No watch at all (push not configured) is not "expiring now": NaN compares false in PromQL.
  watchExpirySoonestSeconds.set(row.watch_soonest === null ? Number.NaN : num(row.watch_soonest));
  accountsWatched.set(num(row.watched));

  // Reasons seen before stay exported as 0 once resolved, so rate()s and alerts see a continuous series.
  const current = new Map(deadLetters.map((d) => [d.reason, num(d.n)]));
  for (const reason of current.keys()) seenReasons.add(reason);
  for (const reason of seenReasons) deadLettersOpen.set({ reason }, current.get(reason) ?? 0);
  messagesRetrying.set(num(retrying.n));
  messagesRetryingOldestSeconds.set(retrying.oldest === null ? 0 : num(retrying.oldest));
  const feed = await changeFeedBounds(db);
  changeFeedHeadSeq.set(feed.head);
  changeFeedOldestSeq.set(feed.oldest);

  if (config.METRICS_PER_ACCOUNT) {
    const rows = await accountAges(db, PER_ACCOUNT_SERIES_CAP + 1);
    accountCursorAgeSeconds.reset();
    accountLastSuccessAgeSeconds.reset();
    for (const r of rows.slice(0, PER_ACCOUNT_SERIES_CAP)) {
      const labels = { account_id: String(r.id) };
      if (r.cursor_age !== null) accountCursorAgeSeconds.set(labels, num(r.cursor_age));
      accountLastSuccessAgeSeconds.set(labels, num(r.success_age));
    }
    metricsAccountsTruncated.set(rows.length > PER_ACCOUNT_SERIES_CAP ? 1 : 0);
  }
}

async function collectQueues(queues: Readonly<Record<string, Pick<Queue, "getJobCounts">>>): Promise<void> {
  const all = await Promise.all(
    Object.entries(queues).map(async ([name, q]) => [name, await q.getJobCounts(...QUEUE_STATES)] as const),
  );
  for (const [queue, counts] of all) {
    for (const state of QUEUE_STATES) queueJobs.set({ queue, state }, counts[state] ?? 0);
  }
}

/**
 * Sets the configured quota ceilings and returns the function to await before each scrape
 * (buildHttpServer does so in GET /metrics). The function never rejects.
 */
export function registerScrapeCollectors(deps: ScrapeCollectorDeps): () => Promise<void> {
  quotaLimitUnitsPerSecond.set({ scope: "user" }, deps.config.GMAIL_QUOTA_UNITS_PER_SECOND);
  quotaLimitUnitsPerSecond.set({ scope: "project" }, deps.config.GMAIL_PROJECT_QUOTA_UNITS_PER_MINUTE / 60);
  // Known series exist from the first scrape ("avoid missing metrics"), even before any failure.
  metricsCollectErrorsTotal.inc({ collector: "database" }, 0);
  if (deps.queues) metricsCollectErrorsTotal.inc({ collector: "queues" }, 0);

  const seenReasons = new Set<string>();
  let inFlight: Promise<void> | undefined;
  let lastDone = 0;

  const guarded = async (collector: "database" | "queues", run: () => Promise<void>): Promise<void> => {
    try {
      await withTimeout(run(), collector);
    } catch (err) {
      metricsCollectErrorsTotal.inc({ collector });
      deps.log?.warn({ collector, err: (err as Error).message }, "metrics collector failed; previous values kept");
    }
  };

  return function collect(): Promise<void> {
    if (inFlight) return inFlight;
    if (Date.now() - lastDone < (deps.reuseMs ?? REUSE_MS)) return Promise.resolve();
    inFlight = (async () => {
      const jobs = [guarded("database", () => collectDatabase(deps.db, deps.config, seenReasons))];
      const queues = deps.queues;
      if (queues) jobs.push(guarded("queues", () => collectQueues(queues)));
      await Promise.all(jobs);
    })().finally(() => {
      lastDone = Date.now();
      inFlight = undefined;
    });
    return inFlight;
  };
}
