// Database vs mailbox, the demo's verdict: the same live message ids, the same labels on each,
// every message Gmail no longer has soft-deleted, one attachment row per attachment part, and —
// when the snapshot carries them — each body equal to the text its sender wrote, whatever the
// charset (a forwarded message's text is never the outer body).
import type { Db } from "../db/database.ts";
import { liveMessagesWithAttachmentCounts } from "../db/demo-queries.ts";
import type { MailboxSnapshot } from "@gmail-sync/emulator";

export interface MailboxComparison {
  mailboxMessages: number;
  storedMessages: number;
  missing: string[];
  extra: string[];
  labelMismatches: string[];
  attachmentMismatches: string[];
  /** Messages whose stored body text differs from the sender's text/plain body (when the snapshot carries bodies). */
  bodyMismatches: string[];
  bodyMismatchCount: number;
  bodiesChecked: number;
  match: boolean;
}

/** Body text as compared: line ends, NULs and trailing blanks are not the text. */
const normBody = (s: string | null | undefined) =>
  (s ?? "")
    .replace(/\r\n?/g, "\n")
    .replace(/\u0000/g, "")
    .replace(/[ \t]+\n/g, "\n")
    .trim();

const sample = (xs: string[]) => xs.slice(0, 10);

// Spam and trash are outside the mirror unless INCLUDE_SPAM_TRASH is set (messages.list leaves them
// out); a message moved there may or may not still have its row, so neither side counts them.
const OUTSIDE = ["SPAM", "TRASH"];

export async function compareWithMailbox(
  db: Db,
  accountId: number,
  mailbox: MailboxSnapshot,
  opts: { includeSpamTrash: boolean },
): Promise<MailboxComparison> {
  const inScope = (labels: string[]) => opts.includeSpamTrash || !labels.some((l) => OUTSIDE.includes(l));
  const rows = await liveMessagesWithAttachmentCounts(db, accountId);
  const stored = new Map(rows.filter((r) => inScope(r.label_ids)).map((r) => [r.gmail_id, r]));
  const live = new Map(mailbox.messages.filter((m) => inScope(m.labelIds)).map((m) => [m.id, m]));
  const missing = [...live.keys()].filter((id) => !stored.has(id));
  const extra = [...stored.keys()].filter((id) => !live.has(id));
  const labelMismatches: string[] = [];
  const attachmentMismatches: string[] = [];
  const bodyMismatches: string[] = [];
  let bodiesChecked = 0;
  for (const [id, m] of live) {
    const row = stored.get(id);
    if (row === undefined) continue;
    if ([...m.labelIds].sort().join(",") !== [...row.label_ids].sort().join(",")) labelMismatches.push(id);
    if (m.attachments.length !== row.attachments) attachmentMismatches.push(id);
    if (typeof m.bodyText === "string") {
      bodiesChecked++;
      if (normBody(m.bodyText) !== normBody(row.body_text)) bodyMismatches.push(id);
    }
  }
  return {
    mailboxMessages: live.size,
    storedMessages: stored.size,
    missing: sample(missing),
    extra: sample(extra),
    labelMismatches: sample(labelMismatches),
    attachmentMismatches: sample(attachmentMismatches),
    bodyMismatches: sample(bodyMismatches),
    bodyMismatchCount: bodyMismatches.length,
    bodiesChecked,
    match:
      missing.length === 0 &&
      extra.length === 0 &&
      labelMismatches.length === 0 &&
      attachmentMismatches.length === 0 &&
      bodyMismatches.length === 0,
  };
}
