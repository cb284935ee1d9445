// Starting a backfill/resync run (pin first, then list) and the reconciling sweep at its end.
// A run that re-lists a mailbox we already hold (history expired, reconcile, manual) records every
// listed id in a Redis set keyed by the run; when — and only when — the listing completed, stored
// messages that were neither listed nor written since the run began are soft-deleted: they were
// deleted in Gmail while we could not see the history (msgvault PR #697's rule).
import type { Redis } from "ioredis";
import type { Transaction } from "kysely";
import type { ChangeSink } from "../db/changes.ts";
import type { Database } from "../db/database.ts";
import { liveIdsUntouchedSince, softDeleteMessages } from "../db/messages.ts";
import { beginRun, ensureSyncState, getSyncState, getSyncStateForUpdate, type SyncState } from "../db/sync-state.ts";
import type { GmailPort } from "../gmail/port.ts";
import type { BackfillJob } from "../jobs.ts";
import { fullResyncsTotal, messageChangesTotal } from "../metrics.ts";
import type { SyncDeps } from "./deps.ts";
import { type RunScope, runScope, scopeForNewRun, scopeMaySweep } from "./run-scope.ts";

const SEEN_TTL_SECONDS = 14 * 86400;

export function seenKey(prefix: string, accountId: number, runStartedAt: Date): string {
  return `${prefix}:seen:${accountId}:${runStartedAt.getTime()}`;
}

/**
 * Pins getProfile's historyId (before any list page) and resets the checkpoint. `history_expired`
 * also resets the cursor to the fresh pin so incremental sync resumes at once from there. Pins the
 * listing scope too: `scope` as given (a run restarted from page one keeps its own), else the
 * configuration's with `query` (null: BACKFILL_QUERY) — and whether the run may sweep at its end.
 */
export async function startRun(
  deps: SyncDeps,
  gmail: GmailPort,
  accountId: number,
  opts: { reason: BackfillJob["reason"]; query: string | null; scope?: RunScope },
): Promise<Date> {
  const scope = opts.scope ?? scopeForNewRun(deps.config, opts.query);
  const profile = await gmail.getProfile();
  await ensureSyncState(deps.db, accountId);
  return deps.db.transaction().execute(async (trx) => {
    const state = await getSyncStateForUpdate(trx, accountId);
    // A first backfill (no cursor yet) is not a resync, whatever asked for it.
    const resyncReason =
      opts.reason === "connect" || state?.history_id === null || state?.history_id === undefined ? null : opts.reason;
    const started = await beginRun(trx, accountId, {
      pinnedHistoryId: profile.historyId,
      estimate: profile.messagesTotal,
      scope,
      maySweep: scopeMaySweep(scope, resyncReason),
      resyncReason,
      resetCursor: opts.reason === "history_expired",
    });
    if (resyncReason !== null) fullResyncsTotal.inc({ reason: resyncReason });
    deps.log.info(
      {
        accountId,
        reason: opts.reason,
        resync: resyncReason,
        pinnedHistoryId: profile.historyId,
        estimate: profile.messagesTotal,
        scope,
      },
      "backfill run started",
    );
    return started;
  });
}

/** Whether a run's listing covers the whole stored mailbox, so absence may mean deletion (pinned at its start). */
export function runMaySweep(
  deps: SyncDeps,
  state: Pick<
    SyncState,
    "resync_reason" | "backfill_may_sweep" | "backfill_query" | "backfill_label_ids" | "backfill_include_spam_trash"
  >,
): boolean {
  return state.backfill_may_sweep ?? scopeMaySweep(runScope(deps.config, state), state.resync_reason);
}

export async function recordSeen(redis: Redis, key: string, ids: string[]): Promise<void> {
  if (ids.length === 0) return;
  await redis
    .multi()
    .sadd(key, ...ids)
    .expire(key, SEEN_TTL_SECONDS)
    .exec();
}

/** Inside the transaction that completes the listing: soft-delete stored messages not seen. */
export async function sweepUnseen(
  trx: Transaction<Database>,
  deps: SyncDeps,
  accountId: number,
  key: string,
  runStartedAt: Date,
  feed?: ChangeSink,
): Promise<number> {
  // Spam and trash are not listed unless the run's scope included them; their rows are not
  // evidence of deletion. The row is the one the caller's checkpoint just completed: this run's.
  const state = await getSyncState(trx, accountId);
  const includeSpamTrash =
    state === undefined ? deps.config.INCLUDE_SPAM_TRASH : runScope(deps.config, state).includeSpamTrash;
  const exclude = includeSpamTrash ? [] : ["SPAM", "TRASH"];
  const candidates = await liveIdsUntouchedSince(trx, accountId, runStartedAt, exclude);
  const unseen: string[] = [];
  for (let i = 0; i < candidates.length; i += 1000) {
    const chunk = candidates.slice(i, i + 1000);
    const member = await deps.redis.smismember(key, ...chunk);
    chunk.forEach((id, j) => {
      if (member[j] !== 1) unseen.push(id);
    });
  }
  let deleted = 0;
  for (let i = 0; i < unseen.length; i += 1000)
    deleted += await softDeleteMessages(trx, accountId, unseen.slice(i, i + 1000), null, feed);
  if (deleted > 0) messageChangesTotal.inc({ kind: "deleted" }, deleted);
  deps.log.info(
    { accountId, checked: candidates.length, deleted },
    "resync sweep: soft-deleted messages absent from the complete listing",
  );
  return deleted;
}
