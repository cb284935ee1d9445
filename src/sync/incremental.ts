// Incremental sync: every history.list page from the stored cursor, netted (an id added and
// deleted in the window is never fetched), added messages fetched and stored, deleted ones
// soft-deleted, label changes applied — and the cursor moved forward in the same transaction, never
// past a message that failed retryably and is not yet parked as a dead letter. An expired cursor
// (404) starts the reconciling resync instead of skipping ahead.
import { GmailError, isGmailError } from "../errors.ts";
import { applyLabelChanges, deletedBefore, knownIds, recordDeletion, softDeleteMessages, storedCurrentIds } from "../db/messages.ts";
import { advanceCursor, getSyncState } from "../db/sync-state.ts";
import type { GmailHistory, GmailPort } from "../gmail/port.ts";
import { enqueueBackfill, type IncrementalJob, pushTimeKey } from "../jobs.ts";
import { deadLettersTotal, messageChangesTotal, pushToCommitSeconds, syncErrorsTotal, syncMessagesTotal } from "../metrics.ts";
import { RetryableMessagesError } from "./backfill.ts";
import { activeAccountPort, type SyncDeps, type SyncSkip } from "./deps.ts";
import { withSyncLock } from "./lock.ts";
import { startRun } from "./resync.ts";
import { commitPrepared } from "./commit-prepared.ts";
import { assertPlausibleGone, fetchAndPrepare, type PreparedBatch, recheckMissing } from "./store-message.ts";

const HISTORY_TYPES = ["messageAdded", "messageDeleted", "labelAdded", "labelRemoved"] as const;

export type IncrementalResult =
  | SyncSkip
  | { resync: "history_expired" }
  | { records: number; added: number; deleted: number; labelChanges: number; stored: number; cursor: string; advanced: boolean };

interface NetChanges {
  /** id → history id of the record that added it (still present at the end of the window). */
  added: Map<string, string>;
  /** id → history id of the record that deleted it. */
  deleted: Map<string, string>;
  /** Thread of every message named in the window (tombstones need it). */
  threadOf: Map<string, string>;
  labels: Array<{ gmailId: string; historyId: string; added: string[]; removed: string[] }>;
  /** id → its labels after the newest entry of the window that names it (Gmail's message.labelIds). */
  lastLabels: Map<string, string[]>;
  maxRecordId: bigint;
}

/** Nets a window of history records (chronological). Pure. */
export function netHistory(records: GmailHistory[]): NetChanges {
  const sorted = [...records].sort((a, b) => (BigInt(a.id ?? "0") < BigInt(b.id ?? "0") ? -1 : 1));
  const net: NetChanges = { added: new Map(), deleted: new Map(), threadOf: new Map(), labels: [], lastLabels: new Map(), maxRecordId: 0n };
  for (const rec of sorted) {
    const hid = rec.id ?? "0";
    if (BigInt(hid) > net.maxRecordId) net.maxRecordId = BigInt(hid);
    for (const e of [...(rec.messagesAdded ?? []), ...(rec.labelsAdded ?? []), ...(rec.labelsRemoved ?? [])]) {
      const id = e.message?.id;
      if (id && Array.isArray(e.message?.labelIds)) net.lastLabels.set(id, e.message.labelIds.filter((l): l is string => typeof l === "string"));
    }
    for (const a of rec.messagesAdded ?? []) {
      const id = a.message?.id;
      if (id) {
        net.added.set(id, hid);
        net.deleted.delete(id);
      }
    }
    for (const d of rec.messagesDeleted ?? []) {
      const id = d.message?.id;
      if (id && d.message?.threadId) net.threadOf.set(id, d.message.threadId);
      if (id) {
        net.added.delete(id);
        net.deleted.set(id, hid);
      }
    }
    // One change per message per record: a record may hold labelsAdded and labelsRemoved for the
    // same message ("Move to", a thread operation — gmail-real-samples/history_list_thread_ops.json),
    // and both must apply under the one history id (the row's history_id guard would skip a second).
    const byMessage = new Map<string, { gmailId: string; historyId: string; added: string[]; removed: string[] }>();
    const changeOf = (id: string) => {
      let c = byMessage.get(id);
      if (!c) byMessage.set(id, (c = { gmailId: id, historyId: hid, added: [], removed: [] }));
      return c;
    };
    for (const l of rec.labelsAdded ?? []) {
      const id = l.message?.id;
      if (id) changeOf(id).added.push(...(l.labelIds ?? []));
    }
    for (const l of rec.labelsRemoved ?? []) {
      const id = l.message?.id;
      if (id) changeOf(id).removed.push(...(l.labelIds ?? []));
    }
    net.labels.push(...byMessage.values());
  }
  // A deleted message needs none of its label records. Added ones keep theirs: when the stored row
  // was already current (not re-fetched) they may still be newer; the history_id guard skips the
  // records a fresh fetch already reflects.
  net.labels = net.labels.filter((l) => !net.deleted.has(l.gmailId));
  return net;
}

