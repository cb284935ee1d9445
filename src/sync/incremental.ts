// Incremental sync: every history.list page from the stored cursor, netted (an id added and
// deleted in the window is never fetched), added messages fetched and stored, deleted ones
// soft-deleted, label changes applied — and the cursor moved forward in the same transaction. A
// message that could not be stored is written to the retry ledger in that same transaction, so the
// cursor passes it without forgetting it (src/sync/retry-messages.ts fetches it again). An expired
// cursor (404) starts the reconciling resync instead of skipping ahead.
import { GmailError, isGmailError } from "../errors.ts";
import {
  applyLabelChanges,
  deletedBefore,
  knownIds,
  recordDeletion,
  softDeleteMessages,
  storedCurrentIds,
} from "../db/messages.ts";
import { advanceCursor, getSyncState } from "../db/sync-state.ts";
import type { GmailHistory, GmailPort } from "../gmail/port.ts";
import { enqueueBackfill, type IncrementalJob, pushTimeKey } from "../jobs.ts";
import { messageChangesTotal, pushToCommitSeconds, syncErrorsTotal } from "../metrics.ts";
import { activeAccountPort, type SyncDeps, type SyncSkip } from "./deps.ts";
import { fetchMessages, type PreparedBatch } from "./fetch-messages.ts";
import { LOCK_WAIT_MS, withSyncLock } from "./lock.ts";
import { assertPlausibleGone } from "./not-found.ts";
import { startRun } from "./resync.ts";
import { LABELLED_NOT_HELD, NOT_FOUND_YET, scheduleRetry } from "./retry-messages.ts";
import { countStored, storePrepared, storeTransaction } from "./store-prepared.ts";

const HISTORY_TYPES = ["messageAdded", "messageDeleted", "labelAdded", "labelRemoved"] as const;

