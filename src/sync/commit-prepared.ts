// The one store step: what a fetch prepared (src/sync/store-message.ts) written inside the
// caller's transaction — rows upserted (an older fetch never overwrites a newer state), messages
// that answered 404 soft-deleted, failures counted in the dead-letter ledger (parked, or blocking
// the caller's checkpoint), and the ledger's open rows of everything now stored or gone resolved.
// Backfill, incremental sync and `dead-letters --retry` all store through it.
import type { Transaction } from "kysely";
import { recordMessageFailure, resolveDeadLetters } from "../db/dead-letters.ts";
import type { Database } from "../db/database.ts";
import { softDeleteMessages, upsertMessages } from "../db/messages.ts";
import type { PreparedBatch } from "./store-message.ts";

export interface Committed {
  stored: number;
  /** Rows soft-deleted because their message answered 404. */
  gone: number;
  /** Failures now parked as dead letters (they no longer hold a checkpoint back). */
  parked: number;
  /** Failures still being retried: the caller must not move its checkpoint past them. */
  blocked: number;
}

export async function commitPrepared(trx: Transaction<Database>, accountId: number, prepared: PreparedBatch, opts: { alsoResolved?: Iterable<string> } = {}): Promise<Committed> {
  const out: Committed = { stored: 0, gone: 0, parked: 0, blocked: 0 };
  out.stored = await upsertMessages(trx, accountId, prepared.records);
  // Already gone when fetched: recorded as deleted (if held), not an error.
  out.gone = await softDeleteMessages(trx, accountId, prepared.gone, null);
  for (const f of prepared.failed) {
    const isParked = await recordMessageFailure(trx, accountId, f.id, { reason: f.reason, detail: f.detail, permanent: f.kind === "permanent" });
    if (isParked) out.parked++;
    else out.blocked++;
  }
  await resolveDeadLetters(trx, accountId, [...prepared.records.map((m) => m.gmailId), ...prepared.gone, ...(opts.alsoResolved ?? [])]);
  return out;
}
