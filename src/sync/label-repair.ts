// The label half of a history-expired resync. The resync's listing fetches only what we do not hold
// (src/sync/page-slices.ts), but labels changed while the history was lost have no record left to
// replay. threads.list gives each thread's historyId (the last record that changed it): a thread
// newer than the newest history id we hold for its messages changed, and only those threads are
// read again, in format minimal (labels and historyId, no content). Cost: 10 units per 500 threads
// listed plus 10 per changed thread — where re-fetching the mailbox cost 5–10 units per message.
// One threads.list page per job; the page token waits in a Redis key of the account (deleted at the
// end; lost with Redis, the repair stops there and the labels stay as the resync left them).
import { isGmailError } from "../errors.ts";
import { getSyncState } from "../db/sync-state.ts";
import { setLabelsAt, threadHistoryMax } from "../db/thread-labels.ts";
import { storeTransaction } from "./store-prepared.ts";
import { enqueueLabelRepair, type LabelRepairJob } from "../jobs.ts";
import { activeAccountPort, type SyncDeps, type SyncSkip } from "./deps.ts";
import { withSyncLock } from "./lock.ts";
import { backfillPriority } from "./page-slices.ts";
import { runScope } from "./run-scope.ts";

const THREADS_PAGE = 500;
const THREADS_PER_CALL = 50;
const KEY_TTL_SECONDS = 7 * 86400;

export type LabelRepairResult = SyncSkip | { threads: number; changed: number; relabelled: number; done: boolean };

function repairKey(prefix: string, accountId: number): string {
  return `${prefix}:label-repair:${accountId}`;
}

/** Starts the account's label repair from the first threads.list page. */
export async function startLabelRepair(deps: SyncDeps, accountId: number, priority: number): Promise<void> {
  await deps.redis.set(
    repairKey(deps.queues.prefix, accountId),
    JSON.stringify({ token: null }),
    "EX",
    KEY_TTL_SECONDS,
  );
  await enqueueLabelRepair(deps.queues, accountId, { priority });
}

export async function runLabelRepairPage(deps: SyncDeps, job: LabelRepairJob): Promise<LabelRepairResult> {
  const { db, redis } = deps;
  const { accountId } = job;
  return withSyncLock(db, "backfill", accountId, async () => {
    const key = repairKey(deps.queues.prefix, accountId);
    const raw = await redis.get(key);
    if (raw === null) return { skipped: "nothing_to_resume" };
    const port = await activeAccountPort(deps, accountId);
    if ("skipped" in port) return port;
    const state = await getSyncState(db, accountId);
    if (state === undefined) return { skipped: "no_account" };
    const { token } = JSON.parse(raw) as { token: string | null };
    const scope = runScope(deps.config, state);
    const page = await port.gmail.listThreads({
      ...(token !== null ? { pageToken: token } : {}),
      ...(scope.query !== null ? { q: scope.query } : {}),
      ...(scope.labelIds.length > 0 ? { labelIds: scope.labelIds } : {}),
      includeSpamTrash: scope.includeSpamTrash,
      maxResults: THREADS_PAGE,
    });
    const held = await threadHistoryMax(
      db,
      accountId,
      page.threads.map((t) => t.id),
    );
    const changed = page.threads.filter((t) => {
      if (!held.has(t.id)) return false; // none held: new mail, which the listing fetched
      const newest = held.get(t.id);
      return newest === null || newest === undefined || BigInt(t.historyId) > BigInt(newest);
    });
    let relabelled = 0;
    for (let i = 0; i < changed.length; i += THREADS_PER_CALL) {
      const fetched = await port.gmail.getThreadLabels(changed.slice(i, i + THREADS_PER_CALL).map((t) => t.id));
      const rows = fetched.flatMap((f) =>
        (f.messages ?? [])
          .filter((m) => m.id && m.historyId && /^\d{1,20}$/.test(m.historyId))
          .map((m) => ({ gmailId: m.id as string, labelIds: m.labelIds ?? [], historyId: m.historyId as string })),
      );
      // A thread that failed (gone since listed, retries used up) keeps its labels: best effort.
      // In a store transaction so that every label it changes reaches the change feed (historic).
      relabelled += await storeTransaction(deps, accountId, "backfill", (trx, feed) =>
        setLabelsAt(trx, accountId, rows, feed),
      );
      // Rate limited (or revoked) part-way: what was fetched is stored above; the job is parked and
      // lists this page again, where the threads just repaired no longer look changed.
      const stop = fetched.find((f) => isGmailError(f.error, "rate_limited") || isGmailError(f.error, "auth_revoked"));
      if (stop?.error !== undefined) throw stop.error;
    }
    const done = page.nextPageToken === undefined;
    if (done) await redis.del(key);
    else {
      await redis.set(key, JSON.stringify({ token: page.nextPageToken }), "EX", KEY_TTL_SECONDS);
      await enqueueLabelRepair(deps.queues, accountId, { priority: backfillPriority(state.backfill_pages) });
    }
    if (relabelled > 0 || done)
      deps.log.info(
        { accountId, threads: page.threads.length, changed: changed.length, relabelled, done },
        "label repair page",
      );
    return { threads: page.threads.length, changed: changed.length, relabelled, done };
  });
}
