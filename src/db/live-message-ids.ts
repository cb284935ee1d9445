// The list-only backfill's question (src/sync/page-slices.ts): of the ids a listing page gave, which
// we already hold as live rows. Those need no fetch — a message's content never changes in Gmail
// and its labels come from history — so a reconcile of a synced mailbox costs about its listing.
import { type Executor, gmailIdIn } from "./database.ts";

/** Of `gmailIds`, those stored and not soft-deleted (tombstones are soft-deleted: not held). */
export async function liveMessageIds(
  db: Executor,
  accountId: number,
  gmailIds: readonly string[],
): Promise<Set<string>> {
  if (gmailIds.length === 0) return new Set();
  const rows = await db
    .selectFrom("messages")
    .select("gmail_id")
    .where("account_id", "=", accountId)
    .where(gmailIdIn(gmailIds))
    .where("deleted_at", "is", null)
    .execute();
  return new Set(rows.map((r) => r.gmail_id));
}
