// One backfill page per job: list the next page from the checkpoint, fetch what is not already
// current, store it and checkpoint the page token and counts in the SAME transaction, then enqueue
// the next page (so a 200,000-message mailbox takes turns with every other account) or, after the
// last page, an incremental sync from the pinned cursor. A crash or SIGKILL resumes at the last
// committed page; a run restarted meanwhile (expired cursor) turns this page's checkpoint into a
// no-op through the run-start compare-and-set.
import { storedCurrentIds } from "../db/messages.ts";
import { checkpointPage, ensureSyncState, getSyncState } from "../db/sync-state.ts";
import { isGmailError } from "../errors.ts";
import { type BackfillJob, enqueueBackfill, enqueueIncremental } from "../jobs.ts";
import type { GmailMessage } from "../gmail/port.ts";
import { activeAccountPort, type SyncDeps, type SyncSkip } from "./deps.ts";
import { fetchMessages, type ThreadPlan } from "./fetch-messages.ts";
import { withSyncLock } from "./lock.ts";
import { assertPlausibleGone, recheckMissing } from "./not-found.ts";
import { recordSeen, runMaySweep, seenKey, startRun, sweepUnseen } from "./resync.ts";
import { scheduleRetry } from "./retry-messages.ts";
import { isScoped, runScope } from "./run-scope.ts";
import { countStored, storePrepared } from "./store-prepared.ts";

export const BACKFILL_PAGE_SIZE = 500;

export type BackfillPageResult =
  | SyncSkip
  | {
      page: number;
      listed: number;
      fetched: number;
      stored: number;
      done: boolean;
      swept: number;
      superseded?: boolean;
    };

