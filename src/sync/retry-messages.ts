// The retry step: fetches the messages the retry ledger (src/db/dead-letters.ts) holds for an
// account again and stores them through the one fetch and store step (fetch-messages.ts,
// store-prepared.ts), as backfill and incremental sync do. It runs as its own job
// ("retry-messages", scheduled for the earliest due row after every commit that left one, and by
// the hourly tick for parked rows), under the account's incremental lock, so it never writes the
// same rows as a sync at the same time. `gmail-sync dead-letters --retry` runs it for parked rows.
import { type DueMessage, dueMessages, nextRetryAt } from "../db/dead-letters.ts";
import { knownIds } from "../db/messages.ts";
import type { GmailPort } from "../gmail/port.ts";
import { enqueueRetry, type RetryJob } from "../jobs.ts";
import { activeAccountPort, type SyncDeps, type SyncSkip } from "./deps.ts";
import { fetchMessages } from "./fetch-messages.ts";
import { LOCK_WAIT_MS, withSyncLock } from "./lock.ts";
import { assertPlausibleGone } from "./not-found.ts";
import { countStored, storePrepared, storeTransaction } from "./store-prepared.ts";

/** Rows fetched per round, and rounds per job (the rest waits for the next job: bounded runs). */
export const RETRY_BATCH = 500;
const MAX_ROUNDS = 4;

/**
 * Ledger reasons for which a 404 means "not served yet", not "gone": Gmail announces a new message
 * (history, push) a moment before messages.get serves it (byeokim/gmailpush#10, openclaw/gogcli#379).
 * A real deletion arrives as messagesDeleted and resolves the row; until then it is retried.
 */
export const NOT_FOUND_YET = "not_found_after_add";
/** A label change for a message not held, past the per-slice fetch cap: a 404 on retry means gone. */
export const LABELLED_NOT_HELD = "labelled_not_held";

export interface RetryOutcome {
  retried: number;
  stored: number;
  gone: number;
  retrying: number;
  parked: number;
}

/** Fetches `rows` again and commits the outcome (in the caller's lock). */
export async function retryMessages(
  deps: SyncDeps,
  gmail: GmailPort,
  accountId: number,
  rows: DueMessage[],
): Promise<RetryOutcome> {
  const out: RetryOutcome = { retried: rows.length, stored: 0, gone: 0, retrying: 0, parked: 0 };
  if (rows.length === 0) return out;
  const awaited = new Set(rows.filter((r) => r.reason === NOT_FOUND_YET).map((r) => r.gmailId));
  const prepared = await fetchMessages(
    { gmail, pipeline: deps.pipeline },
    rows.map((r) => r.gmailId),
  );
  const stillNotServed = prepared.gone.filter((id) => awaited.has(id));
  prepared.gone = prepared.gone.filter((id) => !awaited.has(id));
  for (const id of stillNotServed)
    prepared.failed.push({
      id,
      kind: "transient",
      reason: NOT_FOUND_YET,
      detail: "added in history but messages.get still answers 404",
    });
  assertPlausibleGone(prepared, rows.length - awaited.size);
  // Outside the mirror's scope now (moved to Spam or Trash meanwhile, with INCLUDE_SPAM_TRASH off):
  // not stored unless already held — the row is settled either way.
  const dropped: string[] = [];
  if (!deps.config.INCLUDE_SPAM_TRASH) {
    const outside = prepared.records
      .filter((m) => m.labelIds.some((l) => l === "SPAM" || l === "TRASH"))
      .map((m) => m.gmailId);
    const held = await knownIds(deps.db, accountId, outside);
    dropped.push(...outside.filter((id) => !held.has(id)));
    const drop = new Set(dropped);
    prepared.records = prepared.records.filter((m) => !drop.has(m.gmailId));
  }
  const c = await storeTransaction(deps, accountId, "retry", (trx, feed) =>
    storePrepared(trx, accountId, prepared, { alsoResolved: dropped, feed }),
  );
  countStored("retry", c);
  if (prepared.abort !== undefined) throw prepared.abort;
  return { ...out, stored: c.stored, gone: c.gone, retrying: c.retrying, parked: c.parked };
}

/** The retry job: due rows in rounds, then the next job scheduled for the earliest row left. */
export async function runRetryJob(deps: SyncDeps, job: RetryJob): Promise<RetryOutcome | SyncSkip> {
  const { accountId } = job;
  return withSyncLock(
    deps.db,
    "incremental",
    accountId,
    async () => {
      const port = await activeAccountPort(deps, accountId);
      if ("skipped" in port) return port;
      const total: RetryOutcome = { retried: 0, stored: 0, gone: 0, retrying: 0, parked: 0 };
      for (let round = 0; round < MAX_ROUNDS; round++) {
        const rows = await dueMessages(deps.db, accountId, { limit: RETRY_BATCH });
        if (rows.length === 0) break;
        const r = await retryMessages(deps, port.gmail, accountId, rows);
        for (const k of Object.keys(total) as Array<keyof RetryOutcome>) total[k] += r[k];
        if (rows.length < RETRY_BATCH) break;
      }
      await scheduleRetry(deps, accountId);
      if (total.retried > 0) deps.log.info({ accountId, ...total }, "retried messages from the ledger");
      return total;
    },
    { waitMs: LOCK_WAIT_MS },
  );
}

/** Enqueues the retry job for the account's earliest unparked ledger row, if there is one. */
export async function scheduleRetry(
  deps: Pick<SyncDeps, "db" | "queues">,
  accountId: number,
  at?: Date | null,
): Promise<void> {
  const due = at === undefined ? await nextRetryAt(deps.db, accountId) : at;
  if (due === null) return;
  await enqueueRetry(deps.queues, accountId, due);
}