export async function runIncremental(deps: SyncDeps, job: IncrementalJob): Promise<IncrementalResult> {
  const { db, log } = deps;
  const accountId = job.accountId;
  return withSyncLock(db, "incremental", accountId, async () => {
    // Taken at the start: a push arriving during this run sets it again for the follow-up run.
    const pushedAt = await deps.redis.getdel(pushTimeKey(deps.queues.prefix, accountId));
    const pushReceivedAt = [job.pushReceivedAt, pushedAt === null ? undefined : Number(pushedAt)]
      .filter((v): v is number => typeof v === "number" && Number.isFinite(v))
      .reduce<number | undefined>((a, b) => (a === undefined ? b : Math.min(a, b)), undefined);

    const state = await getSyncState(db, accountId);
    if (state === undefined || state.history_id === null) return { skipped: "no_cursor" };
    // Safety net for a backfill whose job chain broke (failed after its retries, stalled too often):
    // every sync nudges it. De-duplication makes this a no-op while its next page is queued.
    if (state.backfill_phase === "listing") await enqueueBackfill(deps.queues, accountId, { reason: "manual", resumeOnly: true });
    const port = await activeAccountPort(deps, accountId);
    if ("skipped" in port) return port;
    const { gmail } = port;
    const start = state.history_id;

    const records: GmailHistory[] = [];
    let firstPageHistoryId: string | undefined;
    try {
      let pageToken: string | undefined;
      const tokens = new Set<string>();
      let emptyRun = 0;
      do {
        const page = await gmail.listHistory({ startHistoryId: start, historyTypes: [...HISTORY_TYPES], maxResults: 500, ...(pageToken ? { pageToken } : {}) });
        firstPageHistoryId ??= page.historyId;
        records.push(...page.history);
        pageToken = page.nextPageToken;
        // A paging loop (a token given twice) or an endless run of empty pages would keep this
        // job listing for ever: stop it as a transient failure, cursor unmoved, and say why.
        emptyRun = page.history.length === 0 ? emptyRun + 1 : 0;
        if (pageToken !== undefined && (tokens.has(pageToken) || emptyRun >= MAX_EMPTY_HISTORY_PAGES)) {
          throw new GmailError("transient", tokens.has(pageToken) ? "history.list gave the same nextPageToken twice" : `history.list gave ${emptyRun} empty pages in a row`, { reason: "historyPaging" });
        }
        if (pageToken !== undefined) tokens.add(pageToken);
      } while (pageToken);
    } catch (err) {
      if (!isGmailError(err, "history_expired")) throw err;
      syncErrorsTotal.inc({ error_type: "history_expired" });
      log.warn({ accountId, startHistoryId: start }, "history cursor expired: starting a reconciling resync");
      await startRun(deps, gmail, accountId, { reason: "history_expired", query: null });
      await enqueueBackfill(deps.queues, accountId, { reason: "history_expired" });
      return { resync: "history_expired" };
    }

    // Every record up to the newest one seen and up to the first page's mailbox id was listed.
    const first = BigInt(firstPageHistoryId ?? start);
    const slices = sliceWindow(records, SLICE_ADDS);
    // Deleted anywhere in the window: a 404 for such a message is its deletion, even when the
    // deleting record falls in a later slice than the adding one.
    const deletedInWindow = new Set(records.flatMap((r) => (r.messagesDeleted ?? []).map((d) => d.message?.id ?? "")));
    const totals = { added: 0, deleted: 0, labelChanges: 0, stored: 0 };
    let cursor = start;
    let advanced = false;
    for (const [i, slice] of slices.entries()) {
      const net = netHistory(slice);
      // A slice's cursor is its newest record: every older record has been applied by then. The
      // last slice also covers the quiet stretch up to the mailbox id of the first page.
      const sliceCursor = i === slices.length - 1 && first > net.maxRecordId ? first : net.maxRecordId;
      const r = await applySlice(deps, gmail, accountId, net, sliceCursor.toString(), deletedInWindow, state.backfill_phase === "listing");
      totals.added += net.added.size;
      totals.deleted += r.deleted;
      totals.labelChanges += r.labelApplied;
      totals.stored += r.stored;
      if (r.abort !== undefined || r.blocked > 0) {
        // Put the push time back so the retry still measures from the push.
        if (pushReceivedAt !== undefined) await deps.redis.set(pushTimeKey(deps.queues.prefix, accountId), String(pushReceivedAt), "PX", 86_400_000, "NX");
        if (r.abort !== undefined) throw r.abort;
        throw new RetryableMessagesError(`${r.blocked} message(s) failed transiently; cursor held at ${cursor}`);
      }
      if (r.advanced) {
        advanced = true;
        cursor = sliceCursor.toString();
      }
    }
    if (pushReceivedAt !== undefined) pushToCommitSeconds.observe(Math.max(0, Date.now() - pushReceivedAt) / 1000);
    log.debug({ accountId, records: records.length, slices: slices.length, ...totals, cursor }, "incremental sync committed");
    return { records: records.length, ...totals, cursor, advanced };
  });
}