export async function runBackfillPage(deps: SyncDeps, job: BackfillJob): Promise<BackfillPageResult> {
  const { db, log } = deps;
  const accountId = job.accountId;
  return withSyncLock(db, "backfill", accountId, async () => {
    const port = await activeAccountPort(deps, accountId);
    if ("skipped" in port) return port;
    const { gmail } = port;
    await ensureSyncState(db, accountId);
    let state = await getSyncState(db, accountId);
    if (state?.backfill_phase !== "listing" || job.restart === true) {
      if (job.resumeOnly && job.restart !== true) return { skipped: "nothing_to_resume" };
      await startRun(deps, gmail, accountId, { reason: job.reason, query: job.query ?? null });
      state = await getSyncState(db, accountId);
    }
    if (state === undefined || state.backfill_started_at === null)
      throw new Error(`sync_state of account ${accountId} vanished`);
    const runStartedAt = state.backfill_started_at;
    const sweep = runMaySweep(deps, state);
    const key = seenKey(deps.queues.prefix, accountId, runStartedAt);

    // The scope pinned when the run started: a configuration change mid-run does not reach it.
    const scope = runScope(deps.config, state);
    let page;
    try {
      page = await gmail.listMessages({
        ...(state.backfill_page_token !== null ? { pageToken: state.backfill_page_token } : {}),
        ...(scope.query !== null ? { q: scope.query } : {}),
        ...(scope.labelIds.length > 0 ? { labelIds: scope.labelIds } : {}),
        includeSpamTrash: scope.includeSpamTrash,
        maxResults: BACKFILL_PAGE_SIZE,
      });
    } catch (err) {
      // A stored page token Gmail no longer accepts (aged out, or the scope changed under it) is
      // a 400 for ever: retrying it would wedge the backfill. Start the run again from page one
      // (pinned afresh, in the same scope; rows already stored are current and not fetched again).
      if (!(state.backfill_page_token !== null && isGmailError(err, "permanent") && err.status === 400)) throw err;
      log.warn(
        { accountId, err: err.message.slice(0, 200) },
        "backfill page token rejected: restarting the run from the first page",
      );
      await startRun(deps, gmail, accountId, {
        reason: job.reason === "connect" ? "manual" : job.reason,
        query: scope.query,
        scope,
      });
      await enqueueBackfill(deps.queues, accountId, { reason: job.reason, resumeOnly: true });
      return { skipped: "run_restarted" };
    }
    const ids = page.messages.map((m) => m.id);
    const listedHere = new Set(ids);
    // Rows written since this run began (by an earlier attempt of this page, or by the incremental
    // sync running alongside) are current: no need to spend quota on them again.
    const current = await storedCurrentIds(db, accountId, ids, { since: runStartedAt });
    const toFetch = ids.filter((id) => !current.has(id));
    const scoped = isScoped(scope);
    const plan: ThreadPlan | undefined = deps.config.BACKFILL_FETCH_THREADS
      ? {
          threadOf: new Map(page.messages.map((m) => [m.id, m.threadId])),
          // Unscoped, a thread's other messages are in the listing too (bar spam and trash when
          // those are left out): storing them now saves their own page the quota. A q or label
          // scope cannot be judged from a message, so a scoped run stores only what it listed.
          ...(scoped
            ? {}
            : {
                pickExtras: (messages: GmailMessage[]) =>
                  pickUnstored(deps, accountId, runStartedAt, scope.includeSpamTrash, messages),
              }),
        }
      : undefined;
    const prepared = await fetchMessages({ gmail, pipeline: deps.pipeline }, toFetch, plan);
    // A listed message that answers 404 may be one Gmail has just announced: ask again before
    // taking it as deleted since it was listed (nothing else would bring it back).
    await recheckMissing({ gmail, pipeline: deps.pipeline }, prepared, () => true);
    assertPlausibleGone(prepared, toFetch.length);
    // Before the commit: a crash after it must not lose ids the sweep relies on (SADD is idempotent).
    if (sweep) await recordSeen(deps.redis, key, ids);

    const nextPageToken = page.nextPageToken ?? null;
    let parked = 0;
    let retryAt: Date | null = null;
    let swept = 0;
    let stored = 0;
    let checkpointed = false;
    await db.transaction().execute(async (trx) => {
      // Gone since it was listed: soft-deleted if held (history will say so too).
      // Failures go to the retry ledger in this transaction, so the checkpoint may pass them.
      ({ stored, parked, nextRetryAt: retryAt } = await storePrepared(trx, accountId, prepared));
      // Interrupted (rate limit, revoked auth): keep what was stored; the page is listed again.
      if (prepared.abort !== undefined) return;
      checkpointed = await checkpointPage(trx, accountId, runStartedAt, {
        nextPageToken,
        listed: ids.length,
        // This page's listed messages now held; thread members stored ahead of their own page
        // are counted there (as current), not here.
        stored: prepared.records.filter((r) => listedHere.has(r.gmailId)).length + current.size,
      });
      if (checkpointed && nextPageToken === null && sweep)
        swept = await sweepUnseen(trx, deps, accountId, key, runStartedAt);
    });
    countStored("backfill", { stored, parked });
    if (retryAt !== null) await scheduleRetry(deps, accountId, retryAt);
    if (prepared.abort !== undefined) throw prepared.abort;
    const result = {
      page: state.backfill_pages + 1,
      listed: ids.length,
      fetched: toFetch.length,
      stored,
      done: nextPageToken === null,
      swept,
    };
    if (!checkpointed) {
      log.info({ accountId }, "backfill page superseded by a restarted run; its rows are kept, its checkpoint dropped");
      return { ...result, superseded: true };
    }
    if (nextPageToken !== null) {
      await enqueueBackfill(deps.queues, accountId, { reason: job.reason, resumeOnly: true });
    } else {
      if (sweep) await deps.redis.del(key);
      log.info({ accountId, pages: state.backfill_pages + 1, swept }, "backfill run complete");
      await enqueueIncremental(deps.queues, accountId, { reason: "after_backfill" });
    }
    return result;
  });
}

/** Thread members in an unscoped listing's reach (`includeSpamTrash`: the run's) that this run has not stored yet. */
async function pickUnstored(
  deps: SyncDeps,
  accountId: number,
  runStartedAt: Date,
  includeSpamTrash: boolean,
  messages: GmailMessage[],
): Promise<GmailMessage[]> {
  const listable = messages.filter(
    (m) => includeSpamTrash || !(m.labelIds ?? []).some((l) => l === "SPAM" || l === "TRASH"),
  );
  const current = await storedCurrentIds(
    deps.db,
    accountId,
    listable.map((m) => m.id ?? ""),
    { since: runStartedAt },
  );
  return listable.filter((m) => !current.has(m.id ?? ""));
}
