// HTML → readable text with html-to-text (HTML attachments, mammoth's DOCX output and HTML mail
// bodies). Attachments: scripts, styles and images are dropped; links keep their text only;
// headings keep their case. Mail bodies keep html-to-text's defaults (links with their URL), as
// they always have. html-to-text builds a whole DOM and walks it recursively: input is capped, depth
// is capped, and anything it still throws on falls back to a linear tag strip (stripTags), so a
// hostile body (20,000 nested <div>s) still yields text and its message is stored.
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

// Mail bodies: the options the message parser always used (src/gmail/parse-message.ts).
const convertBody = compile({
  wordwrap: false,
  limits: { maxInputLength: undefined, maxDepth: 256 },
  selectors: [{ selector: "img", format: "skip" }],
});

/**
 * HTML mail bodies up to this many characters are converted in the worker's own process (a few
 * milliseconds and megabytes); longer ones go to an extraction child (pipeline.ts htmlBodyText).
 */
export const HTML_BODY_INLINE_MAX_CHARS = 128 * 1024;

const ENTITIES: Record<string, string> = { amp: "&", lt: "<", gt: ">", quot: '"', apos: "'", nbsp: " " };
const BLOCK = /^(?:p|div|br|li|tr|td|th|h[1-6]|table|ul|ol|blockquote|pre|hr|section|article|header|footer)$/i;

/**
 * Text from HTML in one linear pass, no DOM: tags removed (blocks become line breaks), script,
 * style and comments dropped, common entities decoded. The fallback when html-to-text throws or
 * its child is killed; indexOf-based, so no input is quadratic.
 */
export function stripTags(html: string): string {
  const out: string[] = [];
  let i = 0;
  const n = html.length;
  while (i < n) {
    const lt = html.indexOf("<", i);
    if (lt < 0) {
      out.push(html.slice(i));
      break;
    }
    if (lt > i) out.push(html.slice(i, lt));
    if (html.startsWith("<!--", lt)) {
      const end = html.indexOf("-->", lt + 4);
      if (end < 0) break;
      i = end + 3;
      continue;
    }
    const gt = html.indexOf(">", lt + 1);
    if (gt < 0) break;
    const name = /^<\/?\s*([a-zA-Z][a-zA-Z0-9]*)/.exec(html.slice(lt, Math.min(gt + 1, lt + 40)))?.[1] ?? "";
    i = gt + 1;
    const lower = name.toLowerCase();
    if ((lower === "script" || lower === "style" || lower === "head") && html[lt + 1] !== "/") {
      const closing = new RegExp(`</${lower}`, "gi");
      closing.lastIndex = i;
      const end = closing.exec(html)?.index ?? -1;
      if (end < 0) break;
      const close = html.indexOf(">", end);
      i = close < 0 ? n : close + 1;
      continue;
    }
    if (BLOCK.test(name)) out.push("\n");
  }
  return out.join("").replace(/&(#x[0-9a-f]{1,6}|#[0-9]{1,7}|[a-z]{2,6});/gi, (whole, e: string) => {
    if (e[0] === "#") {
      const code = e[1] === "x" || e[1] === "X" ? Number.parseInt(e.slice(2), 16) : Number.parseInt(e.slice(1), 10);
      return code > 0 && code <= 0x10ffff ? String.fromCodePoint(code) : "";
    }
    return ENTITIES[e.toLowerCase()] ?? whole;
  });
}

function convertBounded(converter: (html: string) => string, html: string): { text: string; fallback: boolean } {
  try {
    return { text: converter(html), fallback: false };
  } catch {
    // Recursion too deep, or a selector engine that gave up: the linear strip still reads it.
    return { text: stripTags(html), fallback: true };
  }
}

/**
 * Characters of HTML we convert at most. html-to-text builds a whole DOM (measured: 4 M chars →
 * ~250 MB RSS, 0.6 s; 8 M → ~400 MB), and 4× the text cap is enough HTML to fill that cap with
 * ordinary markup density; the rest is marked truncated.
 */
export function htmlInputCap(limits: ExtractLimits): number {
  return Math.max(1024 * 1024, limits.maxTextBytes * 4);
}

export type HtmlStyle = "attachment" | "body";

export function htmlToText(
  html: string,
  limits: ExtractLimits,
  style: HtmlStyle = "attachment",
): { text: string; truncated: boolean; fallback: boolean } {
  const cap = htmlInputCap(limits);
  const cut = html.length > cap;
  const converted = convertBounded(style === "body" ? convertBody : convert, cut ? html.slice(0, cap) : html);
  const clean = cleanText(converted.text, limits.maxTextBytes);
  return { text: clean.text, truncated: clean.truncated || cut, fallback: converted.fallback };
}

/** An HTML mail body as the message parser stores it (not cleaned further: parse-message does). */
export function htmlBodyToText(html: string): string {
  return convertBounded(convertBody, html).text;
}

export function extractHtml(
  bytes: Uint8Array,
  charset: string | null,
  limits: ExtractLimits,
  style: HtmlStyle = "attachment",
): ExtractOutcome {
  const decoded = decodeText(bytes, charset, { html: true });
  const { text, truncated, fallback } = htmlToText(decoded.text, limits, style);
  return {
    text,
    textTruncated: truncated,
    detectedType: "text/html",
    extractor: "html-to-text",
    extractorVersion: htmlToTextVersion,
    skippedReason: null,
    details: {
      encoding: decoded.encoding,
      encoding_source: decoded.source,
      ...(fallback ? { html_fallback: "tags stripped" } : {}),
    },
  };
}
