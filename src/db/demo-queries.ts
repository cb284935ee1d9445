// Reads the demo (src/demo/) makes to show a run's progress and to check its result against the
// mailboxes; tests that verify a sync the same way use them too. Nothing the service runs imports
// this file.
import { sql } from "kysely";
import { accountsJoinSyncState } from "./account-status.ts";
import type { Executor } from "./database.ts";

/** The account's live messages: id, labels, body and how many attachment rows each has. */
export async function liveMessagesWithAttachmentCounts(db: Executor, accountId: number) {
  return db
    .selectFrom("messages")
    .select([
      "gmail_id",
      "label_ids",
      "body_text",
      sql<number>`(SELECT count(*)::int FROM attachments a WHERE a.message_id = messages.id)`.as("attachments"),
    ])
    .where("account_id", "=", accountId)
    .where("deleted_at", "is", null)
    .execute();
}

/** Per account with a sync state: its backfill phase, live messages stored and attachment rows (deleted messages' too). */
export async function backfillProgress(db: Executor, emails: readonly string[]) {
  return accountsJoinSyncState(db, "inner")
    .select([
      "accounts.email",
      "sync_state.backfill_phase",
      sql<number>`(SELECT count(*)::int FROM messages m WHERE m.account_id = accounts.id AND m.deleted_at IS NULL)`.as(
        "stored",
      ),
      sql<number>`(SELECT count(*)::int FROM attachments a JOIN messages m ON m.id = a.message_id WHERE m.account_id = accounts.id)`.as(
        "attachments",
      ),
    ])
    .where("accounts.email", "in", emails)
    .execute();
}

/** When each of these messages was first stored (any account). */
export async function messagesCreatedAt(db: Executor, gmailIds: readonly string[]) {
  return db.selectFrom("messages").select(["gmail_id", "created_at"]).where("gmail_id", "in", gmailIds).execute();
}

/** Attachment rows of these accounts by the route their extraction took and their skip reason. */
export async function attachmentRouteCounts(db: Executor, accountIds: readonly number[]) {
  return db
    .selectFrom("attachments")
    .innerJoin("messages", "messages.id", "attachments.message_id")
    .select([
      sql<string>`coalesce(attachments.metadata->>'route', 'unknown')`.as("route"),
      "attachments.skipped_reason",
      sql<number>`count(*)::int`.as("n"),
    ])
    .where("messages.account_id", "in", accountIds)
    .groupBy(["route", "attachments.skipped_reason"])
    .execute();
}

/** The account's attachment rows on live messages and its open ledger rows (parked or not). */
export async function accountAttachmentAndLedgerCounts(db: Executor, accountId: number) {
  return db
    .selectFrom("accounts")
    .select([
      sql<number>`(SELECT count(*)::int FROM attachments a JOIN messages m ON m.id = a.message_id WHERE m.account_id = accounts.id AND m.deleted_at IS NULL)`.as(
        "attachments",
      ),
      sql<number>`(SELECT count(*)::int FROM dead_letters d WHERE d.account_id = accounts.id AND d.resolved_at IS NULL)`.as(
        "dead_letters",
      ),
    ])
    .where("id", "=", accountId)
    .executeTakeFirstOrThrow();
}

/** How many attachments' text (or filename) matches a web-search query. */
export async function countAttachmentsMatching(db: Executor, query: string): Promise<number> {
  const row = await db
    .selectFrom("attachments")
    .select(sql<number>`count(*)::int`.as("n"))
    .where(sql<boolean>`search @@ websearch_to_tsquery('simple', ${query})`)
    .executeTakeFirstOrThrow();
  return row.n;
}
