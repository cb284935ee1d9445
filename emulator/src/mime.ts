// Structural MIME splitter: turns RFC 822 bytes into the part tree Gmail's `full` format shows.
// Why not postal-mime / mailparser: they return decoded content (attachments, text, html) but not
// the exact tree with each part's own raw headers and byte range, and they merge or skip parts
// (e.g. alternative bodies), so Gmail's partId numbering could not be reproduced from them.
// This splitter keeps every part, in order, with its header lines as written and its body bytes.
import { decodeText } from "./charset.ts";

export interface RawHeader {
  /** Header name as written (case kept). */
  name: string;
  /** Unfolded value: CRLF removed, following whitespace kept; RFC 2047 words decoded. */
  value: string;
}

export interface MimeNode {
  headers: RawHeader[];
  /** Lower-cased "type/subtype"; defaults follow RFC 2045/2046 (text/plain, or message/rfc822 in multipart/digest). */
  mimeType: string;
  params: Record<string, string>;
  /** Decoded filename from Content-Disposition filename or Content-Type name ("" when none). */
  filename: string;
  disposition: string | undefined;
  contentId: string | undefined;
  transferEncoding: string;
  /** Body bytes (still transfer-encoded) — a subarray of the original message, never a copy. */
  body: Buffer;
  children: MimeNode[];
}

const CRLF_CRLF = Buffer.from("\r\n\r\n");
const LF_LF = Buffer.from("\n\n");

/** Finds the blank line ending a header block; returns [headerEnd, bodyStart]. */
function splitHeaderBlock(buf: Buffer): [number, number] {
  // A part may start directly with a blank line (no headers).
  if (buf[0] === 0x0a) return [0, 1];
  if (buf[0] === 0x0d && buf[1] === 0x0a) return [0, 2];
  const crlf = buf.indexOf(CRLF_CRLF);
  const lf = buf.indexOf(LF_LF);
  if (crlf === -1 && lf === -1) return [buf.length, buf.length];
  if (crlf !== -1 && (lf === -1 || crlf <= lf + 1)) return [crlf, crlf + 4];
  return [lf, lf + 2];
}

/** Unfolds and splits a header block into name/value pairs, keeping order and duplicates. */
export function parseHeaderBlock(block: string): RawHeader[] {
  const out: RawHeader[] = [];
  const lines = block.split(/\r?\n/);
  let current: string | undefined;
  const flush = () => {
    if (current === undefined) return;
    const colon = current.indexOf(":");
    if (colon > 0) {
      out.push({
        name: current.slice(0, colon).trim(),
        value: decodeWords(
          current
            .slice(colon + 1)
            .replace(/^[ \t]+/, "")
            .replace(/[ \t]+$/, ""),
        ),
      });
    }
    current = undefined;
  };
  for (const line of lines) {
    if (line === "") continue;
    if ((line[0] === " " || line[0] === "\t") && current !== undefined) current += line;
    else {
      flush();
      current = line;
    }
  }
  flush();
  return out;
}

/** Decodes RFC 2047 encoded-words; whitespace between adjacent encoded-words is dropped. */
export function decodeWords(value: string): string {
  if (!value.includes("=?")) return value;
  return value
    .replace(/(=\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)\s+(?==\?[^?\s]+\?[BbQq]\?[^?\s]*\?=)/g, "$1")
    .replace(
      /=\?([^?\s*]+)(?:\*[^?\s]*)?\?([BbQq])\?([^?\s]*)\?=/g,
      (whole, charset: string, enc: string, text: string) => {
        const b = enc.toUpperCase() === "B";
        if (b && !/^[A-Za-z0-9+/]*={0,2}$/.test(text)) return whole;
        try {
          const bytes = b ? Buffer.from(text, "base64") : decodeQ(text);
          return decodeCharset(bytes, charset);
        } catch {
          return whole;
        }
      },
    );
}

function decodeQ(text: string): Buffer {
  const bytes: number[] = [];
  for (let i = 0; i < text.length; i++) {
    const c = text[i] as string;
    if (c === "_") bytes.push(0x20);
    else if (c === "=" && /^[0-9A-Fa-f]{2}$/.test(text.slice(i + 1, i + 3))) {
      bytes.push(parseInt(text.slice(i + 1, i + 3), 16));
      i += 2;
    } else bytes.push(c.charCodeAt(0) & 0xff);
  }
  return Buffer.from(bytes);
}

