// How many messages a backfill turn fetches. Every account with a backfill in progress takes turns
// round-robin (src/sync/page-slices.ts), so the size of a turn decides how long one round — every
// such account's turn once — takes. With a fixed turn, 2,000 accounts under a binding project bucket
// would each be served once every several minutes, in connection order; instead a turn is sized so
// that a round fits in BACKFILL_ROUND_SECONDS of the quota backfills may spend (the project's, less
// the reserve live work keeps: quota-class.ts). Up to ~640 accounts at Gmail's default project quota
// that is the full SLICE (a turn of 100 messages costs little besides its fetch); past that the turn
// shrinks, down to one message, and each waiting account still gets mail every round. Turn size does
// not change the quota a message costs (the page is listed once, whatever the slices), only the
// number of jobs.
import type { Config } from "../config.ts";
import { countBackfillsInProgress } from "../db/sync-state.ts";
import type { Db } from "../db/database.ts";
import { PROJECT_RESERVE } from "../gmail/quota-class.ts";
import { FIRST_SLICE, SLICE } from "./page-slices.ts";

/**
 * The smallest turn. One message is the least a turn can fetch; the job's own cost (locks, a
 * transaction, a re-enqueue) is then most of the turn's, but the quota a message costs is the same.
 */
export const MIN_SLICE = 1;
/**
 * From this turn size on, a turn takes whole threads (threads.get: a thread's messages for 10 units,
 * 1.46× the messages per unit on the generated mailbox); below it, exactly its messages, since a
 * thread group would make one turn several times another. At Gmail's default project quota only a
 * fleet of over ~6,400 accounts backfilling at once turns this small.
 */
export const WHOLE_THREAD_TURN = 10;
/**
 * What a message costs, to turn a turn's budget into messages: messages.get (5 units) and the
 * attachments.get its parts need (0.41 a message on the generated mail in the fleet benchmark, ~2
 * units). With 5, a 60-account round overran its 30 s by a third (Jain 0.87 per minute).
 */
const UNITS_PER_MESSAGE = 7;
/** How long a count of running backfills is reused: every turn asks, and the count moves slowly. */
const COUNT_TTL_MS = 5_000;

export type FairShareConfig = Pick<Config, "GMAIL_PROJECT_QUOTA_UNITS_PER_MINUTE" | "BACKFILL_ROUND_SECONDS">;

/** Messages per turn when `running` accounts take turns: a run's first turn, or a later one. */
export function turnSize(config: FairShareConfig, running: number, first: boolean): number {
  const cap = first ? FIRST_SLICE : SLICE;
  const perSecond = (config.GMAIL_PROJECT_QUOTA_UNITS_PER_MINUTE / 60) * (1 - PROJECT_RESERVE.bulk);
  const share = (perSecond * config.BACKFILL_ROUND_SECONDS) / Math.max(1, running) / UNITS_PER_MESSAGE;
  return Math.max(MIN_SLICE, Math.min(cap, Math.floor(share)));
}

const counts = new WeakMap<Db, { at: number; value: Promise<number> }>();

/** Accounts with backfill work (in progress or about to start), as seen at most COUNT_TTL_MS ago by this process. */
export function runningBackfills(db: Db, now = Date.now()): Promise<number> {
  const cached = counts.get(db);
  if (cached !== undefined && now - cached.at < COUNT_TTL_MS) return cached.value;
  const value = countBackfillsInProgress(db);
  counts.set(db, { at: now, value });
  // A failed count is asked again by the next turn rather than remembered.
  value.catch(() => counts.delete(db));
  return value;
}

/** The size of this turn of the account's backfill. */
export async function fairTurnSize(db: Db, config: FairShareConfig, first: boolean): Promise<number> {
  return turnSize(config, await runningBackfills(db), first);
}