/** Empty history pages in a row that still carry a nextPageToken before the listing is called a loop. */
const MAX_EMPTY_HISTORY_PAGES = 50;

/** Added messages per committed slice of a history window: bounds memory and lost work. */
const SLICE_ADDS = 500;
/** Entries of any kind per slice: a bulk change (70,000 labels) commits in bounded steps too. */
const SLICE_CHANGES = 10_000;

/**
 * Splits a window (sorted by history id) into consecutive slices of at most `maxAdds` added
 * messages and `maxChanges` entries of any kind (a record is never split). An empty window is one
 * empty slice (it still moves the cursor to the mailbox's id).
 */
export function sliceWindow(records: GmailHistory[], maxAdds: number, maxChanges = SLICE_CHANGES): GmailHistory[][] {
  const sorted = [...records].sort((a, b) => (BigInt(a.id ?? "0") < BigInt(b.id ?? "0") ? -1 : 1));
  const slices: GmailHistory[][] = [[]];
  let adds = 0;
  let changes = 0;
  for (const rec of sorted) {
    const n = rec.messagesAdded?.length ?? 0;
    const c = n + (rec.messagesDeleted?.length ?? 0) + (rec.labelsAdded?.length ?? 0) + (rec.labelsRemoved?.length ?? 0);
    if ((adds > 0 && adds + n > maxAdds) || (changes > 0 && changes + c > maxChanges)) {
      slices.push([]);
      adds = 0;
      changes = 0;
    }
    (slices[slices.length - 1] as GmailHistory[]).push(rec);
    adds += n;
    changes += c;
  }
  return slices;
}

/** Consecutive label changes with the same record and delta, as one group (history order kept). */
export function groupLabelChanges(changes: NetChanges["labels"]): Array<{ gmailIds: string[]; historyId: string; added: string[]; removed: string[] }> {
  const groups: Array<{ gmailIds: string[]; historyId: string; added: string[]; removed: string[]; key: string }> = [];
  for (const c of changes) {
    const key = `${c.historyId}|${[...c.added].sort().join(",")}|${[...c.removed].sort().join(",")}`;
    const last = groups[groups.length - 1];
    if (last && last.key === key) last.gmailIds.push(c.gmailId);
    else groups.push({ gmailIds: [c.gmailId], historyId: c.historyId, added: c.added, removed: c.removed, key });
  }
  return groups.map(({ key: _key, ...g }) => g);
}

/**
 * A message this window added that answers 404 is not gone: Gmail serves it a moment after it
 * announces it (recheckMissing). One still missing after the rechecks is a transient failure
 * (ledger, cursor held), never a deletion — a real deletion shows as messagesDeleted in a later
 * window; one the window itself deletes is gone.
 */
async function retryAddedButMissing(deps: SyncDeps, gmail: GmailPort, accountId: number, net: NetChanges, prepared: PreparedBatch, deletedInWindow: ReadonlySet<string>): Promise<void> {
  const still = new Set(await recheckMissing({ gmail, pipeline: deps.pipeline, log: deps.log }, prepared, (id) => net.added.has(id) && !deletedInWindow.has(id)));
  if (still.size === 0) return;
  prepared.gone = prepared.gone.filter((id) => !still.has(id));
  for (const id of still) prepared.failed.push({ id, kind: "transient", reason: "not_found_after_add", detail: "added in history but messages.get answers 404" });
  deps.log.info({ accountId, count: still.size }, "messages added in history still answer 404: held for the next run, not deleted");
}

