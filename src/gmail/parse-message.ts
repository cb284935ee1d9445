// Gmail full-format message → the row shape the sync code stores. Pure: no I/O, and the only
// error it throws is ParseError (a permanent GmailError) for structurally invalid input, so a bad
// message becomes a dead letter instead of an unknown exception in the sync loop.
//
// Choices: body text is the first text/plain leaf of the message's own tree that is not an
// attachment, else the first text/html leaf rendered with html-to-text. Gmail serves text/* body.data
// already converted to UTF-8 while the part keeps its original charset= header
// (emulator/src/charset.ts, with the recorded evidence), so body bytes are read as UTF-8; the declared charset is
// used only for bytes that cannot be UTF-8 (a server that passes bytes through), and to undo the
// mojibake Gmail makes of UTF-8 mislabelled iso-8859-1/windows-1252 (mojibake.ts). CRLF → LF, NUL
// bytes stripped (Postgres text cannot hold them). An attached message (message/rfc822, which
// Gmail serves expanded with the inner tree under `parts`) is one attachment: the walk never
// descends into it, so its body and attachments are never taken for the outer message's. A
// nameless text body that Gmail serves by reference (attachmentId, no data) is the body, fetched
// by the caller (bodyRef). Addresses are stored as "Name <addr>" (or "addr"), RFC 2047 words
// decoded. Attachments are leaves with a filename or an attachmentId, plus inline parts with a
// Content-ID.
import iconv from "iconv-lite";
import { addressParser, decodeWords } from "postal-mime";
import type { AttachmentRef } from "../attachments/types.ts";
import { ParseError } from "../errors.ts";
import { HTML_BODY_INLINE_MAX_CHARS, htmlBodyToText } from "../extract/html.ts";
import { repairMislabelledUtf8 } from "./mojibake.ts";
import type { GmailMessage } from "./port.ts";

export interface ParsedMessage {
  gmailId: string;
  threadId: string;
  historyId: string | null;
  internalDate: Date | null;
  labelIds: string[];
  fromAddress: string | null;
  toAddresses: string[];
  ccAddresses: string[];
  subject: string | null;
  messageIdHeader: string | null;
  inReplyTo: string | null;
  snippet: string | null;
  bodyText: string | null;
  /** An HTML body too long to convert here (> HTML_BODY_INLINE_MAX_CHARS): the caller converts it in an extraction child. */
  bodyHtml?: string;
  sizeEstimate: number | null;
  attachments: AttachmentRef[];
  /** The body part when Gmail served it by reference: the caller fetches it and fills bodyText. */
  bodyRef: BodyRef | null;
}

export interface BodyRef {
  partId: string;
  attachmentId: string;
  charset: string | null;
  html: boolean;
}

interface Part {
  partId?: string | null;
  mimeType?: string | null;
  filename?: string | null;
  headers?: Array<{ name?: string | null; value?: string | null }> | null;
  body?: { attachmentId?: string | null; size?: number | null; data?: string | null } | null;
  parts?: Part[] | null;
}

const NUL = /\u0000/g;

// Postgres text holds neither NUL nor invalid UTF-8: lone surrogates (from UTF-16 bodies, bad
// RFC 2047 words or JSON escapes) become U+FFFD here rather than being mangled on the way in.
function clean(s: string): string {
  return s.replace(NUL, "").toWellFormed();
}

function storableId(s: unknown): s is string {
  return typeof s === "string" && s !== "" && !s.includes("\u0000") && s.isWellFormed();
}

function header(part: Part | undefined, name: string): string | null {
  const lower = name.toLowerCase();
  const headers = part?.headers;
  if (!Array.isArray(headers)) return null;
  for (const h of headers) {
    if (typeof h?.name === "string" && h.name.toLowerCase() === lower && typeof h.value === "string") return h.value;
  }
  return null;
}

function decodeHeader(value: string | null): string | null {
  if (value === null) return null;
  let v: string;
  try {
    v = decodeWords(value);
  } catch {
    v = value;
  }
  v = clean(v).trim();
  return v === "" ? null : v;
}

