// Small MIME writing helpers (RFC 2045/2047/2231/5322). The generator writes MIME itself rather
// than through nodemailer's MailComposer, which built ~400 messages/s here (20,000 would take
// ~50 s); written here, with attachment bodies base64-encoded once and spliced into every message
// that carries them, a mailbox builds at several thousand messages/s.

const ASCII_PRINTABLE = /^[\x20-\x7e]*$/;

/** RFC 2047 B-encoded words (≤ 75 chars each, never splitting a character), joined by a fold. */
export function encodeWords(text: string, fold = "\r\n "): string {
  if (ASCII_PRINTABLE.test(text)) return text;
  const words: string[] = [];
  let chunk = "";
  let chunkBytes = 0;
  for (const char of text) {
    const bytes = Buffer.byteLength(char, "utf8");
    // 45 bytes → 60 base64 chars + 12 for "=?UTF-8?B?" and "?=" = 72.
    if (chunkBytes + bytes > 45) {
      words.push(chunk);
      chunk = "";
      chunkBytes = 0;
    }
    chunk += char;
    chunkBytes += bytes;
  }
  if (chunk) words.push(chunk);
  return words.map((w) => `=?UTF-8?B?${Buffer.from(w, "utf8").toString("base64")}?=`).join(fold);
}

export function formatAddress(name: string, email: string): string {
  if (!name) return email;
  if (!ASCII_PRINTABLE.test(name)) return `${encodeWords(name, " ")} <${email}>`;
  return /[()<>[\]:;@\\,."]/.test(name) ? `"${name.replace(/["\\]/g, "\\$&")}" <${email}>` : `${name} <${email}>`;
}

const DAYS = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
const MONTHS = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"];
const two = (n: number): string => String(n).padStart(2, "0");

/** RFC 5322 date in the sender's zone: the same instant as `ms`, written with `offsetMinutes`. */
export function formatDate(ms: number, offsetMinutes: number): string {
  const local = new Date(ms + offsetMinutes * 60_000);
  const sign = offsetMinutes < 0 ? "-" : "+";
  const abs = Math.abs(offsetMinutes);
  return (
    `${DAYS[local.getUTCDay()]}, ${two(local.getUTCDate())} ${MONTHS[local.getUTCMonth()]} ${local.getUTCFullYear()} ` +
    `${two(local.getUTCHours())}:${two(local.getUTCMinutes())}:${two(local.getUTCSeconds())} ${sign}${two(Math.floor(abs / 60))}${two(abs % 60)}`
  );
}

/** Base64 in 76-character lines with CRLF, as MIME requires. */
export function base64Lines(data: Buffer): string {
  const b64 = data.toString("base64");
  if (b64.length <= 76) return b64;
  const lines = new Array<string>(Math.ceil(b64.length / 76));
  for (let i = 0; i < lines.length; i++) lines[i] = b64.slice(i * 76, i * 76 + 76);
  return lines.join("\r\n");
}

/** `name=` / `filename=` parameters; RFC 2231 and an encoded word for non-ASCII names, as Gmail writes. */
export function fileParams(filename: string): { name: string; filename: string } {
  if (ASCII_PRINTABLE.test(filename) && !/["\\]/.test(filename)) {
    return { name: `name="${filename}"`, filename: `filename="${filename}"` };
  }
  const encoded = encodeURIComponent(filename).replace(
    /['()*]/g,
    (c) => `%${c.charCodeAt(0).toString(16).toUpperCase()}`,
  );
  return { name: `name="${encodeWords(filename, " ")}"`, filename: `filename*=UTF-8''${encoded}` };
}

const HEX = "0123456789ABCDEF";

/** RFC 2045 quoted-printable of UTF-8 text with CRLF line breaks; soft breaks keep lines ≤ 76. */
export function quotedPrintable(text: string): string {
  return quotedPrintableBytes(Buffer.from(text, "utf8"));
}

/** RFC 2045 quoted-printable of bytes in any charset (CRLF pairs are line breaks). */
export function quotedPrintableBytes(bytes: Buffer): string {
  // Worst case: every byte becomes "=XX", plus a soft break ("=\r\n") every 25 bytes.
  const out = Buffer.allocUnsafe(bytes.length * 3 + Math.ceil(bytes.length / 25) * 3 + 3);
  let o = 0;
  let column = 0;
  for (let i = 0; i < bytes.length; i++) {
    const b = bytes[i]!;
    if (b === 0x0d && bytes[i + 1] === 0x0a) {
      out[o++] = 0x0d;
      out[o++] = 0x0a;
      i++;
      column = 0;
      continue;
    }
    const endsLine = i === bytes.length - 1 || (bytes[i + 1] === 0x0d && bytes[i + 2] === 0x0a);
    // Printable ASCII except "=", and spaces/tabs that do not end a line, pass through.
    const literal = (b >= 33 && b <= 126 && b !== 61) || ((b === 32 || b === 9) && !endsLine);
    const width = literal ? 1 : 3;
    if (column + width > 75) {
      out[o++] = 0x3d;
      out[o++] = 0x0d;
      out[o++] = 0x0a;
      column = 0;
    }
    if (literal) out[o++] = b;
    else {
      out[o++] = 0x3d;
      out[o++] = HEX.charCodeAt(b >> 4);
      out[o++] = HEX.charCodeAt(b & 15);
    }
    column += width;
  }
  return out.toString("latin1", 0, o);
}

/**
 * A text body part as mail clients send it: 7bit when it is short-lined ASCII, quoted-printable
 * when it is mostly ASCII, base64 otherwise (e.g. Japanese).
 */
export function textPart(contentType: string, text: string): string {
  const crlf = text.replace(/\r?\n/g, "\r\n");
  let nonAscii = 0;
  let longest = 0;
  let lineStart = 0;
  for (let i = 0; i < crlf.length; i++) {
    const c = crlf.charCodeAt(i);
    if (c === 0x0a) {
      longest = Math.max(longest, i - lineStart);
      lineStart = i + 1;
    } else if (c > 0x7e || (c < 0x20 && c !== 0x09 && c !== 0x0d)) nonAscii++;
  }
  longest = Math.max(longest, crlf.length - lineStart);
  const head = `Content-Type: ${contentType}; charset="UTF-8"\r\nContent-Transfer-Encoding: `;
  if (nonAscii === 0 && longest <= 900) return `${head}7bit\r\n\r\n${crlf}`;
  if (nonAscii * 10 < crlf.length) return `${head}quoted-printable\r\n\r\n${quotedPrintable(crlf)}`;
  return `${head}base64\r\n\r\n${base64Lines(Buffer.from(crlf, "utf8"))}`;
}

/** Joins parts under a boundary; each part is its own headers + blank line + body. */
export function multipart(subtype: string, boundary: string, parts: readonly string[]): string {
  return (
    `Content-Type: multipart/${subtype}; boundary="${boundary}"\r\n\r\n` +
    parts.map((part) => `--${boundary}\r\n${part}\r\n`).join("") +
    `--${boundary}--`
  );
}

export const escapeHtml = (text: string): string =>
  text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c] as string);

/** A text part whose bytes are already in `charset`, written with the given transfer encoding. */
export function encodedTextPart(
  contentType: string,
  charset: string,
  bytes: Buffer,
  cte: "7bit" | "quoted-printable" | "base64",
): string {
  const head = `Content-Type: ${contentType}; charset=${charset}\r\nContent-Transfer-Encoding: ${cte}\r\n\r\n`;
  if (cte === "7bit") return head + bytes.toString("latin1");
  return head + (cte === "base64" ? base64Lines(bytes) : quotedPrintableBytes(bytes));
}