/** Fetches what a slice added and commits the slice's changes with its cursor (unless blocked). */
async function applySlice(deps: SyncDeps, gmail: GmailPort, accountId: number, net: NetChanges, cursor: string, deletedInWindow: ReadonlySet<string>, listing: boolean) {
  const { db, log } = deps;
  const addedIds = [...net.added.keys()];
  const current = await storedCurrentIds(db, accountId, addedIds, { minHistoryId: net.added });
  // A label change on a message we do not hold yet (a backfill page may have fetched it before the
  // change and commit it after): fetch its current state now; the history_id guard then keeps the
  // page's older copy from overwriting it, and the backfill skips it as already current.
  const relabelled = [...new Set(net.labels.map((l) => l.gmailId))].filter((id) => !net.added.has(id));
  const known = await knownIds(db, accountId, relabelled);
  // Gmail writes label records only for messages that exist: a row we hold as deleted by an older
  // state (a resync sweep that missed a message trashed during the lost window, then untrashed)
  // is alive again, and is fetched back.
  const lastLabelRecord = new Map<string, string>();
  for (const l of net.labels) lastLabelRecord.set(l.gmailId, l.historyId);
  const revived = await deletedBefore(db, accountId, new Map([...lastLabelRecord].filter(([id]) => known.has(id) && !net.added.has(id))));
  // Outside the mirror's scope: with INCLUDE_SPAM_TRASH off, mail that lands in (or stays in) Spam
  // or Trash is not downloaded, as the backfill does not list it; leaving there is a label record
  // for a message we do not hold, which fetches it then.
  const outOfScope = (id: string) => !deps.config.INCLUDE_SPAM_TRASH && (net.lastLabels.get(id) ?? []).some((l) => l === "SPAM" || l === "TRASH");
  const toFetch = [...addedIds.filter((id) => !current.has(id) && !outOfScope(id)), ...relabelled.filter((id) => (!known.has(id) && !outOfScope(id)) || revived.has(id))];
  const prepared = await fetchAndPrepare({ gmail, pipeline: deps.pipeline, log }, toFetch);
  await retryAddedButMissing(deps, gmail, accountId, net, prepared, deletedInWindow);
  assertPlausibleGone(prepared, toFetch.length, (id) => deletedInWindow.has(id));

  const r = { stored: 0, deleted: 0, labelApplied: 0, blocked: 0, parked: 0, advanced: false, abort: prepared.abort };
  await db.transaction().execute(async (trx) => {
    for (const [id, hid] of net.deleted) {
      const threadId = net.threadOf.get(id);
      // A tombstone for a message we do not hold only matters while a listing run may still commit
      // an older fetch of it; otherwise (draft autosaves: every save deletes an id) it is bloat.
      if (threadId !== undefined && listing) {
        if (await recordDeletion(trx, accountId, { gmailId: id, threadId, historyId: hid })) r.deleted++;
      } else r.deleted += await softDeleteMessages(trx, accountId, [id], hid);
    }
    const c = await commitPrepared(trx, accountId, prepared, { alsoResolved: net.deleted.keys() });
    r.stored = c.stored;
    r.deleted += c.gone;
    r.parked = c.parked;
    r.blocked = c.blocked;
    // Set-wise, after the rows are in: one statement per distinct delta of a record, in history order.
    for (const group of groupLabelChanges(net.labels)) r.labelApplied += await applyLabelChanges(trx, accountId, group);
    // Never past a retryable failure: a blocked or interrupted slice keeps its rows, not its cursor.
    if (r.blocked === 0 && prepared.abort === undefined) r.advanced = await advanceCursor(trx, accountId, cursor);
  });

  if (r.stored > 0) syncMessagesTotal.inc({ direction: "incremental" }, r.stored);
  if (net.added.size > 0) messageChangesTotal.inc({ kind: "added" }, net.added.size);
  if (r.deleted > 0) messageChangesTotal.inc({ kind: "deleted" }, r.deleted);
  const labelAdds = net.labels.filter((l) => l.added.length > 0).length;
  const labelRemoves = net.labels.filter((l) => l.removed.length > 0).length;
  if (labelAdds > 0) messageChangesTotal.inc({ kind: "label_added" }, labelAdds);
  if (labelRemoves > 0) messageChangesTotal.inc({ kind: "label_removed" }, labelRemoves);
  if (r.parked > 0) deadLettersTotal.inc({ reason: "incremental_fetch" }, r.parked);
  return r;
}
