// Renders stored messages as Gmail's Message JSON (formats minimal | metadata | full | raw),
// deriving the payload tree from the RFC 822 bytes the way Gmail does: root partId "", children
// "0", "1", grandchildren "1.0"…; body.data (base64url, padded) of transfer-decoded bytes inline for
// text and small unnamed parts; body.attachmentId for named or large parts.
import { createHmac } from "node:crypto";
import { convert } from "html-to-text";
import { decodeBody, decodeCharset, type MimeNode } from "./mime.ts";
import type { Mailbox, StoredMessage } from "./mailbox.ts";

/** Unnamed non-text parts up to this size are sent inline; larger ones get an attachmentId. */
const INLINE_NON_TEXT_MAX = 4096;

export type MessageFormat = "minimal" | "metadata" | "full" | "raw";

export interface MessagePartJson {
  partId: string;
  mimeType: string;
  filename: string;
  headers: Array<{ name: string; value: string }>;
  body: { attachmentId?: string; size: number; data?: string };
  parts?: MessagePartJson[];
}

interface Rendered {
  payload: MessagePartJson;
  /** JSON text of `payload`, made once: messages.get format=full is the hot path of every sync. */
  payloadJson?: string;
  snippet: string;
  /** partId → attachment size, for the control API's ground truth. */
  attachments: Array<{ partId: string; filename: string | null; size: number }>;
}

export function base64urlPadded(buf: Buffer): string {
  const s = buf.toString("base64url");
  return s + "=".repeat((4 - (s.length % 4)) % 4);
}

/** Attachment ids name the message and part, with an HMAC so a forged or foreign id is refused. */
export function createAttachmentIds(secret: string) {
  const mac = (msgId: string, partId: string) => createHmac("sha256", secret).update(`${msgId}/${partId}`).digest().subarray(0, 18);
  return {
    encode(msgId: string, partId: string): string {
      return "ANGjdJ" + Buffer.concat([mac(msgId, partId), Buffer.from(`${msgId}/${partId}`)]).toString("base64url");
    },
    /** Returns the part id, or undefined when the token is not one of ours for this message. */
    decode(msgId: string, token: string): string | undefined {
      if (!token.startsWith("ANGjdJ")) return undefined;
      const buf = Buffer.from(token.slice(6), "base64url");
      if (buf.length < 19) return undefined;
      const [m, partId] = buf.subarray(18).toString().split("/");
      if (m !== msgId || partId === undefined) return undefined;
      return mac(msgId, partId).equals(buf.subarray(0, 18)) ? partId : undefined;
    },
  };
}

export type AttachmentIds = ReturnType<typeof createAttachmentIds>;

/**
 * Rendered payloads (with inline body data) of recently served messages. Bounded, so serving a
 * 20,000-message mailbox does not keep every body decoded twice; the small per-message facts
 * (snippet, attachment list) are kept for the message's life.
 */
const RENDER_CACHE_MAX = 4000;
const renderCache = new Map<StoredMessage, Rendered>();
const summaries = new WeakMap<StoredMessage, Pick<Rendered, "snippet" | "attachments">>();

function render(mailbox: Mailbox, msg: StoredMessage, ids: AttachmentIds): Rendered {
  const cached = renderCache.get(msg);
  if (cached) {
    renderCache.delete(msg);
    renderCache.set(msg, cached);
    return cached;
  }
  const attachments: Rendered["attachments"] = [];
  let snippetSource: { text: string; html: boolean } | undefined;
  const walk = (node: MimeNode, partId: string): MessagePartJson => {
    const part: MessagePartJson = { partId, mimeType: node.mimeType, filename: node.filename, headers: node.headers.map((h) => ({ name: h.name, value: h.value })), body: { size: 0 } };
    if (node.mimeType.startsWith("multipart/")) {
      part.parts = node.children.map((c, i) => walk(c, partId === "" ? String(i) : `${partId}.${i}`));
      return part;
    }
    const data = decodeBody(node);
    const isText = node.mimeType.startsWith("text/");
    const asAttachment = node.filename !== "" || (!isText && data.length > INLINE_NON_TEXT_MAX) || node.mimeType === "message/rfc822";
    if (asAttachment) {
      part.body = { attachmentId: ids.encode(msg.id, partId), size: data.length };
      attachments.push({ partId, filename: node.filename === "" ? null : node.filename, size: data.length });
    } else {
      part.body = data.length > 0 ? { size: data.length, data: base64urlPadded(data) } : { size: 0 };
      if (isText && node.disposition !== "attachment") {
        const html = node.mimeType === "text/html";
        if (node.mimeType === "text/plain" && (snippetSource === undefined || snippetSource.html)) snippetSource = { text: decodeCharset(data, node.params.charset), html: false };
        else if (html && snippetSource === undefined) snippetSource = { text: decodeCharset(data, node.params.charset), html: true };
      }
    }
    return part;
  };
  const payload = walk(mailbox.tree(msg), "");
  const rendered: Rendered = { payload, snippet: makeSnippet(snippetSource), attachments };
  renderCache.set(msg, rendered);
  summaries.set(msg, { snippet: rendered.snippet, attachments });
  if (renderCache.size > RENDER_CACHE_MAX) renderCache.delete(renderCache.keys().next().value as StoredMessage);
  return rendered;
}

