// What a maintenance tick enqueues for many accounts at once (src/maintenance.ts): one Redis
// pipeline per thousand jobs instead of a round trip per account, so a tick over 10,000 accounts
// costs a few pipelines. Job names, payloads and de-duplication are the catalog's (src/jobs.ts).
import { createHash, randomUUID } from "node:crypto";
import { backfillJob, JOB_NAMES, type Queues } from "./jobs.ts";

const CHUNK = 1_000;

/** Poll syncs for many accounts, de-duplicated per account exactly as enqueueIncremental's. */
export async function enqueueIncrementals(
  queues: Queues,
  accountIds: readonly number[],
  opts: { reason: "poll" },
): Promise<void> {
  for (let i = 0; i < accountIds.length; i += CHUNK) {
    await queues.incremental.addBulk(
      accountIds.slice(i, i + CHUNK).map((accountId) => ({
        name: JOB_NAMES.incremental,
        data: { accountId, reason: opts.reason },
        opts: {
          jobId: `inc-${accountId}-${randomUUID()}`,
          deduplication: { id: `inc-${accountId}`, keepLastIfActive: true },
        },
      })),
    );
  }
}

/**
 * Asks each running backfill to take its next turn at its own priority, de-duplicated per account
 * exactly as enqueueBackfill's: a no-op for a run whose next turn is already queued, and the way
 * back for a run whose chain of turns was lost with Redis's data.
 */
export async function resumeBackfills(
  queues: Queues,
  runs: ReadonlyArray<{ accountId: number; priority: number }>,
): Promise<void> {
  for (let i = 0; i < runs.length; i += CHUNK) {
    await queues.backfill.addBulk(
      runs
        .slice(i, i + CHUNK)
        .map(({ accountId, priority }) => backfillJob(accountId, { reason: "manual", resumeOnly: true, priority })),
    );
  }
}

/**
 * A stable moment in [0, spreadMs) for the account: the same every week, evenly spread over the
 * fleet (the first 6 bytes of SHA-256 of the id, as a fraction of the window).
 */
export function reconcileOffsetMs(accountId: number, spreadMs: number): number {
  if (spreadMs <= 0) return 0;
  const h = createHash("sha256").update(`reconcile:${accountId}`).digest().readUIntBE(0, 6);
  return Math.floor((h / 2 ** 48) * spreadMs);
}

/**
 * Each account's reconcile, delayed by its stable offset in the spread window. The job id names
 * the tick (`tickAt`), so a tick run twice adds each once; it carries no de-duplication id, so a
 * reconcile waiting for its moment never swallows the account's other backfill turns (which
 * de-duplicate on bf-<id>): when it fires it starts a run, or continues the one in progress.
 */
export async function enqueueReconciles(
  queues: Queues,
  accountIds: readonly number[],
  opts: { spreadMs: number; tickAt: number },
): Promise<void> {
  for (let i = 0; i < accountIds.length; i += CHUNK) {
    await queues.backfill.addBulk(
      accountIds.slice(i, i + CHUNK).map((accountId) => {
        const delay = reconcileOffsetMs(accountId, opts.spreadMs);
        return {
          name: JOB_NAMES.backfillPage,
          data: { accountId, reason: "reconcile" as const },
          opts: { jobId: `reconcile-${accountId}-${opts.tickAt}`, ...(delay > 0 ? { delay } : {}) },
        };
      }),
    );
  }
}
