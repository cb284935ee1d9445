// history.list over Gmail-shaped records (one record per operation, several messages and change
// types in one record). The filters are applied per entry:
// - historyTypes keeps only the typed fields asked for; a record with none of them is left out,
//   and so is every record holding only `messages` (it has no type to match).
// - labelId keeps the entries whose message carries the label right after the record, or whose
//   change names it (a labelsRemoved of INBOX matches labelId=INBOX); a record with no such entry
//   is left out.
// A filtered record's `messages` lists the messages of the entries it keeps. maxResults counts
// records; the page token is the id of the last record on the page, so pages stay stable while
// new records are appended, and finding a page start is a binary search (no rescans).
import type { HistoryRecord, HistoryType, Mailbox } from "./mailbox.ts";

export const HISTORY_TYPES: readonly HistoryType[] = ["messageAdded", "messageDeleted", "labelAdded", "labelRemoved"];

const FIELD = {
  messageAdded: "messagesAdded",
  messageDeleted: "messagesDeleted",
  labelAdded: "labelsAdded",
  labelRemoved: "labelsRemoved",
} as const satisfies Record<HistoryType, keyof HistoryRecord>;

export interface HistoryFilter {
  /** Empty: every type. */
  types: ReadonlySet<HistoryType>;
  labelId: string | undefined;
}

/** The record as history.list shows it under `filter`, or undefined when none of it matches. */
export function historyJson(r: HistoryRecord, filter: HistoryFilter): Record<string, unknown> | undefined {
  const typed: Record<string, unknown> = {};
  if (filter.types.size === 0 && filter.labelId === undefined) {
    for (const type of HISTORY_TYPES) if (r[FIELD[type]] !== undefined) typed[FIELD[type]] = r[FIELD[type]];
    return { id: String(r.id), messages: r.messages, ...typed };
  }
  const { labelId } = filter;
  const kept = new Map<string, { id: string; threadId: string }>();
  for (const type of HISTORY_TYPES) {
    const entries = r[FIELD[type]] as
      | Array<{ message: { id: string; threadId: string; labelIds?: string[] }; labelIds?: string[] }>
      | undefined;
    if (entries === undefined || (filter.types.size > 0 && !filter.types.has(type))) continue;
    const matching =
      labelId === undefined
        ? entries
        : entries.filter(
            (e) => e.message.labelIds?.includes(labelId) === true || e.labelIds?.includes(labelId) === true,
          );
    if (matching.length === 0) continue;
    typed[FIELD[type]] = matching;
    for (const e of matching)
      if (!kept.has(e.message.id)) kept.set(e.message.id, { id: e.message.id, threadId: e.message.threadId });
  }
  if (kept.size === 0) return undefined;
  return { id: String(r.id), messages: [...kept.values()], ...typed };
}

/** Index of the first record with an id above `after` (records are in increasing id order). */
function firstAfter(records: readonly HistoryRecord[], after: number): number {
  let lo = 0;
  let hi = records.length;
  while (lo < hi) {
    const mid = (lo + hi) >> 1;
    if ((records[mid] as HistoryRecord).id <= after) lo = mid + 1;
    else hi = mid;
  }
  return lo;
}

/**
 * One page of records after `after` (exclusive): up to `limit` records that match the filter, and
 * the id to continue after when more records follow.
 */
export function historyPage(
  mailbox: Mailbox,
  after: number,
  limit: number,
  filter: HistoryFilter,
): { history: Array<Record<string, unknown>>; continueAfter: number | undefined } {
  const records = mailbox.history;
  const history: Array<Record<string, unknown>> = [];
  let i = firstAfter(records, after);
  let lastId = after;
  for (; i < records.length && history.length < limit; i++) {
    const r = records[i] as HistoryRecord;
    const json = historyJson(r, filter);
    if (json === undefined) continue;
    history.push(json);
    lastId = r.id;
  }
  return { history, continueAfter: i < records.length && history.length > 0 ? lastId : undefined };
}
