// The one store step: what a fetch prepared (src/sync/store-message.ts) written inside the
// caller's transaction — rows upserted (an older fetch never overwrites a newer state), messages
// that answered 404 soft-deleted, the ledger's open rows of everything now whole or gone resolved,
// and every failure (and every message stored without an attachment) counted in the retry ledger
// (src/db/dead-letters.ts) so the caller may move its cursor or checkpoint past it: the ledger, not
// the cursor, brings it back. Backfill, incremental sync and the retry step all store through it.
import type { Transaction } from "kysely";
import { recordMessageFailure, resolveDeadLetters } from "../db/dead-letters.ts";
import type { Database } from "../db/database.ts";
import { softDeleteMessages, upsertMessages } from "../db/messages.ts";
import type { PreparedBatch } from "./store-message.ts";

export interface Committed {
  stored: number;
  /** Rows soft-deleted because their message answered 404. */
  gone: number;
  /** Failures parked now as dead letters (a person should look). */
  parked: number;
  /** Failures (or incomplete messages) in the ledger awaiting their next attempt. */
  retrying: number;
  /** Earliest next attempt of this commit's retrying rows, to schedule the retry step by. */
  nextRetryAt: Date | null;
}

export async function commitPrepared(trx: Transaction<Database>, accountId: number, prepared: PreparedBatch, opts: { alsoResolved?: Iterable<string> } = {}): Promise<Committed> {
  const out: Committed = { stored: 0, gone: 0, parked: 0, retrying: 0, nextRetryAt: null };
  out.stored = await upsertMessages(trx, accountId, prepared.records);
  // Already gone when fetched: recorded as deleted (if held), not an error.
  out.gone = await softDeleteMessages(trx, accountId, prepared.gone, null);
  const unfinished = new Set([...prepared.failed, ...prepared.incomplete].map((f) => f.id));
  await resolveDeadLetters(trx, accountId, [...prepared.records.map((m) => m.gmailId), ...prepared.gone, ...(opts.alsoResolved ?? [])].filter((id) => !unfinished.has(id)));
  for (const f of [...prepared.failed, ...prepared.incomplete]) {
    const r = await recordMessageFailure(trx, accountId, f.id, { reason: f.reason, detail: f.detail, permanent: f.kind === "permanent" });
    if (r.parked) out.parked++;
    else {
      out.retrying++;
      if (out.nextRetryAt === null || r.nextAttemptAt < out.nextRetryAt) out.nextRetryAt = r.nextAttemptAt;
    }
  }
  return out;
}
