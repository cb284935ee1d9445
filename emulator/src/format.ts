// Renders stored messages as Gmail's Message JSON (formats minimal | metadata | full | raw),
// deriving the payload tree from the RFC 822 bytes the way Gmail does: root partId "", children
// "0", "1", grandchildren "1.0"…; filename on every part; multipart bodies {size: 0}; body.data
// (base64url, padded) of transfer-decoded bytes inline for text and small unnamed parts;
// body.attachmentId for named or large parts (gmail-real-samples/
// messages_get_full_multipart_mixed_attachments_2024-10.json). Each run-time setting below turns
// one of Gmail's habits off by name (src/state.ts):
// - charsetConversion: text/* body.data is served as UTF-8 converted from the declared charset by
//   the WHATWG rules (iso-8859-1 read as windows-1252, a mislabelled body converted by its label
//   into mojibake, as Gmail does: src/charset.ts), the Content-Type header keeps its
//   charset= and body.size stays the original byte count
//   (gmail-real-samples/messages_get_full_iso8859_html_converted.json).
// - rfc822Expanded: a message/rfc822 part keeps body.attachmentId (the whole .eml) and carries the
//   attached message's tree under `parts`: one child, the inner message's root, numbered "<id>.0",
//   with the inner message's headers; its children "<id>.0.0"… — the IMAP-like form independent
//   clients' fixtures model (gmail-real-samples/messages_get_rfc822_expanded_evidence.txt).
// - bodyByReferenceBytes: a nameless text part above that size comes with body.attachmentId and no
//   data; attachments.get of it returns its bytes as sent (not converted), like any attachment.
// - attachmentIdsVary: attachmentIds differ on every fetch (the payload text is cached with holes
//   the fresh ids fill in: src/json-template.ts).
import { convert } from "html-to-text";
import { createAttachmentIds, type AttachmentIds } from "./attachment-ids.ts";
import { decodeText, toUtf8 } from "./charset.ts";
import { fill, Slot, Spliced, template, type Template } from "./json-template.ts";
import type { Mailbox, StoredMessage } from "./mailbox.ts";
import { attachedMessage, decodeBody, type MimeNode } from "./mime.ts";
import type { Settings } from "./state.ts";

export { createAttachmentIds, type AttachmentIds };

/** Unnamed non-text parts up to this size are sent inline; larger ones get an attachmentId. */
const INLINE_NON_TEXT_MAX = 4096;
/** Attached messages nested deeper than this are served as leaves (it bounds recursion). */
const MAX_ATTACHED_DEPTH = 16;
/** Bytes of a text part read for the snippet (~200 characters are kept). */
const SNIPPET_BYTES = 64 * 1024;

export type MessageFormat = "minimal" | "metadata" | "full" | "raw";

/** A payload part (MessagePart) as cached: attachmentIds are slots filled per serve. */
interface PartNode {
  partId: string;
  mimeType: string;
  filename: string;
  headers: Array<{ name: string; value: string }>;
  body: { attachmentId?: Slot; size: number; data?: string };
  parts?: PartNode[];
}

/** What rendering needs from the emulator's state (EmulatorState has both). */
export interface RenderState {
  attachmentIds: AttachmentIds;
  settings: Pick<Settings, "charsetConversion" | "rfc822Expanded" | "bodyByReferenceBytes" | "attachmentIdsVary">;
}

/** The ground truth of a message: its snippet and the attachments a correct sync engine stores. */
export interface Summary {
  snippet: string;
  /**
   * The message's own attachments (partId, filename or null, decoded size). An attached message
   * (message/rfc822) is ONE attachment, its .eml: the parts inside it, although Gmail serves them
   * (and attachments.get answers for them), are the attached message's, not this message's. A text
   * body served by reference (bodyByReferenceBytes) is a body, not an attachment.
   */
  attachments: Array<{ partId: string; filename: string | null; size: number }>;
}

interface Rendered {
  /** The rendering settings this payload was made with. */
  sig: string;
  payload: PartNode;
  /** Payload templates by "c" (compact, any level) or "p<level>" (pretty). */
  templates: Map<string, Template>;
}

export function base64urlPadded(buf: Buffer): string {
  const s = buf.toString("base64url");
  return s + "=".repeat((4 - (s.length % 4)) % 4);
}

function childId(partId: string, i: number): string {
  return partId === "" ? String(i) : `${partId}.${i}`;
}

/**
 * Rendered payloads of recently served messages. Bounded, so serving a 20,000-message mailbox
 * does not keep every body decoded twice; the small per-message facts (snippet, attachment list)
 * are kept for the message's life.
 */
const RENDER_CACHE_MAX = 4000;
const renderCache = new Map<StoredMessage, Rendered>();
const summaries = new WeakMap<StoredMessage, Summary>();

function settingsSig(s: RenderState["settings"]): string {
  return `${s.charsetConversion ? 1 : 0}${s.rfc822Expanded ? 1 : 0}${s.bodyByReferenceBytes}`;
}

