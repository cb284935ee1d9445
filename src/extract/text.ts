// text/plain, text/csv, text/markdown, text/calendar...: decoded with the declared charset (or a
// detected one), BOM removed, then the common hygiene.
import { decodeText } from "./decode.ts";
import { cleanText } from "./hygiene.ts";
import type { ExtractLimits, ExtractOutcome } from "./protocol.ts";

export function extractText(
  bytes: Uint8Array,
  charset: string | null,
  detectedType: string,
  limits: ExtractLimits,
): ExtractOutcome {
  // Decoding more than ~4 bytes per kept byte of text is wasted work: the cap cuts it anyway.
  const budget = limits.maxTextBytes * 4 + 4;
  const cut = bytes.length > budget;
  const decoded = decodeText(cut ? bytes.subarray(0, budget) : bytes, charset);
  const clean = cleanText(decoded.text, limits.maxTextBytes);
  return {
    text: clean.text,
    textTruncated: clean.truncated || cut,
    detectedType,
    extractor: "text",
    extractorVersion: null,
    skippedReason: null,
    details: { encoding: decoded.encoding, encoding_source: decoded.source },
  };
}