function addresses(value: string | null): string[] {
  if (value === null || value.trim() === "") return [];
  const out: string[] = [];
  const push = (name: string | undefined, address: string | undefined) => {
    const n = clean(decodeHeader(name ?? "") ?? "");
    const a = clean((address ?? "").trim());
    if (a === "" && n === "") return;
    out.push(n && a ? `${n} <${a}>` : a || n);
  };
  try {
    for (const entry of addressParser(value)) {
      const group = (entry as { group?: Array<{ name?: string; address?: string }> }).group;
      if (Array.isArray(group)) for (const m of group) push(m.name, m.address);
      else push(entry.name, (entry as { address?: string }).address);
    }
  } catch {
    const raw = decodeHeader(value);
    if (raw) out.push(raw);
  }
  return out;
}

/** Content-Type → lower-cased type and its charset parameter. */
function contentType(part: Part): { type: string; charset: string | null } {
  const ct = header(part, "Content-Type");
  const type = clean(
    (typeof part.mimeType === "string" ? part.mimeType : (ct?.split(";")[0] ?? "application/octet-stream"))
      .trim()
      .toLowerCase(),
  );
  const m = ct ? /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(ct) : null;
  return { type: type || "application/octet-stream", charset: m?.[1] !== undefined ? clean(m[1].toLowerCase()) : null };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Decodes with a declared charset: WHATWG labels first (ISO-2022-JP, and iso-8859-1 read as windows-1252, as Gmail does), then iconv-lite's. */
function decodeDeclared(bytes: Buffer, charset: string | null): string {
  if (charset) {
    try {
      return new TextDecoder(charset).decode(bytes);
    } catch {
      // not a WHATWG label
    }
    if (iconv.encodingExists(charset)) return iconv.decode(bytes, charset);
  }
  return new TextDecoder("windows-1252").decode(bytes);
}

/**
 * Text bytes of a body as Gmail serves them (UTF-8 whatever the declared charset). Bytes that are
 * not valid UTF-8, or 7-bit ISO-2022 text still carrying its escape sequences, were passed through
 * unconverted: those are decoded with the declared charset. UTF-8 text that Gmail converted from a
 * windows-1252-family label it did not really have is turned back into the sender's text.
 */
export function decodeTextBytes(bytes: Buffer, charset: string | null): string {
  let text: string | undefined;
  if (!(charset?.startsWith("iso-2022") && bytes.includes(0x1b))) {
    try {
      text = utf8.decode(bytes);
    } catch {
      text = undefined;
    }
  }
  // Only UTF-8 can be Gmail's mojibake: bytes that are not UTF-8 were never converted. Raw UTF-8
  // (a body by reference, from attachments.get) is the sender's text already; the repair leaves it.
  text = text === undefined ? decodeDeclared(bytes, charset) : repairMislabelledUtf8(text, charset);
  return clean(text).replace(/\r\n?/g, "\n");
}

function decodeBody(data: string, charset: string | null): string {
  return decodeTextBytes(Buffer.from(data, "base64url"), charset);
}

/** A short HTML body as text (depth-capped, falls back to a tag strip: never throws). */
export function bodyHtmlToText(html: string): string {
  return clean(htmlBodyToText(html));
}

/**
 * A part that can be the message body: inline text data, or a nameless text part Gmail serves by
 * reference (attachmentId, no data) that is not marked as an attachment.
 */
function isBodyCandidate(part: Part): boolean {
  if (typeof part.body?.data === "string") return !isAttachment(part);
  const named = typeof part.filename === "string" && part.filename !== "";
  const disposition = header(part, "Content-Disposition")?.trim().toLowerCase() ?? "";
  return (
    !named &&
    !disposition.startsWith("attachment") &&
    typeof part.body?.attachmentId === "string" &&
    part.body.attachmentId !== ""
  );
}

function isAttachment(part: Part): boolean {
  return (
    (typeof part.filename === "string" && part.filename !== "") ||
    (typeof part.body?.attachmentId === "string" && part.body.attachmentId !== "")
  );
}

/** An attached message: one attachment, never walked into (its body is not the outer message's). */
function isAttachedMessage(part: Part): boolean {
  const type = typeof part.mimeType === "string" ? part.mimeType.toLowerCase() : "";
  return type === "message/rfc822" || type === "message/global";
}

function leaves(part: Part, out: Part[] = [], root = true): Part[] {
  if (!root && isAttachedMessage(part)) out.push(part);
  else if (Array.isArray(part.parts) && part.parts.length > 0) {
    for (const p of part.parts) if (p && typeof p === "object") leaves(p, out, false);
  } else {
    out.push(part);
  }
  return out;
}

/**
 * The forwarded message as text/plain RFC 822 bytes, rebuilt from an expanded rfc822 part that
 * carries no attachmentId (so nothing can be downloaded): its headers and body text.
 */
function rebuildAttachedMessage(part: Part): string | null {
  const inner = Array.isArray(part.parts) ? part.parts.filter((p): p is Part => !!p && typeof p === "object") : [];
  if (inner.length === 0) return null;
  const innerRoot =
    inner.length === 1 && header(inner[0], "From") !== null
      ? (inner[0] as Part)
      : { headers: part.headers ?? null, parts: inner };
  const lines: string[] = [];
  for (const name of ["From", "To", "Cc", "Date", "Subject", "Message-ID"]) {
    const v = header(innerRoot, name) ?? header(part, name);
    if (v !== null) lines.push(`${name}: ${v.replace(/[\r\n]+/g, " ")}`);
  }
  let text: string | null = null;
  let html: string | null = null;
  for (const leaf of leaves(innerRoot)) {
    if (isAttachment(leaf) || typeof leaf.body?.data !== "string") continue;
    const ct = contentType(leaf);
    if (ct.type === "text/plain" && text === null) text = decodeBody(leaf.body.data, ct.charset);
    else if (ct.type === "text/html" && html === null) html = decodeBody(leaf.body.data, ct.charset);
  }
  // A long HTML body stays HTML: the extraction child that reads this attachment converts it.
  const rawHtml = text === null && html !== null && html.length > HTML_BODY_INLINE_MAX_CHARS;
  lines.push(
    "MIME-Version: 1.0",
    `Content-Type: text/${rawHtml ? "html" : "plain"}; charset="utf-8"`,
    "Content-Transfer-Encoding: 8bit",
    "",
    text ?? (html === null ? "" : rawHtml ? html : bodyHtmlToText(html)),
  );
  return Buffer.from(lines.join("\r\n"), "utf8").toString("base64url");
}

function toRef(part: Part, ct: { type: string; charset: string | null }): AttachmentRef {
  const cid = header(part, "Content-ID");
  const size = part.body?.size;
  return {
    partId: typeof part.partId === "string" ? clean(part.partId) : "",
    filename:
      typeof part.filename === "string" && part.filename !== ""
        ? clean(decodeHeader(part.filename) ?? part.filename)
        : null,
    mimeType: ct.type,
    charset: inlineCharset(part, ct.charset),
    contentId: cid ? clean(cid.trim().replace(/^<|>$/g, "")) : null,
    size: typeof size === "number" && Number.isFinite(size) ? size : 0,
    attachmentId:
      typeof part.body?.attachmentId === "string" && part.body.attachmentId !== ""
        ? clean(part.body.attachmentId)
        : null,
    inlineData: typeof part.body?.data === "string" && part.body.data !== "" ? part.body.data : null,
  };
}

/** Inline text data came converted to UTF-8 like a body (attachments.get bytes stay as sent). */
function inlineCharset(part: Part, declared: string | null): string | null {
  const data = part.body?.data;
  if (
    typeof data !== "string" ||
    data === "" ||
    !(typeof part.mimeType === "string" && part.mimeType.toLowerCase().startsWith("text/"))
  )
    return declared;
  try {
    utf8.decode(Buffer.from(data, "base64url"));
    return "utf-8";
  } catch {
    return declared;
  }
}

export function parseGmailMessage(msg: GmailMessage): ParsedMessage {
  if (!msg || typeof msg !== "object") throw new ParseError("message is not an object");
  if (!storableId(msg.id)) throw new ParseError("message has no valid id");
  if (!storableId(msg.threadId)) throw new ParseError(`message ${msg.id} has no valid threadId`);
  const payload = msg.payload as Part | undefined | null;
  if (payload !== undefined && payload !== null && typeof payload !== "object")
    throw new ParseError(`message ${msg.id} has a malformed payload`);
  if (msg.labelIds !== undefined && msg.labelIds !== null && !Array.isArray(msg.labelIds))
    throw new ParseError(`message ${msg.id} has malformed labelIds`);

  const root = payload ?? undefined;
  const parts = root ? leaves(root) : [];

  let textPart: Part | undefined;
  let htmlPart: Part | undefined;
  for (const p of parts) {
    if (!isBodyCandidate(p)) continue;
    const { type } = contentType(p);
    if (type === "text/plain" && !textPart) textPart = p;
    else if (type === "text/html" && !htmlPart) htmlPart = p;
  }
  let bodyText: string | null = null;
  let bodyHtml: string | undefined;
  let bodyRef: BodyRef | null = null;
  const bodyPart = textPart ?? htmlPart;
  if (bodyPart?.body?.data) {
    const ct = contentType(bodyPart);
    const decoded = decodeBody(bodyPart.body.data, ct.charset);
    if (bodyPart === textPart) bodyText = decoded;
    else if (decoded.length <= HTML_BODY_INLINE_MAX_CHARS) bodyText = bodyHtmlToText(decoded);
    else bodyHtml = decoded;
  } else if (bodyPart?.body?.attachmentId) {
    const ct = contentType(bodyPart);
    bodyRef = {
      partId: typeof bodyPart.partId === "string" ? clean(bodyPart.partId) : "",
      attachmentId: clean(bodyPart.body.attachmentId),
      charset: ct.charset,
      html: bodyPart !== textPart,
    };
  }

  const attachments: AttachmentRef[] = [];
  for (const p of parts) {
    if (p === bodyPart) continue;
    const inlineWithCid = header(p, "Content-ID") !== null;
    if (isAttachedMessage(p)) {
      const ref = toRef(p, contentType(p));
      if (ref.attachmentId === null && ref.inlineData === null) ref.inlineData = rebuildAttachedMessage(p);
      attachments.push(ref);
      continue;
    }
    // An alternative body Gmail served by reference (the large HTML beside the chosen text/plain)
    // is a body, not an attachment.
    if (isBodyCandidate(p) && typeof p.body?.data !== "string" && contentType(p).type.startsWith("text/")) continue;
    if (!isAttachment(p) && !inlineWithCid) continue;
    attachments.push(toRef(p, contentType(p)));
  }

  let internalDate: Date | null = null;
  if (msg.internalDate !== undefined && msg.internalDate !== null) {
    const ms = Number(msg.internalDate);
    if (Number.isFinite(ms)) internalDate = new Date(ms);
  }

  return {
    gmailId: msg.id,
    threadId: msg.threadId,
    historyId: typeof msg.historyId === "string" && /^\d+$/.test(msg.historyId) ? msg.historyId : null,
    internalDate,
    labelIds: (msg.labelIds ?? []).filter((l): l is string => typeof l === "string").map(clean),
    fromAddress: addresses(header(root, "From"))[0] ?? null,
    toAddresses: addresses(header(root, "To")),
    ccAddresses: addresses(header(root, "Cc")),
    subject: decodeHeader(header(root, "Subject")),
    messageIdHeader: decodeHeader(header(root, "Message-ID")),
    inReplyTo: decodeHeader(header(root, "In-Reply-To")),
    snippet: typeof msg.snippet === "string" ? clean(msg.snippet) : null,
    bodyText,
    ...(bodyHtml !== undefined ? { bodyHtml } : {}),
    sizeEstimate: typeof msg.sizeEstimate === "number" ? msg.sizeEstimate : null,
    attachments,
    bodyRef,
  };
}
