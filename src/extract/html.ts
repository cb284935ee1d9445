// HTML → readable text with html-to-text (HTML attachments and mammoth's DOCX output). Scripts,
// styles and images are dropped; links keep their text only; headings keep their case.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import { compile, type HtmlToTextOptions } from "html-to-text";
import { decodeText } from "./decode.ts";
import { cleanText } from "./hygiene.ts";
import type { ExtractLimits, ExtractOutcome } from "./protocol.ts";

const require = createRequire(import.meta.url);
export const htmlToTextVersion = (
  JSON.parse(readFileSync(require.resolve("html-to-text/package.json"), "utf8")) as { version: string }
).version;

const heading = { options: { uppercase: false } };
const options: HtmlToTextOptions = {
  wordwrap: false,
  // We cut the input ourselves (below) so html-to-text never writes its warning to stderr.
  limits: { maxInputLength: undefined, maxDepth: 256 },
  selectors: [
    { selector: "img", format: "skip" },
    { selector: "script", format: "skip" },
    { selector: "style", format: "skip" },
    { selector: "noscript", format: "skip" },
    { selector: "template", format: "skip" },
    { selector: "head", format: "skip" },
    { selector: "a", options: { ignoreHref: true } },
    // mammoth's "back to reference" arrows next to footnotes and endnotes.
    { selector: 'a[href^="#footnote-ref"]', format: "skip" },
    { selector: 'a[href^="#endnote-ref"]', format: "skip" },
    { selector: "h1", ...heading },
    { selector: "h2", ...heading },
    { selector: "h3", ...heading },
    { selector: "h4", ...heading },
    { selector: "h5", ...heading },
    { selector: "h6", ...heading },
    // Table cells as separate blocks: search wants the words, not a drawing of the grid.
    { selector: "table", format: "block" },
    { selector: "tr", format: "block" },
    { selector: "td", format: "block", options: { leadingLineBreaks: 1, trailingLineBreaks: 1 } },
    { selector: "th", format: "block", options: { leadingLineBreaks: 1, trailingLineBreaks: 1 } },
  ],
};
const convert = compile(options);

/**
 * Characters of HTML we convert at most. html-to-text builds a whole DOM (measured: 4 M chars →
 * ~250 MB RSS, 0.6 s; 8 M → ~400 MB), and 4× the text cap is enough HTML to fill that cap with
 * ordinary markup density; the rest is marked truncated.
 */
export function htmlInputCap(limits: ExtractLimits): number {
  return Math.max(1024 * 1024, limits.maxTextBytes * 4);
}

export function htmlToText(html: string, limits: ExtractLimits): { text: string; truncated: boolean } {
  const cap = htmlInputCap(limits);
  const cut = html.length > cap;
  const clean = cleanText(convert(cut ? html.slice(0, cap) : html), limits.maxTextBytes);
  return { text: clean.text, truncated: clean.truncated || cut };
}

export function extractHtml(bytes: Uint8Array, charset: string | null, limits: ExtractLimits): ExtractOutcome {
  const decoded = decodeText(bytes, charset, { html: true });
  const { text, truncated } = htmlToText(decoded.text, limits);
  return {
    text,
    textTruncated: truncated,
    detectedType: "text/html",
    extractor: "html-to-text",
    extractorVersion: htmlToTextVersion,
    skippedReason: null,
    details: { encoding: decoded.encoding, encoding_source: decoded.source },
  };
}
