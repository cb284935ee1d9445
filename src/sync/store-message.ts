// Gmail message → stored record: fetch (GmailPort.getMessages, bounded parallel/batched by the
// client), parse, run each attachment part through the pipeline (bytes live only inside it), and
// sort every id into stored / gone / failed. Whole-job conditions (rate limit, revoked auth) are
// thrown; per-message failures are returned so the caller can store the rest.
import type { AttachmentPipeline, AttachmentRef, AttachmentResult } from "../attachments/types.ts";
import type { MessageRecord } from "../db/messages.ts";
import { GmailError, isGmailError } from "../errors.ts";
import { parseGmailMessage } from "../gmail/parse-message.ts";
import type { GmailMessage, GmailPort } from "../gmail/port.ts";
import type { Logger } from "../log.ts";
import { syncErrorsTotal } from "../metrics.ts";

export interface StoreDeps {
  gmail: GmailPort;
  pipeline: AttachmentPipeline;
  log: Logger;
}

export interface MessageFailure {
  id: string;
  kind: "transient" | "permanent";
  reason: string;
  detail: string;
}

export interface PreparedBatch {
  records: MessageRecord[];
  /** 404 on fetch: the message is gone (deleted since it was listed). */
  gone: string[];
  failed: MessageFailure[];
}

const FETCH_CHUNK = 100;
const ATTACHMENT_PARALLEL = 4;

function toDate(v: unknown): Date | null {
  if (v === null || v === undefined || v === "") return null;
  if (v instanceof Date) return v;
  const n = typeof v === "number" ? v : Number(v);
  return Number.isFinite(n) ? new Date(n) : null;
}

function rethrowIfJobLevel(err: unknown): void {
  if (isGmailError(err, "rate_limited") || isGmailError(err, "auth_revoked")) throw err;
}

/** Fetches and prepares `ids` (any number; chunked here). */
export async function fetchAndPrepare(deps: StoreDeps, ids: string[]): Promise<PreparedBatch> {
  const out: PreparedBatch = { records: [], gone: [], failed: [] };
  for (let i = 0; i < ids.length; i += FETCH_CHUNK) {
    const fetched = await deps.gmail.getMessages(ids.slice(i, i + FETCH_CHUNK));
    const ok: GmailMessage[] = [];
    for (const f of fetched) {
      if (f.message !== undefined) {
        ok.push(f.message);
        continue;
      }
      const e = f.error;
      rethrowIfJobLevel(e);
      if (e.kind === "not_found") out.gone.push(f.id);
      else {
        syncErrorsTotal.inc({ error_type: e.kind === "transient" ? "transient" : "permanent" });
        out.failed.push({ id: f.id, kind: e.kind === "transient" ? "transient" : "permanent", reason: `fetch_${e.kind}`, detail: e.message });
      }
    }
    // Attachments dominate the time of messages that have them; a few messages at a time.
    let next = 0;
    const worker = async () => {
      while (next < ok.length) {
        const msg = ok[next++] as GmailMessage;
        const r = await prepareOne(deps, msg);
        if ("record" in r) out.records.push(r.record);
        else out.failed.push(r.failure);
      }
    };
    await Promise.all(Array.from({ length: Math.min(ATTACHMENT_PARALLEL, ok.length) }, worker));
  }
  return out;
}

async function prepareOne(deps: StoreDeps, msg: GmailMessage): Promise<{ record: MessageRecord } | { failure: MessageFailure }> {
  const id = msg.id ?? "";
  let parsed;
  try {
    parsed = parseGmailMessage(msg);
  } catch (err) {
    syncErrorsTotal.inc({ error_type: "parse" });
    return { failure: { id, kind: "permanent", reason: "parse", detail: (err as Error).message } };
  }
  const attachments: AttachmentResult[] = [];
  for (const ref of parsed.attachments as AttachmentRef[]) {
    try {
      attachments.push(await deps.pipeline.process(ref, () => attachmentBytes(deps.gmail, id, ref)));
    } catch (err) {
      rethrowIfJobLevel(err);
      const transient = !(err instanceof GmailError) || err.kind === "transient";
      syncErrorsTotal.inc({ error_type: "extract" });
      return { failure: { id, kind: transient ? "transient" : "permanent", reason: "attachment", detail: (err as Error).message } };
    }
  }
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
      bodyText: parsed.bodyText ?? null,
      sizeEstimate: parsed.sizeEstimate ?? null,
      attachments,
    },
  };
}

function attachmentBytes(gmail: GmailPort, messageId: string, ref: AttachmentRef): Promise<Buffer> {
  if (ref.inlineData !== null) return Promise.resolve(Buffer.from(ref.inlineData, "base64url"));
  if (ref.attachmentId === null) return Promise.resolve(Buffer.alloc(0));
  return gmail.getAttachment(messageId, ref.attachmentId);
}
