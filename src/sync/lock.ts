// One sync of each kind per account at a time, across every worker on every machine. BullMQ's
// de-duplication keeps a second job from being queued, but a stalled job (lock lost while its
// worker still runs) can run twice; this Postgres session lock is the real guard. It is held on a
// dedicated pooled connection for the whole run and released when the run ends or the process
// dies (the server drops a dead session's locks).
import { advisoryUnlock, tryAdvisoryLock } from "../db/advisory-locks.ts";
import type { Db } from "../db/database.ts";
import { SyncBusyError } from "../errors.ts";

export type SyncKind = "backfill" | "incremental";

// First key of the two-int advisory lock: the kind. Fixed numbers, so every version agrees.
const KIND_KEY: Record<SyncKind, number> = { backfill: 0x67730001, incremental: 0x67730002 };

/** How long an incremental sync or ledger retry waits for the account's running one (see withSyncLock). */
export const LOCK_WAIT_MS = 1_000;
/** How often a run waiting for the lock asks again. */
const LOCK_POLL_MS = 25;

/**
 * Runs `fn` holding the (kind, account) lock. Busy: waits up to `waitMs` (default 0) for it, then
 * throws SyncBusyError. A short wait lets a push's sync start the moment the account's running
 * sync or ledger retry ends, rather than being re-queued for seconds.
 */
export async function withSyncLock<T>(
  db: Db,
  kind: SyncKind,
  accountId: number,
  fn: () => Promise<T>,
  opts: { waitMs?: number } = {},
): Promise<T> {
  return db.connection().execute(async (conn) => {
    const deadline = Date.now() + (opts.waitMs ?? 0);
    for (;;) {
      if (await tryAdvisoryLock(conn, KIND_KEY[kind], accountId)) break;
      if (Date.now() + LOCK_POLL_MS > deadline)
        throw new SyncBusyError(`a ${kind} sync of account ${accountId} is already running`);
      await new Promise((r) => setTimeout(r, LOCK_POLL_MS));
    }
    try {
      return await fn();
    } finally {
      await advisoryUnlock(conn, KIND_KEY[kind], accountId).catch(() => {});
    }
  });
}
