// The one composition root: builds Postgres, Redis, the queues, the quota governor, the Gmail
// factory and the attachment pipeline from the config, and hands them out. Commands, the HTTP
// server, the demo, benchmarks and tests build an App here and call close() once; nothing else
// constructs these. Two smaller apps for commands that need less: a store app (Postgres only:
// accounts, search, migrate) and an extraction app (the attachment pipeline only: extract).
import { Redis } from "ioredis";
import { createAttachmentPipeline } from "./attachments/pipeline.ts";
import type { AttachmentPipeline, AttachmentResult, ReusableText, SkippedReason } from "./attachments/types.ts";
import type { Config } from "./config.ts";
import { findReusableText } from "./db/attachments.ts";
import { createDb, type Db } from "./db/database.ts";
import { enqueueIncrementals, enqueueReconciles, resumeBackfills } from "./fan-out.ts";
import { sweepOrphanTempFiles } from "./attachments/temp-files.ts";
import { createGmailFactory } from "./gmail/factory.ts";
import type { GmailFactory } from "./gmail/port.ts";
import { createInFlightLimiter, type InFlightLimiter } from "./gmail/in-flight.ts";
import { createQuotaGovernor, type QuotaGovernor } from "./gmail/quota.ts";
import {
  type BackfillJob,
  createQueues,
  enqueueBackfill,
  enqueueIncremental,
  enqueueRetry,
  type CatalogJob,
  type IncrementalJob,
  type QUEUE_NAMES,
  type Queues,
} from "./jobs.ts";
import type { Logger } from "./log.ts";
import { processMaintenanceJob } from "./maintenance.ts";
import { type KeyRing, parseKeyRing } from "./token-crypto.ts";
import { type RunningWorkers, type StartWorkersOptions, startWorkers } from "./worker.ts";

// Skips that depend only on the bytes (as src/db/attachments.ts reuses them).
const CONTENT_SKIPS = new Set<SkippedReason>(["encrypted", "unsupported_type", "corrupt", "empty"]);

export interface App {
  config: Config;
  log: Logger;
  db: Db;
  /** General connection (queues, quota buckets, our own keys); maxRetriesPerRequest null per BullMQ. */
  redis: Redis;
  /** Null when TOKEN_ENCRYPTION_KEY is unset: commands that need no Gmail still work. */
  keyRing: KeyRing | null;
  quota: QuotaGovernor;
  /** Gmail requests in flight per account, shared by every process (GMAIL_MAX_IN_FLIGHT). */
  inFlight: InFlightLimiter;
  gmailFactory: GmailFactory;
  pipeline: AttachmentPipeline;
  queues: Queues;
  /** `restart`: start a new run even while one is listing (else a run in progress continues). */
  enqueueBackfill(
    accountId: number,
    opts: { reason: BackfillJob["reason"]; query?: string; restart?: boolean },
  ): Promise<void>;
  enqueueIncremental(accountId: number, opts: Omit<IncrementalJob, "accountId">): Promise<{ coalesced: boolean }>;
  /** Runs one maintenance job (a tick) here, with the deps the maintenance worker gives it (benches time ticks so). */
  runMaintenanceJob(job: CatalogJob<typeof QUEUE_NAMES.maintenance>): Promise<unknown>;
  /**
   * Runs the backfill, incremental and maintenance workers in this process. The maintenance
   * processor defaults to src/maintenance.ts wired to this app; `maintenance: false` leaves it out.
   */
  startWorkers(opts?: StartWorkersOptions & { maintenance?: boolean }): RunningWorkers;
  /** Stops workers started here, then closes the pipeline, queues, Redis and Postgres. Safe twice. */
  close(): Promise<void>;
}

export interface AppOptions {
  log: Logger;
  /** A one-shot command: Redis unreachable is an error at once, not a wait (see below). */
  oneShot?: boolean;
}

