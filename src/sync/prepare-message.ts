// One fetched Gmail message → the row to store: parsed, its body fetched when Gmail served it by
// reference, every attachment part run through the pipeline (bytes live only inside it). A message
// that cannot be prepared is returned as a failure for the retry ledger; one whose attachment could
// not be downloaded is still stored, marked incomplete. Whole-job conditions (rate limit, revoked
// auth) are thrown. src/sync/fetch-messages.ts calls it for every message it fetches.
import type { AttachmentPipeline, AttachmentRef, AttachmentResult } from "../attachments/types.ts";
import type { MessageRecord } from "../db/messages.ts";
import { GmailError, isGmailError } from "../errors.ts";
import { decodeTextBytes, type ParsedMessage, parseGmailMessage } from "../gmail/parse-message.ts";
import type { GmailMessage, GmailPort } from "../gmail/port.ts";
import { attachmentsSkippedTotal, syncErrorsTotal } from "../metrics.ts";

export interface PrepareDeps {
  gmail: GmailPort;
  pipeline: AttachmentPipeline;
}

export interface MessageFailure {
  id: string;
  kind: "transient" | "permanent";
  reason: string;
  detail: string;
}

export type PreparedMessage = { record: MessageRecord; incomplete?: MessageFailure } | { failure: MessageFailure };

function toDate(v: unknown): Date | null {
  if (v === null || v === undefined || v === "") return null;
  if (v instanceof Date) return v;
  const n = typeof v === "number" ? v : Number(v);
  return Number.isFinite(n) ? new Date(n) : null;
}

function rethrowIfJobLevel(err: unknown): void {
  if (isGmailError(err, "rate_limited") || isGmailError(err, "auth_revoked")) throw err;
}

export async function prepareMessage(deps: PrepareDeps, msg: GmailMessage): Promise<PreparedMessage> {
  const id = msg.id ?? "";
  let parsed: ParsedMessage;
  try {
    parsed = parseGmailMessage(msg);
  } catch (err) {
    syncErrorsTotal.inc({ error_type: "parse" });
    return { failure: { id, kind: "permanent", reason: "parse", detail: (err as Error).message } };
  }
  let bodyText = parsed.bodyText ?? null;
  // A long HTML body is converted in an extraction child, not in this process (never throws).
  if (parsed.bodyHtml !== undefined) bodyText = await deps.pipeline.htmlBodyText(parsed.bodyHtml);
  if (parsed.bodyRef !== null) {
    // A body Gmail served by reference (too large to inline): one attachments.get (5 units).
    try {
      const ref = parsed.bodyRef;
      const text = decodeTextBytes(await deps.gmail.getAttachment(id, ref.attachmentId), ref.charset);
      bodyText = ref.html ? await deps.pipeline.htmlBodyText(text) : text;
    } catch (err) {
      rethrowIfJobLevel(err);
      const transient = !(err instanceof GmailError) || err.kind === "transient" || err.kind === "not_found";
      syncErrorsTotal.inc({ error_type: transient ? "transient" : "permanent" });
      const kind = transient ? "transient" : "permanent";
      return { failure: { id, kind, reason: "body_fetch", detail: (err as Error).message } };
    }
  }
  const attachments: AttachmentResult[] = [];
  const unfetched: string[] = [];
  for (const [index, ref] of (parsed.attachments as AttachmentRef[]).entries()) {
    try {
      // index: parts past ATTACHMENT_MAX_PER_MESSAGE get a row and no download (too_many_parts).
      attachments.push(await deps.pipeline.process(ref, () => attachmentBytes(deps.gmail, id, ref), { index }));
    } catch (err) {
      rethrowIfJobLevel(err);
      // The pipeline already turns a permanent download failure into a fetch_failed row; what
      // reaches here kept failing through the client's retries (5xx, network). One attachment must
      // not withhold the message: store it with this row marked, and retry the message later.
      const detail = (err as Error)?.message ?? String(err);
      syncErrorsTotal.inc({ error_type: "transient" });
      attachmentsSkippedTotal.inc({ reason: "fetch_failed" });
      unfetched.push(`part ${ref.partId}: ${detail}`);
      attachments.push({
        partId: ref.partId,
        filename: ref.filename,
        mimeType: ref.mimeType,
        contentId: ref.contentId,
        size: ref.size,
        detectedType: null,
        checksum: null,
        text: null,
        textTruncated: false,
        route: "skipped",
        skippedReason: "fetch_failed",
        metadata: { reason: detail.slice(0, 200), retrying: true },
      });
    }
  }
  const incomplete: MessageFailure | undefined =
    unfetched.length === 0
      ? undefined
      : { id, kind: "transient", reason: "attachment_fetch", detail: unfetched.join("; ") };
  return {
    record: {
      gmailId: parsed.gmailId,
      threadId: parsed.threadId,
      historyId: parsed.historyId ?? null,
      internalDate: toDate(parsed.internalDate),
      labelIds: parsed.labelIds ?? [],
      fromAddress: parsed.fromAddress ?? null,
      toAddresses: parsed.toAddresses ?? [],
      ccAddresses: parsed.ccAddresses ?? [],
      subject: parsed.subject ?? null,
      messageIdHeader: parsed.messageIdHeader ?? null,
      inReplyTo: parsed.inReplyTo ?? null,
      snippet: parsed.snippet ?? null,
      bodyText,
      sizeEstimate: parsed.sizeEstimate ?? null,
      attachments,
    },
    ...(incomplete !== undefined ? { incomplete } : {}),
  };
}

function attachmentBytes(gmail: GmailPort, messageId: string, ref: AttachmentRef): Promise<Buffer> {
  if (ref.inlineData !== null) return Promise.resolve(Buffer.from(ref.inlineData, "base64url"));
  if (ref.attachmentId === null) return Promise.resolve(Buffer.alloc(0));
  return gmail.getAttachment(messageId, ref.attachmentId);
}
