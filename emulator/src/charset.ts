// Text decoding as Gmail does it when it serves text/* body.data: the declared charset is trusted
// and read with the WHATWG Encoding Standard's label table, so iso-8859-1, latin1 and us-ascii are
// read as windows-1252 (0x80 → €, 0x92 → ’), gb2312 as GBK, ks_c_5601-1987 as EUC-KR.
// Evidence (gmail-real-samples/messages_get_full_iso8859_html_converted.json): a text/html part
// labelled iso-8859-1 is served as UTF-8 that is the windows-1252 reading of its bytes — including
// bytes that were really UTF-8 (its "Stakeholdersâ€™" is U+2019 sent as UTF-8 and read per the
// label), so Gmail does not detect a mislabelled body: it converts by the label, mojibake and all.
// Node's TextDecoder (full ICU) implements the WHATWG table, ISO-2022-JP included; iconv-lite
// covers labels outside it (utf-7, cp866 aliases…).
import { isAscii, isUtf8 } from "node:buffer";
import { TextDecoder } from "node:util";
import iconv from "iconv-lite";

const decoders = new Map<string, TextDecoder | null>();

/** A TextDecoder for a WHATWG label, or null when the label is not one (cached either way). */
function whatwg(label: string): TextDecoder | null {
  let d = decoders.get(label);
  if (d === undefined) {
    try {
      d = new TextDecoder(label);
    } catch {
      d = null;
    }
    decoders.set(label, d);
  }
  return d;
}

const windows1252 = new TextDecoder("windows-1252");

function normalizeLabel(charset: string | undefined): string {
  return (charset ?? "").trim().replace(/^"|"$/g, "").toLowerCase();
}

/** The WHATWG encoding a charset label names ("iso-8859-1" → "windows-1252"), or null when it names none. */
export function whatwgEncoding(charset: string | undefined): string | null {
  const label = normalizeLabel(charset);
  return label === "" ? null : (whatwg(label)?.encoding ?? null);
}

/**
 * Decodes text bytes by their declared charset. No charset, or one neither WHATWG nor iconv-lite
 * knows (Gmail's handling of these is not recorded): UTF-8 when the bytes are valid UTF-8 (what
 * an unlabelled modern body almost always is), else windows-1252 — so the result is always text,
 * as Gmail's "always normalizes body.data to UTF-8" (openclaw/gogcli#446) requires.
 */
export function decodeText(bytes: Buffer, charset: string | undefined): string {
  const label = normalizeLabel(charset);
  if (label === "utf-8" || label === "utf8") return bytes.toString("utf8");
  if (label !== "") {
    const d = whatwg(label);
    if (d) return d.decode(bytes);
    if (iconv.encodingExists(label)) return iconv.decode(bytes, label);
  }
  return isUtf8(bytes) ? bytes.toString("utf8") : windows1252.decode(bytes);
}

/**
 * The UTF-8 bytes Gmail serves for a text part: `bytes` converted from their declared charset.
 * Returns `bytes` itself when they are already what would be served (ASCII under any ASCII-based
 * label, or valid UTF-8 declared UTF-8), so most bodies cost one scan and no copy.
 */
export function toUtf8(bytes: Buffer, charset: string | undefined): Buffer {
  const label = normalizeLabel(charset);
  if (!asciiMayNotMeanAscii(label) && isAscii(bytes)) return bytes;
  if ((label === "" || label === "utf-8" || label === "utf8") && isUtf8(bytes)) return bytes;
  return Buffer.from(decodeText(bytes, charset), "utf8");
}

/** Labels under which ASCII bytes need not mean ASCII text (7-bit ISO-2022 escapes, UTF-16/32, UTF-7, HZ). */
function asciiMayNotMeanAscii(label: string): boolean {
  return (
    label.startsWith("iso-2022") ||
    label.startsWith("utf-16") ||
    label.startsWith("utf-32") ||
    label.startsWith("ucs-") ||
    label === "utf-7" ||
    label === "hz-gb-2312"
  );
}