export function createApp(config: Config, deps: AppOptions): App {
  const { log } = deps;
  const concurrency = config.WORKER_CONCURRENCY;
  // Each running sync holds one connection for its advisory lock and uses another for its writes.
  const db = createDb(config.DATABASE_URL, config.DATABASE_POOL_SIZE + 2 * concurrency);
  // A worker waits out a Redis outage (ioredis reconnects forever); a one-shot command fails at
  // the first refused connection with that error, which the CLI prints as its one line.
  const redis = deps.oneShot
    ? new Redis(config.REDIS_URL, { maxRetriesPerRequest: 1, retryStrategy: () => null })
    : new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
  redis.on("error", (err) =>
    (deps.oneShot ? log.debug : log.warn).call(log, { err: err.message }, "redis connection error"),
  );
  const keyRing = config.TOKEN_ENCRYPTION_KEY ? parseKeyRing(config.TOKEN_ENCRYPTION_KEY) : null;
  const quota = createQuotaGovernor(redis, {
    prefix: config.QUEUE_PREFIX,
    unitsPerSecond: config.GMAIL_QUOTA_UNITS_PER_SECOND,
    projectUnitsPerMinute: config.GMAIL_PROJECT_QUOTA_UNITS_PER_MINUTE,
  });
  const inFlight = createInFlightLimiter(redis, { prefix: config.QUEUE_PREFIX, cap: config.GMAIL_MAX_IN_FLIGHT });
  const queues = createQueues(redis, config.QUEUE_PREFIX);

  let factory: GmailFactory | undefined;
  const gmailFactory: GmailFactory = (account) => {
    if (keyRing === null)
      throw new Error("TOKEN_ENCRYPTION_KEY is not set: it is needed to read the stored Gmail tokens");
    factory ??= createGmailFactory({ db, redis, config, keyRing, quota, inFlight, log });
    return factory(account);
  };

  // The pipeline may start extraction children: only when a message with attachments shows up.
  // Results of this process's recent extractions, by checksum: a backfill page commits its rows
  // only at the end, so without this the same attachment repeated within a page (newsletters,
  // signatures, forwarded files) would be extracted again instead of reused from Postgres.
  const recent = new Map<string, ReusableText>();
  const findReusable = async (checksum: string): Promise<ReusableText | null> =>
    recent.get(checksum) ?? findReusableText(db, checksum);
  const remember = (r: AttachmentResult) => {
    const reusable =
      r.text !== null ? r.skippedReason === null : r.skippedReason !== null && CONTENT_SKIPS.has(r.skippedReason);
    if (r.checksum === null || !reusable || (r.text?.length ?? 0) > 256 * 1024) return;
    if (recent.size >= 500) recent.delete(recent.keys().next().value as string);
    recent.set(r.checksum, {
      text: r.text,
      textTruncated: r.textTruncated,
      detectedType: r.detectedType,
      metadata: r.metadata,
      skippedReason: r.skippedReason,
    });
  };
  let realPipeline: Promise<AttachmentPipeline> | undefined;
  const pipeline: AttachmentPipeline = {
    async process(ref, fetchBytes, opts) {
      realPipeline ??= createAttachmentPipeline(config, { log, findReusable });
      const result = await (await realPipeline).process(ref, fetchBytes, opts);
      remember(result);
      return result;
    },
    async htmlBodyText(html) {
      realPipeline ??= createAttachmentPipeline(config, { log, findReusable });
      return (await realPipeline).htmlBodyText(html);
    },
    async close() {
      if (realPipeline !== undefined) await (await realPipeline).close();
    },
  };

  const runMaintenanceJob = (job: Parameters<typeof processMaintenanceJob>[0]) =>
    processMaintenanceJob(job, {
      db,
      config,
      log,
      gmailFactory,
      maintenance: queues.maintenance,
      enqueueIncrementals: (accountIds, o) => enqueueIncrementals(queues, accountIds, o),
      enqueueBackfill: (accountId, o) => enqueueBackfill(queues, accountId, o),
      enqueueReconciles: (accountIds, o) => enqueueReconciles(queues, accountIds, o),
      resumeBackfills: (runs) => resumeBackfills(queues, runs),
      enqueueRetry: (accountId) => enqueueRetry(queues, accountId, new Date()),
      sweepTempFiles: () => sweepOrphanTempFiles(config.ATTACHMENT_TEMP_DIR, config.TEMP_FILE_ORPHAN_MINUTES, log),
    });

  const running: RunningWorkers[] = [];
  let closing: Promise<void> | undefined;
  const app: App = {
    config,
    log,
    db,
    redis,
    keyRing,
    quota,
    inFlight,
    gmailFactory,
    pipeline,
    queues,
    enqueueBackfill: (accountId, opts) => enqueueBackfill(queues, accountId, opts),
    enqueueIncremental: (accountId, opts) => enqueueIncremental(queues, accountId, opts),
    runMaintenanceJob,
    startWorkers(opts = {}) {
      const workerConnection = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
      workerConnection.on("error", (err) => log.warn({ err: err.message }, "worker redis connection error"));
      const maintenanceProcessor =
        opts.maintenanceProcessor ?? (opts.maintenance === false ? undefined : runMaintenanceJob);
      const workers = startWorkers(
        {
          db,
          redis,
          queues,
          gmailFactory,
          pipeline,
          log,
          config,
          workerConnection,
          prefix: config.QUEUE_PREFIX,
          defaultConcurrency: concurrency,
        },
        {
          lockDurationMs: config.WORKER_LOCK_DURATION_MS,
          ...opts,
          ...(maintenanceProcessor !== undefined ? { maintenanceProcessor } : {}),
        },
      );
      const handle: RunningWorkers = {
        workers: workers.workers,
        async close(closeOpts) {
          await workers.close(closeOpts);
          workerConnection.disconnect();
        },
      };
      running.push(handle);
      return handle;
    },
    close() {
      closing ??= (async () => {
        await Promise.allSettled(running.map((w) => w.close()));
        await pipeline.close().catch((err) => log.warn({ err: (err as Error).message }, "pipeline close failed"));
        await queues.close().catch(() => {});
        await redis.quit().catch(() => redis.disconnect());
        await db.destroy();
      })();
      return closing;
    },
  };
  return app;
}

/** Postgres alone, for commands and tools that only read or migrate the database. */
export interface StoreApp {
  config: Config;
  log: Logger;
  db: Db;
  /** Safe twice. */
  close(): Promise<void>;
}

export function createStoreApp(config: Config, deps: { log: Logger; poolSize?: number }): StoreApp {
  const db = createDb(config.DATABASE_URL, deps.poolSize ?? 2);
  let closing: Promise<void> | undefined;
  return {
    config,
    log: deps.log,
    db,
    close() {
      closing ??= db.destroy();
      return closing;
    },
  };
}

/** The attachment pipeline alone (no database, no Redis): `gmail-sync extract` and its benchmark. */
export interface ExtractionApp {
  config: Config;
  log: Logger;
  pipeline: AttachmentPipeline;
  /** Stops the extraction children. Safe twice. */
  close(): Promise<void>;
}

export async function createExtractionApp(config: Config, deps: { log: Logger }): Promise<ExtractionApp> {
  // Nothing stored to reuse from: every file is extracted.
  const pipeline = await createAttachmentPipeline(config, { log: deps.log, findReusable: async () => null });
  let closing: Promise<void> | undefined;
  return {
    config,
    log: deps.log,
    pipeline,
    close() {
      closing ??= pipeline.close();
      return closing;
    },
  };
}