function makeSnippet(src: { text: string; html: boolean } | undefined): string {
  if (!src) return "";
  const text = src.html ? convert(src.text.slice(0, 20_000), { wordwrap: false, selectors: [{ selector: "a", options: { ignoreHref: true } }, { selector: "img", format: "skip" }] }) : src.text.slice(0, 4000);
  const collapsed = text.replace(/\s+/g, " ").trim();
  // Gmail cuts at about 200 characters (mid-word) and HTML-escapes the result.
  return escapeHtml(collapsed.slice(0, 200));
}

function escapeHtml(s: string): string {
  return s.replace(/[&<>"']/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string);
}

/** Snippet and attachment list of a message (computed once per message). */
export function messageSummary(mailbox: Mailbox, msg: StoredMessage, ids: AttachmentIds): Pick<Rendered, "snippet" | "attachments"> {
  return summaries.get(msg) ?? render(mailbox, msg, ids);
}

function labelList(msg: StoredMessage): string[] | undefined {
  return msg.labelIds.size > 0 ? [...msg.labelIds] : undefined;
}

export function messageJson(mailbox: Mailbox, msg: StoredMessage, format: MessageFormat, ids: AttachmentIds, metadataHeaders?: string[]): Record<string, unknown> {
  const r = render(mailbox, msg, ids);
  const out: Record<string, unknown> = { id: msg.id, threadId: msg.threadId };
  const labels = labelList(msg);
  if (labels) out.labelIds = labels;
  out.snippet = r.snippet;
  if (format === "full") out.payload = r.payload;
  else if (format === "metadata") {
    const wanted = metadataHeaders && metadataHeaders.length > 0 ? new Set(metadataHeaders.map((h) => h.toLowerCase())) : undefined;
    out.payload = { mimeType: r.payload.mimeType, headers: wanted ? r.payload.headers.filter((h) => wanted.has(h.name.toLowerCase())) : r.payload.headers };
  }
  out.sizeEstimate = msg.raw.length;
  if (format === "raw") out.raw = base64urlPadded(msg.raw);
  out.historyId = String(msg.historyId);
  out.internalDate = String(msg.internalDate);
  return out;
}

/** A response body already serialised as JSON. */
export class RawJson {
  readonly text: string;
  constructor(text: string) {
    this.text = text;
  }
}

/** messages.get format=full as JSON text, splicing in the cached payload (same key order as messageJson). */
export function fullMessageJsonText(mailbox: Mailbox, msg: StoredMessage, ids: AttachmentIds): RawJson {
  const r = render(mailbox, msg, ids);
  r.payloadJson ??= JSON.stringify(r.payload);
  const labels = labelList(msg);
  const head = `{"id":"${msg.id}","threadId":"${msg.threadId}",${labels ? `"labelIds":${JSON.stringify(labels)},` : ""}"snippet":${JSON.stringify(r.snippet)},"payload":`;
  return new RawJson(`${head}${r.payloadJson},"sizeEstimate":${msg.raw.length},"historyId":"${msg.historyId}","internalDate":"${msg.internalDate}"}`);
}

/** Decoded bytes of one part, by partId, or undefined. */
export function partBytes(mailbox: Mailbox, msg: StoredMessage, partId: string): Buffer | undefined {
  let node: MimeNode | undefined = mailbox.tree(msg);
  if (partId !== "") {
    for (const idx of partId.split(".")) {
      node = node?.children[Number(idx)];
      if (!node) return undefined;
    }
  }
  return node && !node.mimeType.startsWith("multipart/") ? decodeBody(node) : undefined;
}

/** Attachment parts of a message, for q=has:attachment and the control API. */
export function attachmentsOf(mailbox: Mailbox, msg: StoredMessage, ids: AttachmentIds): Rendered["attachments"] {
  return messageSummary(mailbox, msg, ids).attachments;
}
