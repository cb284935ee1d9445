// How a backfill run shares the project quota with every other account's: what it fetches, and in
// what turns.
//
// - List-only. Every run but an operator's `backfill EMAIL` (resync_reason "manual": a deliberate
//   re-fetch) fetches only the listed ids it does not hold live: unknown ones and soft-deleted ones.
//   A message's content never changes in Gmail and its labels come from history, so the weekly
//   reconcile of a synced mailbox costs about its listing (messages.list, 5 units per 500 ids), and a
//   history-expired resync fetches only what it lacks (its label drift is repaired from threads.list
//   by src/sync/label-repair.ts).
// - Slices. A listed page of 500 ids is fetched in slices, one slice per job: the first slice of a
//   run holds FIRST_SLICE messages (a new account shows mail within seconds), later ones SLICE —
//   fewer when so many accounts take turns that a round would be long (src/sync/fair-share.ts). The
//   page's ids still to fetch wait in one Redis key per account (deleted when the page completes),
//   so a slice never lists again; the checkpoint in Postgres still moves page by page. A lost key
//   (Redis data loss) only means the page is listed once more.
// - Turns. Each slice re-enqueues the account's backfill with a BullMQ priority that grows with the
//   pages its run has completed (least served first); a run's first job has none and so goes before
//   every prioritized one. Accounts on the same page take turns FIFO: round-robin, slice by slice.
import type { Redis } from "ioredis";
import type { Db } from "../db/database.ts";
import { liveMessageIds } from "../db/live-message-ids.ts";
import { storedCurrentIds } from "../db/messages.ts";
import type { SyncState } from "../db/sync-state.ts";
import type { MessageRef } from "../gmail/port.ts";

/** Messages fetched by the first job of a run, and by every later one (at most: fair-share.ts). */
export const FIRST_SLICE = 20;
export const SLICE = 100;
/** BullMQ's largest priority is 2^21; pages beyond this many share the last level. */
const MAX_PRIORITY = 2_000_000;
const SLICE_TTL_SECONDS = 2 * 86400;

type RunState = Pick<SyncState, "resync_reason">;

/** Whether the run fetches only what it does not hold live (every run but a manual re-fetch). */
export function runIsListOnly(state: RunState): boolean {
  return state.resync_reason !== "manual";
}

/**
 * Of `ids`, those the run needs not fetch: held live (list-only), or — a manual re-fetch — written
 * since the run began (by an earlier slice or the incremental sync running alongside).
 */
export function currentIds(
  db: Db,
  accountId: number,
  ids: readonly string[],
  state: RunState,
  runStartedAt: Date,
): Promise<Set<string>> {
  return runIsListOnly(state)
    ? liveMessageIds(db, accountId, ids)
    : storedCurrentIds(db, accountId, [...ids], { since: runStartedAt });
}

/** The BullMQ priority of the run's next job: 1 + pages completed (lower runs first). */
export function backfillPriority(pagesDone: number): number {
  return Math.min(MAX_PRIORITY, 1 + Math.max(0, pagesDone));
}

/** What is left of the page being fetched: the listing's ids not yet fetched, by run and token. */
export interface PageSlices {
  /** The run (backfill_started_at, ms) and the page token the listing answered (null: first page). */
  run: number;
  token: string | null;
  next: string | null;
  /** Ids the page listed, and how many of them were already held or stored by earlier slices. */
  listed: number;
  held: number;
  /** Ids still to fetch, [id, threadId], members of one thread next to each other. */
  refs: Array<[string, string]>;
}

export function sliceKey(prefix: string, accountId: number): string {
  return `${prefix}:bf-page:${accountId}`;
}

/** The page in progress, if it belongs to this run and checkpoint; anything else is stale. */
export async function loadSlices(
  redis: Redis,
  key: string,
  runStartedAt: Date,
  pageToken: string | null,
): Promise<PageSlices | undefined> {
  const raw = await redis.get(key);
  if (raw === null) return undefined;
  try {
    const s = JSON.parse(raw) as PageSlices;
    if (s.run === runStartedAt.getTime() && s.token === pageToken && Array.isArray(s.refs)) return s;
  } catch {
    // unreadable: list the page again
  }
  return undefined;
}

export async function saveSlices(redis: Redis, key: string, s: PageSlices): Promise<void> {
  await redis.set(key, JSON.stringify(s), "EX", SLICE_TTL_SECONDS);
}

/** The listing's refs to fetch, members of a thread made adjacent (so a thread is fetched whole in one slice). */
export function groupByThread(refs: readonly MessageRef[], skip: ReadonlySet<string>): Array<[string, string]> {
  const byThread = new Map<string, Array<[string, string]>>();
  for (const r of refs) {
    if (skip.has(r.id)) continue;
    const group = byThread.get(r.threadId);
    if (group) group.push([r.id, r.threadId]);
    else byThread.set(r.threadId, [[r.id, r.threadId]]);
  }
  return [...byThread.values()].flat();
}

/**
 * The next slice: whole thread groups until at least `limit` ids (one group may exceed it), or —
 * `wholeThreads: false` — exactly `limit` ids.
 */
export function takeSlice(
  refs: ReadonlyArray<[string, string]>,
  limit: number,
  opts: { wholeThreads?: boolean } = {},
): { slice: Array<[string, string]>; rest: Array<[string, string]> } {
  if (opts.wholeThreads === false) return { slice: refs.slice(0, limit), rest: refs.slice(limit) };
  let n = 0;
  while (n < refs.length && n < limit) {
    const thread = refs[n]?.[1];
    n++;
    while (n < refs.length && refs[n]?.[1] === thread) n++;
  }
  return { slice: refs.slice(0, n), rest: refs.slice(n) };
}