/**
 * Decodes header bytes (RFC 2047 words, RFC 2231 parameters) by their charset with the rules Gmail
 * applies to bodies (src/charset.ts): an iso-8859-1 word is read as windows-1252, as the
 * Subject of gmail-real-samples/messages_get_full_iso8859_html_converted.json shows ("â€™").
 */
export function decodeCharset(bytes: Buffer, charset: string | undefined): string {
  return decodeText(bytes, charset ?? "utf-8");
}

/** Parses `type/subtype; a=b; c="d"` (with RFC 2231 continuations and charset'lang'value). */
export function parseStructuredHeader(value: string): { value: string; params: Record<string, string> } {
  const parts: string[] = [];
  let cur = "";
  let quoted = false;
  for (let i = 0; i < value.length; i++) {
    const c = value[i] as string;
    if (c === '"') quoted = !quoted;
    if (c === "\\" && quoted) {
      cur += value[i + 1] ?? "";
      i++;
      continue;
    }
    if (c === ";" && !quoted) {
      parts.push(cur);
      cur = "";
    } else cur += c;
  }
  parts.push(cur);
  const main = (parts.shift() ?? "").trim().toLowerCase();
  const raw: Record<string, string> = {};
  for (const p of parts) {
    const eq = p.indexOf("=");
    if (eq <= 0) continue;
    const k = p.slice(0, eq).trim().toLowerCase();
    let v = p.slice(eq + 1).trim();
    if (v.startsWith('"') && v.endsWith('"') && v.length >= 2) v = v.slice(1, -1);
    raw[k] = v;
  }
  // RFC 2231: name*0*=utf-8''a, name*1*=b → name; name*=utf-8''x → name.
  const params: Record<string, string> = {};
  const continued = new Map<string, Array<{ n: number; v: string; enc: boolean }>>();
  for (const [k, v] of Object.entries(raw)) {
    const m = /^([^*]+)\*(\d+)?(\*)?$/.exec(k);
    if (!m) {
      params[k] = decodeWords(v);
      continue;
    }
    const list = continued.get(m[1] as string) ?? [];
    list.push({ n: m[2] !== undefined ? Number(m[2]) : 0, v, enc: m[3] === "*" || m[2] === undefined });
    continued.set(m[1] as string, list);
  }
  for (const [k, list] of continued) {
    list.sort((a, b) => a.n - b.n);
    let charset = "utf-8";
    const bytes: Buffer[] = [];
    list.forEach((seg, i) => {
      let v = seg.v;
      if (seg.enc && i === 0) {
        const m = /^([^']*)'[^']*'(.*)$/.exec(v);
        if (m) {
          charset = m[1] || "utf-8";
          v = m[2] as string;
        }
      }
      bytes.push(
        seg.enc
          ? Buffer.from(
              v.replace(/%([0-9A-Fa-f]{2})/g, (_, h: string) => String.fromCharCode(parseInt(h, 16))),
              "latin1",
            )
          : Buffer.from(v, "utf8"),
      );
    });
    params[k] = decodeCharset(Buffer.concat(bytes), charset);
  }
  return { value: main, params };
}

function header(headers: RawHeader[], name: string): string | undefined {
  const lower = name.toLowerCase();
  for (const h of headers) if (h.name.toLowerCase() === lower) return h.value;
  return undefined;
}

/** Splits a multipart body at its boundary lines (CRLF or LF); preamble and epilogue are dropped. */
export function splitMultipart(body: Buffer, boundary: string): Buffer[] {
  const delim = Buffer.from(`--${boundary}`);
  const parts: Buffer[] = [];
  let start = -1;
  let pos = 0;
  while (pos <= body.length) {
    const idx = body.indexOf(delim, pos);
    if (idx === -1) break;
    const atLineStart = idx === 0 || body[idx - 1] === 0x0a;
    if (!atLineStart) {
      pos = idx + delim.length;
      continue;
    }
    const after = idx + delim.length;
    const closing = body[after] === 0x2d && body[after + 1] === 0x2d;
    if (start !== -1) {
      // The line break before the delimiter belongs to the delimiter (RFC 2046 §5.1.1).
      let end = idx;
      if (end > start && body[end - 1] === 0x0a) end--;
      if (end > start && body[end - 1] === 0x0d) end--;
      parts.push(body.subarray(start, end));
    }
    if (closing) return parts;
    const eol = body.indexOf(0x0a, after);
    if (eol === -1) return parts;
    start = eol + 1;
    pos = start;
  }
  // No closing delimiter: keep what follows the last one as a part.
  if (start !== -1 && start <= body.length) parts.push(body.subarray(start));
  return parts;
}

/** Deeper multipart nesting is kept as an opaque leaf (no real mail nests this far; it bounds recursion). */
const MAX_DEPTH = 64;

export function parseMime(buf: Buffer, parentType = "", depth = 0): MimeNode {
  const [headerEnd, bodyStart] = splitHeaderBlock(buf);
  const headers = parseHeaderBlock(buf.subarray(0, headerEnd).toString("utf8"));
  const ct = header(headers, "content-type");
  const parsedCt =
    ct !== undefined
      ? parseStructuredHeader(ct)
      : { value: parentType === "multipart/digest" ? "message/rfc822" : "text/plain", params: {} };
  let mimeType = parsedCt.value.includes("/") ? parsedCt.value : "text/plain";
  const cd = header(headers, "content-disposition");
  const parsedCd = cd !== undefined ? parseStructuredHeader(cd) : undefined;
  const filename = parsedCd?.params.filename ?? parsedCt.params.name ?? "";
  const cid = header(headers, "content-id");
  const body = buf.subarray(Math.min(bodyStart, buf.length));
  const children: MimeNode[] = [];
  const boundary = parsedCt.params.boundary;
  if (mimeType.startsWith("multipart/")) {
    if (boundary && depth < MAX_DEPTH)
      for (const part of splitMultipart(body, boundary)) children.push(parseMime(part, mimeType, depth + 1));
    else mimeType = boundary ? "application/octet-stream" : "text/plain";
  }
  return {
    headers,
    mimeType,
    params: parsedCt.params,
    filename,
    disposition: parsedCd?.value,
    contentId: cid?.replace(/^<|>$/g, ""),
    transferEncoding: (header(headers, "content-transfer-encoding") ?? "7bit").trim().toLowerCase(),
    body,
    children,
  };
}

const attached = new WeakMap<MimeNode, MimeNode>();

/** The message inside a message/rfc822 part, parsed on first need and kept as long as the part. */
export function attachedMessage(node: MimeNode): MimeNode {
  let inner = attached.get(node);
  if (!inner) {
    inner = parseMime(decodeBody(node));
    attached.set(node, inner);
  }
  return inner;
}

/** Undoes the Content-Transfer-Encoding; charset is not converted and line ends are kept (as Gmail does). */
export function decodeBody(node: MimeNode): Buffer {
  if (node.transferEncoding === "base64")
    return Buffer.from(node.body.toString("latin1").replace(/[^A-Za-z0-9+/=]/g, ""), "base64");
  if (node.transferEncoding === "quoted-printable") return decodeQuotedPrintable(node.body);
  return node.body;
}

function decodeQuotedPrintable(input: Buffer): Buffer {
  const out = Buffer.allocUnsafe(input.length);
  let o = 0;
  for (let i = 0; i < input.length; i++) {
    const c = input[i] as number;
    if (c !== 0x3d) {
      out[o++] = c;
      continue;
    }
    const a = input[i + 1];
    const b = input[i + 2];
    if (a === 0x0d && b === 0x0a) {
      i += 2; // soft line break
    } else if (a === 0x0a) {
      i += 1;
    } else if (a !== undefined && b !== undefined && isHex(a) && isHex(b)) {
      out[o++] = parseInt(String.fromCharCode(a, b), 16);
      i += 2;
    } else out[o++] = c;
  }
  return out.subarray(0, o);
}

function isHex(c: number): boolean {
  return (c >= 0x30 && c <= 0x39) || (c >= 0x41 && c <= 0x46) || (c >= 0x61 && c <= 0x66);
}

export { header as findHeader };