/** Collects the snippet source and the attachment list while a tree is walked. */
class SummaryCollector {
  attachments: Summary["attachments"] = [];
  private source: { node: MimeNode; data: Buffer; html: boolean } | undefined;

  attachment(partId: string, node: MimeNode, size: number): void {
    this.attachments.push({ partId, filename: node.filename === "" ? null : node.filename, size });
  }

  /** A body text part of the message itself: the first text/plain, else the first text/html. */
  text(node: MimeNode, data: Buffer): void {
    if (node.mimeType === "text/plain" && (this.source === undefined || this.source.html))
      this.source = { node, data, html: false };
    else if (node.mimeType === "text/html" && this.source === undefined) this.source = { node, data, html: true };
  }

  done(): Summary {
    const src = this.source;
    // The snippet is Gmail's own reading of the body: decoded text whatever the serving settings.
    const text = src ? decodeText(src.data.subarray(0, SNIPPET_BYTES), src.node.params.charset) : "";
    return { snippet: makeSnippet(text, src?.html ?? false), attachments: this.attachments };
  }
}

/**
 * Walks a message tree. With `settings`, builds the payload as served; without, only classifies
 * parts for the summary (no body is encoded). The summary never looks inside attached messages.
 */
function walkTree(
  root: MimeNode,
  settings: RenderState["settings"] | undefined,
  ids: AttachmentIds | undefined,
  msgId: string,
  summary: SummaryCollector | undefined,
): PartNode {
  const slot = (partId: string) => new Slot(ids ? ids.encoder(msgId, partId) : () => "");
  const walk = (node: MimeNode, partId: string, attachedDepth: number): PartNode => {
    const part: PartNode = {
      partId,
      mimeType: node.mimeType,
      filename: node.filename,
      headers: node.headers.map((h) => ({ name: h.name, value: h.value })),
      body: { size: 0 },
    };
    const inAttached = attachedDepth > 0;
    if (node.mimeType.startsWith("multipart/")) {
      part.parts = node.children.map((c, i) => walk(c, childId(partId, i), attachedDepth));
      return part;
    }
    const data = decodeBody(node);
    if (node.mimeType === "message/rfc822") {
      if (!inAttached) summary?.attachment(partId, node, data.length);
      if (!settings) return part;
      part.body = { attachmentId: slot(partId), size: data.length };
      if (settings.rfc822Expanded && attachedDepth < MAX_ATTACHED_DEPTH)
        part.parts = [walk(attachedMessage(node), childId(partId, 0), attachedDepth + 1)];
      return part;
    }
    const isText = node.mimeType.startsWith("text/");
    if (node.filename !== "" || (!isText && data.length > INLINE_NON_TEXT_MAX)) {
      if (!inAttached) summary?.attachment(partId, node, data.length);
      if (settings) part.body = { attachmentId: slot(partId), size: data.length };
      return part;
    }
    if (isText && !inAttached && node.disposition !== "attachment") summary?.text(node, data);
    if (!settings) return part;
    if (isText && settings.bodyByReferenceBytes > 0 && data.length > settings.bodyByReferenceBytes) {
      part.body = { attachmentId: slot(partId), size: data.length };
      return part;
    }
    const served = isText && settings.charsetConversion ? toUtf8(data, node.params.charset) : data;
    if (data.length > 0) part.body = { size: data.length, data: base64urlPadded(served) };
    return part;
  };
  return walk(root, "", 0);
}

function render(mailbox: Mailbox, msg: StoredMessage, state: RenderState): Rendered {
  const sig = settingsSig(state.settings);
  const cached = renderCache.get(msg);
  if (cached && cached.sig === sig) {
    renderCache.delete(msg);
    renderCache.set(msg, cached);
    return cached;
  }
  const collector = summaries.has(msg) ? undefined : new SummaryCollector();
  const payload = walkTree(mailbox.tree(msg), state.settings, state.attachmentIds, msg.id, collector);
  if (collector) summaries.set(msg, collector.done());
  const rendered: Rendered = { sig, payload, templates: new Map() };
  renderCache.delete(msg);
  renderCache.set(msg, rendered);
  if (renderCache.size > RENDER_CACHE_MAX) renderCache.delete(renderCache.keys().next().value as StoredMessage);
  return rendered;
}

function payloadTemplate(r: Rendered, pretty: boolean, level: number): Template {
  const key = pretty ? `p${level}` : "c";
  let t = r.templates.get(key);
  if (!t) {
    t = template(r.payload, pretty, level);
    r.templates.set(key, t);
  }
  return t;
}

function makeSnippet(text: string, html: boolean): string {
  if (text === "") return "";
  const plain = html
    ? convert(text.slice(0, 20_000), {
        wordwrap: false,
        selectors: [
          { selector: "a", options: { ignoreHref: true } },
          { selector: "img", format: "skip" },
        ],
      })
    : text.slice(0, 4000);
  const collapsed = plain.replace(/\s+/g, " ").trim();
  // Gmail cuts at about 200 characters (mid-word) and HTML-escapes the result.
  return escapeHtml(collapsed.slice(0, 200));
}

