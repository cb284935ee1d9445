// The store half: a PreparedBatch (src/sync/fetch-messages.ts) written inside the caller's
// transaction, the one that also moves its cursor or checkpoint — rows upserted (an older fetch
// never overwrites a newer state), messages that answered 404 soft-deleted, the ledger's open rows
// of everything now whole or gone resolved, and every failure (and every message stored without an
// attachment) counted in the retry ledger (src/db/dead-letters.ts) so the caller may move its cursor
// or checkpoint past it: the ledger, not the cursor, brings it back. Backfill, incremental sync and
// the retry step (the retry job and `gmail-sync dead-letters --retry`) all store through it; no
// other path writes messages. Each caller opens its transaction with storeTransaction, which
// collects what the transaction changed for the change feed (src/db/changes.ts) and appends it as
// the transaction's last statement: a change commits with its row, or neither does.
import type { Transaction } from "kysely";
import type { Config } from "../config.ts";
import { type ChangeSink, changeBuffer, transactionWithChanges } from "../db/changes.ts";
import type { Database, Db } from "../db/database.ts";
import { recordMessageFailure, resolveDeadLetters } from "../db/dead-letters.ts";
import { softDeleteMessages, upsertMessages } from "../db/messages.ts";
import { deadLettersTotal, syncMessagesTotal } from "../metrics.ts";
import type { PreparedBatch } from "./fetch-messages.ts";

export interface StoreOutcome {
  stored: number;
  /** Rows soft-deleted because their message answered 404. */
  gone: number;
  /** Failures parked now as dead letters (a person should look). */
  parked: number;
  /** Failures (or incomplete messages) in the ledger awaiting their next attempt. */
  retrying: number;
  /** Earliest next attempt of this store's retrying rows, to schedule the retry step by. */
  nextRetryAt: Date | null;
}

export async function storePrepared(
  trx: Transaction<Database>,
  accountId: number,
  prepared: PreparedBatch,
  opts: { alsoResolved?: Iterable<string>; feed?: ChangeSink } = {},
): Promise<StoreOutcome> {
  const out: StoreOutcome = { stored: 0, gone: 0, parked: 0, retrying: 0, nextRetryAt: null };
  out.stored = await upsertMessages(trx, accountId, prepared.records, opts.feed);
  // Already gone when fetched: recorded as deleted (if held), not an error.
  out.gone = await softDeleteMessages(trx, accountId, prepared.gone, null, opts.feed);
  const unfinished = new Set([...prepared.failed, ...prepared.incomplete].map((f) => f.id));
  const settled = [...prepared.records.map((m) => m.gmailId), ...prepared.gone, ...(opts.alsoResolved ?? [])];
  const resolved = settled.filter((id) => !unfinished.has(id));
  await resolveDeadLetters(trx, accountId, resolved);
  for (const f of [...prepared.failed, ...prepared.incomplete]) {
    const failure = { reason: f.reason, detail: f.detail, permanent: f.kind === "permanent" };
    const r = await recordMessageFailure(trx, accountId, f.id, failure);
    if (r.parked) out.parked++;
    else {
      out.retrying++;
      if (out.nextRetryAt === null || r.nextAttemptAt < out.nextRetryAt) out.nextRetryAt = r.nextAttemptAt;
    }
  }
  return out;
}

/**
 * Whether a caller's changes are `historic` in the feed: a backfill run (first backfill, resync,
 * reconcile) reports the mailbox as it already was; history (push, poll) and the retry ledger's
 * late deliveries report live changes.
 */
const HISTORIC = { backfill: true, incremental: false, retry: false } as const;

/**
 * The transaction a caller stores in: `fn` gets the feed to pass to storePrepared and the other
 * message writes (undefined with CHANGE_FEED=false), and its changes are appended when `fn` is done.
 */
export function storeTransaction<T>(
  deps: { db: Db; config: Pick<Config, "CHANGE_FEED"> },
  accountId: number,
  caller: keyof typeof HISTORIC,
  fn: (trx: Transaction<Database>, feed: ChangeSink | undefined) => Promise<T>,
): Promise<T> {
  const feed = deps.config.CHANGE_FEED ? changeBuffer(accountId, HISTORIC[caller]) : undefined;
  return transactionWithChanges(deps.db, feed, (trx) => fn(trx, feed));
}

/** The metric labels each caller's stores are counted under. */
const LABELS = {
  backfill: { direction: "backfill", parkedReason: "backfill_fetch" },
  incremental: { direction: "incremental", parkedReason: "incremental_fetch" },
  retry: { direction: "retry", parkedReason: "retry" },
} as const;

/** Counts a store in the metrics: only once its transaction committed (a rolled-back one stored nothing). */
export function countStored(caller: keyof typeof LABELS, s: Pick<StoreOutcome, "stored" | "parked">): void {
  const { direction, parkedReason } = LABELS[caller];
  if (s.stored > 0) syncMessagesTotal.inc({ direction }, s.stored);
  if (s.parked > 0) deadLettersTotal.inc({ reason: parkedReason }, s.parked);
}
