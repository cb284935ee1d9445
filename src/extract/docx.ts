// DOCX (and other zips): pre-flight first, then mammoth's HTML (which keeps footnotes, endnotes
// and tables; extractRawText drops the notes at the same cost) turned into text.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import mammoth from "mammoth";
import { htmlToText } from "./html.ts";
import type { ExtractLimits, ExtractOutcome } from "./protocol.ts";
import { MIME } from "./sniff.ts";
import { preflightZip, ZIP_LIMITS } from "./zip-preflight.ts";

const require = createRequire(import.meta.url);
const version = (JSON.parse(readFileSync(require.resolve("mammoth/package.json"), "utf8")) as { version: string })
  .version;

// Images are never read: no data: URIs built from their bytes.
const convertImage = mammoth.images.imgElement(async () => ({ src: "" }));

export async function extractZip(bytes: Uint8Array, limits: ExtractLimits): Promise<ExtractOutcome> {
  const base = { extractor: "mammoth", extractorVersion: version };
  const pre = await preflightZip(bytes, { ...ZIP_LIMITS, maxXmlBytes: limits.maxXmlBytes });
  if (!pre.ok) {
    return {
      ...base,
      detectedType: pre.detectedType,
      text: null,
      textTruncated: false,
      skippedReason: pre.reason,
      details: { reason: pre.detail },
    };
  }
  try {
    // externalFileAccess stays off (the default since 1.11.0): r:link images must not read local files.
    const result = await mammoth.convertToHtml(
      { buffer: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length) },
      { convertImage, externalFileAccess: false },
    );
    const { text, truncated } = htmlToText(result.value, limits);
    return {
      ...base,
      detectedType: MIME.docx,
      text,
      textTruncated: truncated,
      skippedReason: null,
      details: { zip_entries: pre.entries, xml_bytes: pre.xmlBytes, warnings: result.messages.length },
    };
  } catch (err) {
    return {
      ...base,
      detectedType: MIME.docx,
      text: null,
      textTruncated: false,
      skippedReason: "corrupt",
      details: { reason: String((err as Error)?.message ?? err).slice(0, 200) },
    };
  }
}