function escapeHtml(s: string): string {
  return s.replace(
    /[&<>"']/g,
    (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c] as string,
  );
}

/** Snippet and attachment list of a message (computed once per message, whatever the settings). */
export function messageSummary(mailbox: Mailbox, msg: StoredMessage, _ids?: AttachmentIds): Summary {
  let s = summaries.get(msg);
  if (!s) {
    const collector = new SummaryCollector();
    walkTree(mailbox.tree(msg), undefined, undefined, msg.id, collector);
    s = collector.done();
    summaries.set(msg, s);
  }
  return s;
}

/** Attachment parts of a message, for q=has:attachment and the control API's ground truth. */
export function attachmentsOf(mailbox: Mailbox, msg: StoredMessage, _ids?: AttachmentIds): Summary["attachments"] {
  return messageSummary(mailbox, msg).attachments;
}

function labelList(msg: StoredMessage): string[] | undefined {
  return msg.labelIds.size > 0 ? [...msg.labelIds] : undefined;
}

/**
 * The Message resource as a value for the template writer, in Gmail's key order. minimal is
 * {id, threadId, labelIds, payload: {partId: ""}, sizeEstimate, historyId, internalDate} with no
 * snippet (gmail-real-samples/messages_get_minimal.json, threads_get_minimal.json); metadata's
 * payload is {mimeType, headers} (messages_get_metadata_*.json).
 */
function messageValue(
  mailbox: Mailbox,
  msg: StoredMessage,
  format: MessageFormat,
  state: RenderState,
  metadataHeaders: string[] | undefined,
): Record<string, unknown> {
  const out: Record<string, unknown> = { id: msg.id, threadId: msg.threadId, labelIds: labelList(msg) };
  if (format === "minimal") out.payload = { partId: "" };
  else {
    out.snippet = messageSummary(mailbox, msg).snippet;
    if (format === "full") {
      const r = render(mailbox, msg, state);
      out.payload = new Spliced((pretty, level) => payloadTemplate(r, pretty, level));
    } else if (format === "metadata") {
      const root = mailbox.tree(msg);
      const wanted =
        metadataHeaders && metadataHeaders.length > 0
          ? new Set(metadataHeaders.map((h) => h.toLowerCase()))
          : undefined;
      out.payload = {
        mimeType: root.mimeType,
        headers: (wanted ? root.headers.filter((h) => wanted.has(h.name.toLowerCase())) : root.headers).map((h) => ({
          name: h.name,
          value: h.value,
        })),
      };
    }
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

function nonceFor(state: RenderState): Buffer | undefined {
  return state.settings.attachmentIdsVary ? state.attachmentIds.nonce() : undefined;
}

/**
 * messages.get as JSON text (pretty as gmailJson writes it, or compact), with the full payload
 * spliced in from the render cache and this fetch's attachmentIds filled in.
 */
export function messageJsonText(
  mailbox: Mailbox,
  msg: StoredMessage,
  format: MessageFormat,
  state: RenderState,
  pretty: boolean,
  metadataHeaders?: string[],
): RawJson {
  return new RawJson(
    fill(template(messageValue(mailbox, msg, format, state, metadataHeaders), pretty), nonceFor(state)),
  );
}

/** threads.get as JSON text: {id, historyId, messages}, every message rendered as messages.get would. */
export function threadJsonText(
  mailbox: Mailbox,
  threadId: string,
  members: StoredMessage[],
  format: Exclude<MessageFormat, "raw">,
  state: RenderState,
  pretty: boolean,
  metadataHeaders?: string[],
): RawJson {
  const value = {
    id: threadId,
    historyId: String(Math.max(...members.map((m) => m.historyId))),
    messages: members.map((m) => messageValue(mailbox, m, format, state, metadataHeaders)),
  };
  return new RawJson(fill(template(value, pretty), nonceFor(state)));
}

/** The node a partId names (walking into attached messages), or undefined. */
function nodeAt(mailbox: Mailbox, msg: StoredMessage, partId: string): MimeNode | undefined {
  let node: MimeNode | undefined = mailbox.tree(msg);
  if (partId === "") return node;
  let attachedDepth = 0;
  for (const idx of partId.split(".")) {
    if (!node || !/^\d+$/.test(idx)) return undefined;
    if (node.mimeType === "message/rfc822") {
      if (idx !== "0" || ++attachedDepth > MAX_ATTACHED_DEPTH) return undefined;
      node = attachedMessage(node);
    } else node = node.children[Number(idx)];
  }
  return node;
}

/**
 * Decoded bytes of one part, by partId, as attachments.get serves them: transfer-decoded and
 * otherwise as sent (no charset conversion: attachments, and bodies served by reference, are
 * bytes). Parts inside attached messages are reachable ("1.0.1"); a message/rfc822 part gives
 * the whole .eml.
 */
export function partBytes(mailbox: Mailbox, msg: StoredMessage, partId: string): Buffer | undefined {
  const node = nodeAt(mailbox, msg, partId);
  return node && !node.mimeType.startsWith("multipart/") ? decodeBody(node) : undefined;
}
