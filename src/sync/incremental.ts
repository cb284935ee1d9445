// Incremental sync: every history.list page from the stored cursor, netted (an id added and
// deleted in the window is never fetched), added messages fetched and stored, deleted ones
// soft-deleted, label changes applied — and the cursor moved forward in the same transaction, never
// past a message that failed retryably and is not yet parked as a dead letter. An expired cursor
// (404) starts the reconciling resync instead of skipping ahead.
import { isGmailError } from "../errors.ts";
import { recordMessageFailure, resolveDeadLetters } from "../db/dead-letters.ts";
import { applyLabelChange, softDeleteMessages, storedCurrentIds, upsertMessages } from "../db/messages.ts";
import { advanceCursor, getSyncState } from "../db/sync-state.ts";
import type { GmailHistory } from "../gmail/port.ts";
import { enqueueBackfill, type IncrementalJob, pushTimeKey } from "../jobs.ts";
import { deadLettersTotal, messageChangesTotal, pushToCommitSeconds, syncErrorsTotal, syncMessagesTotal } from "../metrics.ts";
import { RetryableMessagesError } from "./backfill.ts";
import { activeAccountPort, type SyncDeps, type SyncSkip } from "./deps.ts";
import { withSyncLock } from "./lock.ts";
import { startRun } from "./resync.ts";
import { fetchAndPrepare } from "./store-message.ts";

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
  labels: Array<{ gmailId: string; historyId: string; added: string[]; removed: string[] }>;
  maxRecordId: bigint;
}

/** Nets a window of history records (chronological). Pure. */
export function netHistory(records: GmailHistory[]): NetChanges {
  const sorted = [...records].sort((a, b) => (BigInt(a.id ?? "0") < BigInt(b.id ?? "0") ? -1 : 1));
  const net: NetChanges = { added: new Map(), deleted: new Map(), labels: [], maxRecordId: 0n };
  for (const rec of sorted) {
    const hid = rec.id ?? "0";
    if (BigInt(hid) > net.maxRecordId) net.maxRecordId = BigInt(hid);
    for (const a of rec.messagesAdded ?? []) {
      const id = a.message?.id;
      if (id) {
        net.added.set(id, hid);
        net.deleted.delete(id);
      }
    }
    for (const d of rec.messagesDeleted ?? []) {
      const id = d.message?.id;
      if (id) {
        net.added.delete(id);
        net.deleted.set(id, hid);
      }
    }
    for (const l of rec.labelsAdded ?? []) {
      const id = l.message?.id;
      if (id) net.labels.push({ gmailId: id, historyId: hid, added: l.labelIds ?? [], removed: [] });
    }
    for (const l of rec.labelsRemoved ?? []) {
      const id = l.message?.id;
      if (id) net.labels.push({ gmailId: id, historyId: hid, added: [], removed: l.labelIds ?? [] });
    }
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
    const port = await activeAccountPort(deps, accountId);
    if ("skipped" in port) return port;
    const { gmail } = port;
    const start = state.history_id;

    const records: GmailHistory[] = [];
    let firstPageHistoryId: string | undefined;
    try {
      let pageToken: string | undefined;
      do {
        const page = await gmail.listHistory({ startHistoryId: start, historyTypes: [...HISTORY_TYPES], maxResults: 500, ...(pageToken ? { pageToken } : {}) });
        firstPageHistoryId ??= page.historyId;
        records.push(...page.history);
        pageToken = page.nextPageToken;
      } while (pageToken);
    } catch (err) {
      if (!isGmailError(err, "history_expired")) throw err;
      syncErrorsTotal.inc({ error_type: "history_expired" });
      log.warn({ accountId, startHistoryId: start }, "history cursor expired: starting a reconciling resync");
      await startRun(deps, gmail, accountId, { reason: "history_expired", query: null });
      await enqueueBackfill(deps.queues, accountId, { reason: "history_expired" });
      return { resync: "history_expired" };
    }

    const net = netHistory(records);
    // Every record up to the newest one seen and up to the first page's mailbox id was listed.
    const first = BigInt(firstPageHistoryId ?? start);
    const cursor = (net.maxRecordId > first ? net.maxRecordId : first).toString();

    const addedIds = [...net.added.keys()];
    const current = await storedCurrentIds(db, accountId, addedIds, { minHistoryId: net.added });
    const toFetch = addedIds.filter((id) => !current.has(id));
    const prepared = await fetchAndPrepare({ gmail, pipeline: deps.pipeline, log }, toFetch);

    let stored = 0;
    let deleted = 0;
    let labelApplied = 0;
    let blocked = 0;
    let parked = 0;
    let advanced = false;
    await db.transaction().execute(async (trx) => {
      stored = await upsertMessages(trx, accountId, prepared.records);
      for (const [id, hid] of net.deleted) deleted += await softDeleteMessages(trx, accountId, [id], hid);
      // Already gone when fetched (404): recorded as deleted, not an error.
      deleted += await softDeleteMessages(trx, accountId, prepared.gone, null);
      for (const change of net.labels) if (await applyLabelChange(trx, accountId, change)) labelApplied++;
      for (const f of prepared.failed) {
        const isParked = await recordMessageFailure(trx, accountId, f.id, { reason: f.reason, detail: f.detail, permanent: f.kind === "permanent" });
        if (isParked) parked++;
        else blocked++;
      }
      await resolveDeadLetters(trx, accountId, [...prepared.records.map((r) => r.gmailId), ...prepared.gone, ...net.deleted.keys()]);
      if (blocked === 0 && prepared.abort === undefined) advanced = await advanceCursor(trx, accountId, cursor);
    });

    if (stored > 0) syncMessagesTotal.inc({ direction: "incremental" }, stored);
    if (net.added.size > 0) messageChangesTotal.inc({ kind: "added" }, net.added.size);
    if (deleted > 0) messageChangesTotal.inc({ kind: "deleted" }, deleted);
    const labelAdds = net.labels.filter((l) => l.added.length > 0).length;
    if (labelAdds > 0) messageChangesTotal.inc({ kind: "label_added" }, labelAdds);
    if (net.labels.length - labelAdds > 0) messageChangesTotal.inc({ kind: "label_removed" }, net.labels.length - labelAdds);
    if (parked > 0) deadLettersTotal.inc({ reason: "incremental_fetch" }, parked);
    if (blocked > 0 || prepared.abort !== undefined) {
      // Put the push time back so the retry still measures from the push.
      if (pushReceivedAt !== undefined) await deps.redis.set(pushTimeKey(deps.queues.prefix, accountId), String(pushReceivedAt), "PX", 86_400_000, "NX");
      if (prepared.abort !== undefined) throw prepared.abort;
      throw new RetryableMessagesError(`${blocked} message(s) failed transiently; cursor held at ${start}`);
    }
    if (pushReceivedAt !== undefined) pushToCommitSeconds.observe(Math.max(0, Date.now() - pushReceivedAt) / 1000);
    log.debug({ accountId, records: records.length, stored, deleted, labels: labelApplied, cursor }, "incremental sync committed");
    return { records: records.length, added: net.added.size, deleted, labelChanges: labelApplied, stored, cursor, advanced };
  });
}
