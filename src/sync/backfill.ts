// One slice of a backfill page per job (src/sync/page-slices.ts): list the next page from the
// checkpoint (or take up the page in progress), fetch a slice of what is not already current, store
// it — and, with the page's last slice, checkpoint the page token and counts in the SAME
// transaction — then enqueue the next turn (so a 200,000-message mailbox takes turns with every
// other account) or, after the last page, an incremental sync from the pinned cursor. A crash or SIGKILL resumes at the last
// committed page; a run restarted meanwhile (expired cursor) turns this page's checkpoint into a
// no-op through the run-start compare-and-set.
import { checkpointPage, ensureSyncState, getSyncState } from "../db/sync-state.ts";
import { isGmailError } from "../errors.ts";
import { runInQuotaClass } from "../gmail/quota-class.ts";
import { type BackfillJob, enqueueBackfill, enqueueIncremental } from "../jobs.ts";
import type { GmailMessage } from "../gmail/port.ts";
import { activeAccountPort, type SyncDeps, type SyncSkip } from "./deps.ts";
import { fairTurnSize, WHOLE_THREAD_TURN } from "./fair-share.ts";
import { fetchMessages, type ThreadPlan } from "./fetch-messages.ts";
import { withSyncLock } from "./lock.ts";
import {
  backfillPriority,
  currentIds,
  groupByThread,
  loadSlices,
  saveSlices,
  sliceKey,
  takeSlice,
} from "./page-slices.ts";
import { startLabelRepair } from "./label-repair.ts";
import { assertPlausibleGone, recheckMissing } from "./not-found.ts";
import { recordSeen, runMaySweep, seenKey, startRun, sweepUnseen } from "./resync.ts";
import { scheduleRetry } from "./retry-messages.ts";
import { isScoped, runScope } from "./run-scope.ts";
import { countStored, storePrepared, storeTransaction } from "./store-prepared.ts";

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
    // Read first: a turn of a running backfill (most of them) has its row, and needs no write to learn so.
    let state = await getSyncState(db, accountId);
    if (state === undefined) {
      await ensureSyncState(db, accountId);
      state = await getSyncState(db, accountId);
    }
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
    // The page being fetched slice by slice (src/sync/page-slices.ts), else a fresh listing.
    const slicesKey = sliceKey(deps.queues.prefix, accountId);
    let pageState = await loadSlices(deps.redis, slicesKey, runStartedAt, state.backfill_page_token);
    const fresh = pageState === undefined;
    // A newly connected account's first turn: its owner waits to see mail. Its quota comes before
    // every other backfill's (src/gmail/quota-class.ts); one small slice per account.
    const firstTurn = fresh && state.backfill_pages === 0 && state.resync_reason === null;
    const inClass = <T>(fn: () => Promise<T>): Promise<T> => (firstTurn ? runInQuotaClass("first", fn) : fn());
    if (pageState === undefined) {
      let page;
      try {
        page = await inClass(() =>
          gmail.listMessages({
            ...(state.backfill_page_token !== null ? { pageToken: state.backfill_page_token } : {}),
            ...(scope.query !== null ? { q: scope.query } : {}),
            ...(scope.labelIds.length > 0 ? { labelIds: scope.labelIds } : {}),
            includeSpamTrash: scope.includeSpamTrash,
            maxResults: BACKFILL_PAGE_SIZE,
          }),
        );
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
      // Before any commit: a crash after it must not lose ids the sweep relies on (SADD is idempotent).
      if (sweep) await recordSeen(deps.redis, key, ids);
      const held = await currentIds(db, accountId, ids, state, runStartedAt);
      pageState = {
        run: runStartedAt.getTime(),
        token: state.backfill_page_token,
        next: page.nextPageToken ?? null,
        listed: ids.length,
        held: held.size,
        refs: groupByThread(page.messages, held),
      };
    }
    // The run's very first slice is small, so that a new account shows mail within seconds; every
    // turn shrinks when so many accounts take turns that a round would outlast BACKFILL_ROUND_SECONDS.
    const turn = await fairTurnSize(deps.db, deps.config, fresh && state.backfill_pages === 0);
    // A turn too small for whole threads fetches exactly its share, message by message: thread groups
    // (2.9 messages on average, up to dozens) would make equal turns unequal (fair-share.ts).
    const wholeThreads = turn >= WHOLE_THREAD_TURN;
    let { slice, rest } = takeSlice(pageState.refs, turn, { wholeThreads });
    if (!fresh && slice.length > 0) {
      // Stored since the page was listed (thread members of a slice, the incremental sync): nothing
      // to fetch. Only the slice about to be fetched is checked — checking the page's whole
      // remainder every turn made a page of one-message turns (a large fleet) cost 500 × 250 id
      // look-ups. When the slice holds some, the rest of the page likely does too (one check of it).
      const heldInSlice = await currentIds(
        db,
        accountId,
        slice.map((r) => r[0]),
        state,
        runStartedAt,
      );
      if (heldInSlice.size > 0) {
        const held = await currentIds(
          db,
          accountId,
          pageState.refs.map((r) => r[0]),
          state,
          runStartedAt,
        );
        pageState.held += held.size;
        pageState.refs = pageState.refs.filter((r) => !held.has(r[0]));
        ({ slice, rest } = takeSlice(pageState.refs, turn, { wholeThreads }));
      }
    }
    const toFetch = slice.map((r) => r[0]);
    const listedHere = new Set(pageState.refs.map((r) => r[0]));
    const scoped = isScoped(scope);
    const plan: ThreadPlan | undefined =
      deps.config.BACKFILL_FETCH_THREADS && wholeThreads
        ? {
            threadOf: new Map(slice),
            // Unscoped, a thread's other messages are in the listing too (bar spam and trash when
            // those are left out): storing them now saves their own page the quota. A q or label
            // scope cannot be judged from a message, so a scoped run stores only what it listed.
            ...(scoped
              ? {}
              : {
                  pickExtras: (messages: GmailMessage[]) =>
                    pickUnstored(deps, accountId, state, runStartedAt, scope.includeSpamTrash, messages),
                }),
          }
        : undefined;
    const prepared = await inClass(() => fetchMessages({ gmail, pipeline: deps.pipeline }, toFetch, plan));
    // A listed message that answers 404 may be one Gmail has just announced: ask again before
    // taking it as deleted since it was listed (nothing else would bring it back).
    await inClass(() => recheckMissing({ gmail, pipeline: deps.pipeline }, prepared, () => true));
    assertPlausibleGone(prepared, toFetch.length);

    const nextPageToken = pageState.next;
    const pageDone = rest.length === 0;
    let parked = 0;
    let retryAt: Date | null = null;
    let swept = 0;
    let stored = 0;
    let checkpointed = false;
    // This page's listed messages now held; thread members stored ahead of their own page are
    // counted there (as current), not here.
    const heldNow = pageState.held + prepared.records.filter((r) => listedHere.has(r.gmailId)).length;
    await storeTransaction(deps, accountId, "backfill", async (trx, feed) => {
      // Gone since it was listed: soft-deleted if held (history will say so too).
      // Failures go to the retry ledger in this transaction, so the checkpoint may pass them.
      ({ stored, parked, nextRetryAt: retryAt } = await storePrepared(trx, accountId, prepared, { feed }));
      // Interrupted (rate limit, revoked auth): keep what was stored; the slice is fetched again.
      if (prepared.abort !== undefined || !pageDone) return;
      checkpointed = await checkpointPage(trx, accountId, runStartedAt, {
        nextPageToken,
        listed: pageState.listed,
        stored: heldNow,
      });
      if (checkpointed && nextPageToken === null && sweep)
        swept = await sweepUnseen(trx, deps, accountId, key, runStartedAt, feed);
    });
    countStored("backfill", { stored, parked });
    if (retryAt !== null) await scheduleRetry(deps, accountId, retryAt);
    if (prepared.abort !== undefined) {
      // What this slice stored is current now: the retry fetches only the rest.
      await saveSlices(deps.redis, slicesKey, pageState);
      throw prepared.abort;
    }
    const result = {
      page: state.backfill_pages + 1,
      // Listed by this turn (a later slice of the page lists nothing).
      listed: fresh ? pageState.listed : 0,
      fetched: toFetch.length,
      stored,
      done: pageDone && nextPageToken === null,
      swept,
    };
    // Every account with a backfill takes turns: least-served pages first (src/sync/page-slices.ts).
    const next = { reason: job.reason, resumeOnly: true, priority: backfillPriority(state.backfill_pages + 1) };
    if (!pageDone) {
      // Thread members of later slices stored with this one are held now (and counted in heldNow).
      const storedNow = new Set(prepared.records.map((r) => r.gmailId));
      const refs = rest.filter((r) => !storedNow.has(r[0]));
      await saveSlices(deps.redis, slicesKey, { ...pageState, held: heldNow, refs });
      await enqueueBackfill(deps.queues, accountId, next);
      return result;
    }
    await deps.redis.del(slicesKey);
    if (!checkpointed) {
      log.info({ accountId }, "backfill page superseded by a restarted run; its rows are kept, its checkpoint dropped");
      return { ...result, superseded: true };
    }
    if (nextPageToken !== null) {
      await enqueueBackfill(deps.queues, accountId, next);
    } else {
      if (sweep) await deps.redis.del(key);
      log.info({ accountId, pages: state.backfill_pages + 1, swept }, "backfill run complete");
      await enqueueIncremental(deps.queues, accountId, { reason: "after_backfill" });
      // Labels changed while the history was lost: the listing fetched only what we lacked.
      if (state.resync_reason === "history_expired") await startLabelRepair(deps, accountId, next.priority);
    }
    return result;
  });
}

/** Thread members in an unscoped listing's reach (`includeSpamTrash`: the run's) that this run need not skip. */
async function pickUnstored(
  deps: SyncDeps,
  accountId: number,
  state: Parameters<typeof currentIds>[3],
  runStartedAt: Date,
  includeSpamTrash: boolean,
  messages: GmailMessage[],
): Promise<GmailMessage[]> {
  const listable = messages.filter(
    (m) => includeSpamTrash || !(m.labelIds ?? []).some((l) => l === "SPAM" || l === "TRASH"),
  );
  const current = await currentIds(
    deps.db,
    accountId,
    listable.map((m) => m.id ?? ""),
    state,
    runStartedAt,
  );
  return listable.filter((m) => !current.has(m.id ?? ""));
}
