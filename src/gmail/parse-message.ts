// Gmail full-format message → the row shape the sync code stores. Pure: no I/O, and the only
// error it throws is ParseError (a permanent GmailError) for structurally invalid input, so a bad
// message becomes a dead letter instead of an unknown exception in the sync loop.
//
// Choices: body text is the first text/plain leaf that is not an attachment, else the first
// text/html leaf rendered with html-to-text; bytes are decoded with the part's charset (iconv-lite,
// UTF-8 when unknown), CRLF → LF, NUL bytes stripped (Postgres text cannot hold them). Addresses are
// stored as "Name <addr>" (or "addr"), RFC 2047 words decoded. Attachments are leaves with a
// filename or an attachmentId, plus inline parts with a Content-ID.
import { convert as htmlToText } from "html-to-text";
import iconv from "iconv-lite";
import { addressParser, decodeWords } from "postal-mime";
import type { AttachmentRef } from "../attachments/types.ts";
import { GmailError } from "../errors.ts";
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
  sizeEstimate: number | null;
  attachments: AttachmentRef[];
}

export class ParseError extends GmailError {
  override name = "ParseError";
  constructor(message: string) {
    super("permanent", message, { reason: "unparsable" });
  }
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
  const type = clean((typeof part.mimeType === "string" ? part.mimeType : (ct?.split(";")[0] ?? "application/octet-stream")).trim().toLowerCase());
  const m = ct ? /;\s*charset\s*=\s*"?([^";\s]+)"?/i.exec(ct) : null;
  return { type: type || "application/octet-stream", charset: m?.[1] !== undefined ? clean(m[1].toLowerCase()) : null };
}

function decodeBody(data: string, charset: string | null): string {
  const bytes = Buffer.from(data, "base64url");
  const cs = charset && iconv.encodingExists(charset) ? charset : "utf-8";
  return clean(iconv.decode(bytes, cs)).replace(/\r\n?/g, "\n");
}

function isAttachment(part: Part): boolean {
  return (typeof part.filename === "string" && part.filename !== "") || (typeof part.body?.attachmentId === "string" && part.body.attachmentId !== "");
}

function leaves(part: Part, out: Part[] = []): Part[] {
  if (Array.isArray(part.parts) && part.parts.length > 0) {
    for (const p of part.parts) if (p && typeof p === "object") leaves(p, out);
  } else {
    out.push(part);
  }
  return out;
}

function toRef(part: Part, ct: { type: string; charset: string | null }): AttachmentRef {
  const cid = header(part, "Content-ID");
  const size = part.body?.size;
  return {
    partId: typeof part.partId === "string" ? clean(part.partId) : "",
    filename: typeof part.filename === "string" && part.filename !== "" ? clean(decodeHeader(part.filename) ?? part.filename) : null,
    mimeType: ct.type,
    charset: ct.charset,
    contentId: cid ? clean(cid.trim().replace(/^<|>$/g, "")) : null,
    size: typeof size === "number" && Number.isFinite(size) ? size : 0,
    attachmentId: typeof part.body?.attachmentId === "string" && part.body.attachmentId !== "" ? clean(part.body.attachmentId) : null,
    inlineData: typeof part.body?.data === "string" && part.body.data !== "" ? part.body.data : null,
  };
}

export function parseGmailMessage(msg: GmailMessage): ParsedMessage {
  if (!msg || typeof msg !== "object") throw new ParseError("message is not an object");
  if (!storableId(msg.id)) throw new ParseError("message has no valid id");
  if (!storableId(msg.threadId)) throw new ParseError(`message ${msg.id} has no valid threadId`);
  const payload = msg.payload as Part | undefined | null;
  if (payload !== undefined && payload !== null && typeof payload !== "object") throw new ParseError(`message ${msg.id} has a malformed payload`);
  if (msg.labelIds !== undefined && msg.labelIds !== null && !Array.isArray(msg.labelIds)) throw new ParseError(`message ${msg.id} has malformed labelIds`);

  const root = payload ?? undefined;
  const parts = root ? leaves(root) : [];

  let textPart: Part | undefined;
  let htmlPart: Part | undefined;
  for (const p of parts) {
    if (isAttachment(p) || typeof p.body?.data !== "string") continue;
    const { type } = contentType(p);
    if (type === "text/plain" && !textPart) textPart = p;
    else if (type === "text/html" && !htmlPart) htmlPart = p;
  }
  let bodyText: string | null = null;
  const bodyPart = textPart ?? htmlPart;
  if (bodyPart?.body?.data) {
    const ct = contentType(bodyPart);
    const decoded = decodeBody(bodyPart.body.data, ct.charset);
    bodyText = bodyPart === textPart ? decoded : clean(htmlToText(decoded, { wordwrap: false, selectors: [{ selector: "img", format: "skip" }] }));
  }

  const attachments: AttachmentRef[] = [];
  for (const p of parts) {
    if (p === bodyPart) continue;
    const inlineWithCid = header(p, "Content-ID") !== null;
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
    sizeEstimate: typeof msg.sizeEstimate === "number" ? msg.sizeEstimate : null,
    attachments,
  };
}
