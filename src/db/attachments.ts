// Attachment lookups for the pipeline. (Rows are written with their message in db/messages.ts.)
import type { ReusableText, SkippedReason } from "../attachments/types.ts";
import type { Executor } from "./database.ts";

/**
 * Skips that depend only on the bytes, so a second extraction would end the same way. Limit-bound
 * outcomes (too_complex, timeout) and too_large/fetch_failed are not reused: other limits or a
 * quieter machine may do better.
 */
const CONTENT_SKIPS: SkippedReason[] = ["encrypted", "unsupported_type", "corrupt", "empty"];

/**
 * Text already extracted for these bytes (any message, any account), or a terminal content-based
 * skip; null when the checksum is unknown or only limit-bound outcomes exist. Prefers a row with
 * text, then the newest.
 */
export async function findReusableText(db: Executor, checksum: string): Promise<ReusableText | null> {
  const row = await db
    .selectFrom("attachments")
    .select(["extracted_text", "text_truncated", "detected_type", "metadata", "skipped_reason"])
    .where("checksum", "=", checksum)
    .where((eb) => eb.or([eb("extracted_text", "is not", null), eb("skipped_reason", "in", CONTENT_SKIPS)]))
    .orderBy((eb) => eb("extracted_text", "is not", null), "desc")
    .orderBy("id", "desc")
    .limit(1)
    .executeTakeFirst();
  if (!row) return null;
  return {
    text: row.extracted_text,
    textTruncated: row.text_truncated,
    detectedType: row.detected_type,
    metadata: row.metadata,
    skippedReason: row.extracted_text !== null ? null : (row.skipped_reason as SkippedReason | null),
  };
}