export type IncrementalResult =
  | SyncSkip
  | { resync: "history_expired" }
  | {
      records: number;
      added: number;
      deleted: number;
      labelChanges: number;
      stored: number;
      cursor: string;
      advanced: boolean;
    };

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
  const net: NetChanges = {
    added: new Map(),
    deleted: new Map(),
    threadOf: new Map(),
    labels: [],
    lastLabels: new Map(),
    maxRecordId: 0n,
  };
  for (const rec of sorted) {
    const hid = rec.id ?? "0";
    if (BigInt(hid) > net.maxRecordId) net.maxRecordId = BigInt(hid);
    for (const e of [...(rec.messagesAdded ?? []), ...(rec.labelsAdded ?? []), ...(rec.labelsRemoved ?? [])]) {
      const id = e.message?.id;
      if (id && Array.isArray(e.message?.labelIds))
        net.lastLabels.set(
          id,
          e.message.labelIds.filter((l): l is string => typeof l === "string"),
        );
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
    // same message ("Move to", a thread operation: emulator/src/mailbox.ts writes them as Gmail does),
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
  return withSyncLock(
    db,
    "incremental",
    accountId,
    async () => {
      // Taken at the start: a push arriving during this run sets it again for the follow-up run.
      const pushedAt = await deps.redis.getdel(pushTimeKey(deps.queues.prefix, accountId));
      const pushReceivedAt = [job.pushReceivedAt, pushedAt === null ? undefined : Number(pushedAt)]
        .filter((v): v is number => typeof v === "number" && Number.isFinite(v))
        .reduce<number | undefined>((a, b) => (a === undefined ? b : Math.min(a, b)), undefined);

      const state = await getSyncState(db, accountId);
      if (state === undefined || state.history_id === null) return { skipped: "no_cursor" };
      // Safety net for a backfill whose job chain broke (failed after its retries, stalled too often):
      // every sync nudges it. De-duplication makes this a no-op while its next page is queued.
      if (state.backfill_phase === "listing")
        await enqueueBackfill(deps.queues, accountId, { reason: "manual", resumeOnly: true });
      const port = await activeAccountPort(deps, accountId);
      if ("skipped" in port) return port;
      const { gmail } = port;
      const start = state.history_id;

      // The window is applied in slices as its pages arrive, never buffered whole: a bulk change of
      // 70,000 messages is one or two pages of records but tens of MB of entries.
      const slicer = sliceBuilder(SLICE_ADDS, SLICE_CHANGES);
      // Deleted in the window so far: a 404 for such a message is its deletion. (An add whose
      // deletion comes in a later slice goes to the ledger first; the deletion resolves it.)
      const deletedSoFar = new Set<string>();
      const totals = { records: 0, slices: 0, added: 0, deleted: 0, labelChanges: 0, stored: 0, retrying: 0 };
      let cursor = start;
      let advanced = false;
      let retryAt: Date | null = null;
      const apply = async (slice: GmailHistory[], mailboxId: bigint | undefined) => {
        const net = netHistory(slice);
        for (const id of net.deleted.keys()) deletedSoFar.add(id);
        // A slice's cursor is its newest record: every older record has been applied by then. The
        // last slice also covers the quiet stretch up to the mailbox id of the first page.
        const sliceCursor = mailboxId !== undefined && mailboxId > net.maxRecordId ? mailboxId : net.maxRecordId;
        const r = await applySlice(
          deps,
          gmail,
          accountId,
          net,
          sliceCursor.toString(),
          deletedSoFar,
          state.backfill_phase === "listing",
        );
        totals.slices++;
        totals.added += net.added.size;
        totals.deleted += r.deleted;
        totals.labelChanges += r.labelApplied;
        totals.stored += r.stored;
        totals.retrying += r.retrying;
        if (r.nextRetryAt !== null && (retryAt === null || r.nextRetryAt < retryAt)) retryAt = r.nextRetryAt;
        if (r.abort !== undefined) throw r.abort;
        if (r.advanced) {
          advanced = true;
          cursor = sliceCursor.toString();
        }
      };

      try {
        let firstPageHistoryId: string | undefined;
        let pageToken: string | undefined;
        const tokens = new Set<string>();
        let emptyRun = 0;
        try {
          do {
            const page = await gmail.listHistory({
              startHistoryId: start,
              historyTypes: [...HISTORY_TYPES],
              maxResults: 500,
              ...(pageToken ? { pageToken } : {}),
            });
            firstPageHistoryId ??= page.historyId;
            pageToken = page.nextPageToken;
            totals.records += page.history.length;
            // A paging loop (a token given twice) or an endless run of empty pages would keep this
            // job listing for ever: stop it as a transient failure and say why. Slices committed
            // so far stand (their cursor moved); the rest is listed again from there.
            emptyRun = page.history.length === 0 ? emptyRun + 1 : 0;
            if (pageToken !== undefined && (tokens.has(pageToken) || emptyRun >= MAX_EMPTY_HISTORY_PAGES)) {
              throw new GmailError(
                "transient",
                tokens.has(pageToken)
                  ? "history.list gave the same nextPageToken twice"
                  : `history.list gave ${emptyRun} empty pages in a row`,
                { reason: "historyPaging" },
              );
            }
            if (pageToken !== undefined) tokens.add(pageToken);
            for (const rec of page.history) {
              const full = slicer.push(rec);
              if (full !== undefined) await apply(full, undefined);
            }
          } while (pageToken);
        } catch (err) {
          if (!isGmailError(err, "history_expired")) throw err;
          syncErrorsTotal.inc({ error_type: "history_expired" });
          log.warn({ accountId, startHistoryId: start }, "history cursor expired: starting a reconciling resync");
          await startRun(deps, gmail, accountId, { reason: "history_expired", query: null });
          await enqueueBackfill(deps.queues, accountId, { reason: "history_expired" });
          return { resync: "history_expired" as const };
        }
        // Every record up to the newest one seen and up to the first page's mailbox id was listed.
        await apply(slicer.rest(), BigInt(firstPageHistoryId ?? start));
      } catch (err) {
        // Put the push time back so the retry still measures from the push.
        if (pushReceivedAt !== undefined)
          await deps.redis.set(
            pushTimeKey(deps.queues.prefix, accountId),
            String(pushReceivedAt),
            "PX",
            86_400_000,
            "NX",
          );
        throw err;
      } finally {
        // Messages this run left in the retry ledger (a 404 just after a push, a failed download):
        // the retry job fetches them when due, without holding this cursor or the next push.
        if (retryAt !== null) await scheduleRetry(deps, accountId, retryAt);
      }
      if (pushReceivedAt !== undefined) pushToCommitSeconds.observe(Math.max(0, Date.now() - pushReceivedAt) / 1000);
      const { records, ...rest } = totals;
      log.debug({ accountId, records, ...rest, cursor }, "incremental sync committed");
      return {
        records,
        added: totals.added,
        deleted: totals.deleted,
        labelChanges: totals.labelChanges,
        stored: totals.stored,
        cursor,
        advanced,
      };
    },
    { waitMs: LOCK_WAIT_MS },
  );
}

/** Empty history pages in a row that still carry a nextPageToken before the listing is called a loop. */
const MAX_EMPTY_HISTORY_PAGES = 50;

/** Added messages per committed slice of a history window: bounds memory and lost work. */
const SLICE_ADDS = 500;
/** Entries of any kind per slice: a bulk change (70,000 labels) commits in bounded steps too. */
const SLICE_CHANGES = 10_000;

/**
 * Cuts a stream of records (in history order) into consecutive slices of at most `maxAdds` added
 * messages and `maxChanges` entries of any kind; a record is never split.
 */
export function sliceBuilder(maxAdds: number, maxChanges: number) {
  let slice: GmailHistory[] = [];
  let adds = 0;
  let changes = 0;
  return {
    /** Adds a record; returns the slice it closed (the record then opens the next one), if any. */
    push(rec: GmailHistory): GmailHistory[] | undefined {
      const n = rec.messagesAdded?.length ?? 0;
      const c =
        n + (rec.messagesDeleted?.length ?? 0) + (rec.labelsAdded?.length ?? 0) + (rec.labelsRemoved?.length ?? 0);
      let closed: GmailHistory[] | undefined;
      if ((adds > 0 && adds + n > maxAdds) || (changes > 0 && changes + c > maxChanges)) {
        closed = slice;
        slice = [];
        adds = 0;
        changes = 0;
      }
      slice.push(rec);
      adds += n;
      changes += c;
      return closed;
    },
    /** The open slice (possibly empty: an empty window still moves the cursor to the mailbox's id). */
    rest(): GmailHistory[] {
      return slice;
    },
  };
}

/** A whole window (any order) as the slices sliceBuilder cuts it into. */
export function sliceWindow(records: GmailHistory[], maxAdds: number, maxChanges = SLICE_CHANGES): GmailHistory[][] {
  const sorted = [...records].sort((a, b) => (BigInt(a.id ?? "0") < BigInt(b.id ?? "0") ? -1 : 1));
  const builder = sliceBuilder(maxAdds, maxChanges);
  const slices: GmailHistory[][] = [];
  for (const rec of sorted) {
    const closed = builder.push(rec);
    if (closed !== undefined) slices.push(closed);
  }
  slices.push(builder.rest());
  return slices;
}

/** Consecutive label changes with the same record and delta, as one group (history order kept). */
export function groupLabelChanges(
  changes: NetChanges["labels"],
): Array<{ gmailIds: string[]; historyId: string; added: string[]; removed: string[] }> {
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
 * announces it (byeokim/gmailpush#10, openclaw/gogcli#379). It goes to the retry ledger as
 * NOT_FOUND_YET — the retry job fetches it within seconds — and the slice commits without it, so
 * a push is never held for the others. A real deletion arrives as messagesDeleted and resolves the
 * row; one this window already deleted is simply gone.
 */
function holdAddedButMissing(
  accountId: number,
  net: NetChanges,
  prepared: PreparedBatch,
  deletedSoFar: ReadonlySet<string>,
  log: SyncDeps["log"],
): void {
  const notYet = prepared.gone.filter((id) => net.added.has(id) && !deletedSoFar.has(id));
  if (notYet.length === 0) return;
  const set = new Set(notYet);
  prepared.gone = prepared.gone.filter((id) => !set.has(id));
  for (const id of notYet)
    prepared.failed.push({
      id,
      kind: "transient",
      reason: NOT_FOUND_YET,
      detail: "added in history but messages.get answers 404",
    });
  log.info(
    { accountId, count: notYet.length },
    "messages added in history answer 404: left to the retry ledger, not deleted",
  );
}

/** Label changes for messages we do not hold, fetched per slice; more go to the retry ledger. */
const RELABEL_FETCH_CAP = 500;

/** Fetches what a slice added and commits the slice's changes with its cursor. */
async function applySlice(
  deps: SyncDeps,
  gmail: GmailPort,
  accountId: number,
  net: NetChanges,
  cursor: string,
  deletedSoFar: ReadonlySet<string>,
  listing: boolean,
) {
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
  const revived = await deletedBefore(
    db,
    accountId,
    new Map([...lastLabelRecord].filter(([id]) => known.has(id) && !net.added.has(id))),
  );
  // Outside the mirror's scope: with INCLUDE_SPAM_TRASH off, mail that lands in (or stays in) Spam
  // or Trash is not downloaded, as the backfill does not list it; leaving there is a label record
  // for a message we do not hold, which fetches it then.
  const outOfScope = (id: string) =>
    !deps.config.INCLUDE_SPAM_TRASH && (net.lastLabels.get(id) ?? []).some((l) => l === "SPAM" || l === "TRASH");
  const relabelFetch = relabelled.filter((id) => (!known.has(id) && !outOfScope(id)) || revived.has(id));
  // A bulk change over mail we do not hold (70,000 leaving Spam) would make this slice fetch all of
  // it before committing: past the cap they go to the retry ledger, fetched in bounded rounds.
  const deferred = relabelFetch.slice(RELABEL_FETCH_CAP);
  const toFetch = [
    ...addedIds.filter((id) => !current.has(id) && !outOfScope(id)),
    ...relabelFetch.slice(0, RELABEL_FETCH_CAP),
  ];
  const prepared = await fetchMessages({ gmail, pipeline: deps.pipeline }, toFetch);
  // Judged before the post-push 404s are set aside: most of a slice answering 404 is a broken
  // endpoint, not a race, and must not be committed at all.
  assertPlausibleGone(prepared, toFetch.length, (id) => deletedSoFar.has(id));
  holdAddedButMissing(accountId, net, prepared, deletedSoFar, log);
  for (const id of deferred)
    prepared.failed.push({
      id,
      kind: "transient",
      reason: LABELLED_NOT_HELD,
      detail: "label change for a message not held: fetched by the retry step",
    });

  const r = {
    stored: 0,
    deleted: 0,
    labelApplied: 0,
    parked: 0,
    retrying: 0,
    nextRetryAt: null as Date | null,
    advanced: false,
    abort: prepared.abort,
  };
  await storeTransaction(deps, accountId, "incremental", async (trx, feed) => {
    for (const [id, hid] of net.deleted) {
      const threadId = net.threadOf.get(id);
      // A tombstone for a message we do not hold only matters while a listing run may still commit
      // an older fetch of it; otherwise (draft autosaves: every save deletes an id) it is bloat.
      if (threadId !== undefined && listing) {
        if (await recordDeletion(trx, accountId, { gmailId: id, threadId, historyId: hid }, feed)) r.deleted++;
      } else r.deleted += await softDeleteMessages(trx, accountId, [id], hid, feed);
    }
    const c = await storePrepared(trx, accountId, prepared, { alsoResolved: net.deleted.keys(), feed });
    r.stored = c.stored;
    r.deleted += c.gone;
    r.parked = c.parked;
    r.retrying = c.retrying;
    r.nextRetryAt = c.nextRetryAt;
    // Set-wise, after the rows are in: one statement per distinct delta of a record, in history order.
    for (const group of groupLabelChanges(net.labels))
      r.labelApplied += await applyLabelChanges(trx, accountId, group, feed);
    // Failures are in the ledger, in this transaction: the cursor moves past them. Only an
    // interrupted slice (rate limit, revoked auth) keeps its rows but not its cursor.
    if (prepared.abort === undefined) r.advanced = await advanceCursor(trx, accountId, cursor);
  });

  countStored("incremental", r);
  if (net.added.size > 0) messageChangesTotal.inc({ kind: "added" }, net.added.size);
  if (r.deleted > 0) messageChangesTotal.inc({ kind: "deleted" }, r.deleted);
  const labelAdds = net.labels.filter((l) => l.added.length > 0).length;
  const labelRemoves = net.labels.filter((l) => l.removed.length > 0).length;
  if (labelAdds > 0) messageChangesTotal.inc({ kind: "label_added" }, labelAdds);
  if (labelRemoves > 0) messageChangesTotal.inc({ kind: "label_removed" }, labelRemoves);
  return r;
}
