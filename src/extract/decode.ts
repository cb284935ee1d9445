// Bytes → string for text-like attachments: a BOM wins, then the declared charset (or an HTML
// <meta charset>), then valid UTF-8, then statistical detection; the BOM never reaches the text.
import chardet from "chardet";
import iconv from "iconv-lite";

export interface Decoded {
  text: string;
  encoding: string;
  /** How the encoding was chosen: bom | declared | meta | utf8 | detected | fallback. */
  source: string;
}

function bomEncoding(b: Uint8Array): { encoding: string; length: number } | null {
  if (b[0] === 0xef && b[1] === 0xbb && b[2] === 0xbf) return { encoding: "utf-8", length: 3 };
  if (b[0] === 0xff && b[1] === 0xfe) return { encoding: "utf-16le", length: 2 };
  if (b[0] === 0xfe && b[1] === 0xff) return { encoding: "utf-16be", length: 2 };
  return null;
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

function isValidUtf8(b: Uint8Array): boolean {
  try {
    utf8.decode(b);
    return true;
  } catch {
    return false;
  }
}

function usable(charset: string | null | undefined): string | null {
  if (!charset) return null;
  const c = charset
    .trim()
    .replace(/^["']|["']$/g, "")
    .toLowerCase();
  return c.length > 0 && iconv.encodingExists(c) ? c : null;
}

/** The charset an HTML document declares for itself in its first 4 KB. */
export function htmlMetaCharset(b: Uint8Array): string | null {
  const head = Buffer.from(b.buffer, b.byteOffset, Math.min(b.length, 4096)).toString("latin1");
  const m = /<meta[^>]+charset\s*=\s*["']?\s*([\w.:-]+)/i.exec(head);
  return m?.[1] ?? null;
}

export function decodeText(bytes: Uint8Array, declaredCharset: string | null, opts: { html?: boolean } = {}): Decoded {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  const bom = bomEncoding(buf);
  if (bom)
    return {
      text: iconv.decode(buf.subarray(bom.length), bom.encoding, { stripBOM: true }),
      encoding: bom.encoding,
      source: "bom",
    };

  // us-ascii is what many mailers declare by default, even for UTF-8 bodies; UTF-8 is a superset.
  let declared = usable(declaredCharset);
  if (declared === "us-ascii" || declared === "ascii") declared = "utf-8";
  if (declared)
    return { text: iconv.decode(buf, declared, { stripBOM: true }), encoding: declared, source: "declared" };

  if (opts.html) {
    const meta = usable(htmlMetaCharset(buf));
    if (meta) return { text: iconv.decode(buf, meta, { stripBOM: true }), encoding: meta, source: "meta" };
  }
  if (isValidUtf8(buf)) return { text: buf.toString("utf8"), encoding: "utf-8", source: "utf8" };

  // chardet reads the whole buffer; 64 KB is plenty to tell single-byte code pages apart.
  const detected = usable(chardet.detect(buf.subarray(0, 64 * 1024)));
  if (detected)
    return { text: iconv.decode(buf, detected, { stripBOM: true }), encoding: detected, source: "detected" };
  return { text: iconv.decode(buf, "windows-1252"), encoding: "windows-1252", source: "fallback" };
}
