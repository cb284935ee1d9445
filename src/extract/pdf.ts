// PDF text through pdf-parse v2 (pdf.js). Runs only inside an extraction child.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
// Before pdf-parse: the globals pdf.js wants at load time (see pdf-globals.ts).
import "./pdf-globals.ts";
import { PDFParse } from "pdf-parse";
import { cleanText, countWords, textCapReached } from "./hygiene.ts";
import type { ExtractLimits, ExtractOutcome } from "./protocol.ts";

// CJK character maps and the 14 standard fonts come from the pdfjs-dist that pdf-parse itself
// pins; without them Japanese text without embedded fonts comes out empty. pdf.js in Node reads
// these folders from the filesystem, and wants a trailing separator.
const requireFromPdfParse = createRequire(import.meta.resolve("pdf-parse"));
const pdfjsRoot = path.dirname(requireFromPdfParse.resolve("pdfjs-dist/package.json"));
const pdfjsVersion = (JSON.parse(readFileSync(path.join(pdfjsRoot, "package.json"), "utf8")) as { version: string })
  .version;
const pdfParseVersion = (
  JSON.parse(
    readFileSync(path.join(path.dirname(requireFromPdfParse.resolve("pdf-parse")), "../../../package.json"), "utf8"),
  ) as { version: string }
).version;
const cMapUrl = path.join(pdfjsRoot, "cmaps") + path.sep;
const standardFontDataUrl = path.join(pdfjsRoot, "standard_fonts") + path.sep;

const EXTRACTOR = "pdf-parse";
const PAGE_BATCH = 50;
const VERSION = `${pdfParseVersion} (pdfjs-dist ${pdfjsVersion})`;

function infoString(v: unknown): string | undefined {
  if (typeof v !== "string") return undefined;
  const s = v.replace(/[\u0000-\u001F]/g, "").trim();
  return s.length > 0 ? s.slice(0, 1000) : undefined;
}

export async function extractPdf(bytes: Uint8Array, limits: ExtractLimits): Promise<ExtractOutcome> {
  const base = { detectedType: "application/pdf", extractor: EXTRACTOR, extractorVersion: VERSION };
  const parser = new PDFParse({
    data: bytes,
    // Defence in depth against font-program code generation (CVE-2024-4367 class).
    isEvalSupported: false,
    cMapUrl,
    cMapPacked: true,
    standardFontDataUrl,
    // Never fetch anything: attachment PDFs must not reach the network or the filesystem.
    disableFontFace: true,
    useSystemFonts: false,
    stopAtErrors: false,
  });
  try {
    const info = await parser.getInfo();
    const pagesTotal = info.total;
    // Pages 1..maxPages only (a 2,000-page attachment costs what 500 pages cost), read in batches
    // so that reading stops once the text cap is full: pages past it would be thrown away.
    const lastPage = Math.min(pagesTotal, limits.maxPages);
    const texts: string[] = [];
    let rawLength = 0;
    let pagesRead = 0;
    let textLimitReached = false;
    for (let from = 1; from <= lastPage; from += PAGE_BATCH) {
      const to = Math.min(lastPage, from + PAGE_BATCH - 1);
      const batch = await parser.getText({ first: from, last: to, pageJoiner: "" });
      for (const page of batch.pages) {
        texts.push(page.text);
        rawLength += page.text.length;
      }
      pagesRead += batch.pages.length;
      if (to < lastPage && textCapReached(texts, rawLength, limits.maxTextBytes)) {
        textLimitReached = true;
        break;
      }
    }
    const clean = cleanText(texts.join("\n\n"), limits.maxTextBytes);
    const words = countWords(clean.text);
    const dates = info.getDateNode();
    const created = dates.CreationDate ?? dates.XmpCreateDate ?? null;
    const details: Record<string, unknown> = {
      words,
      pages: pagesRead,
      pages_total: pagesTotal,
      title: infoString(info.info?.Title),
      author: infoString(info.info?.Author),
      created_at: created instanceof Date && !Number.isNaN(created.getTime()) ? created.toISOString() : undefined,
      encrypted: info.info?.EncryptFilterName ? true : undefined,
    };
    if (textLimitReached) details.text_limit_reached = true;
    else if (pagesTotal > pagesRead) details.page_limit_reached = true;
    // Pages but no words: a scan or an image-only document (no OCR here).
    if (pagesTotal > 0 && words === 0) details.no_text_layer = true;
    return {
      ...base,
      text: clean.text,
      textTruncated: clean.truncated || pagesTotal > pagesRead,
      skippedReason: null,
      details,
    };
  } catch (err) {
    const name = (err as Error)?.name;
    // Only a password error means encrypted: owner-password-only PDFs open and extract above.
    if (name === "PasswordException") {
      return {
        ...base,
        text: null,
        textTruncated: false,
        skippedReason: "encrypted",
        details: { reason: "password required" },
      };
    }
    return {
      ...base,
      text: null,
      textTruncated: false,
      skippedReason: "corrupt",
      details: { reason: `${name ?? "Error"}: ${String((err as Error)?.message ?? err).slice(0, 200)}` },
    };
  } finally {
    await parser.destroy().catch(() => {});
  }
}
