// Issue 16, OCR (EXTRACT_OCR=true): image attachments and PDF pages without a text layer are read
// by tesseract.js in OCR children of their own (sandboxed like every extraction child: no network,
// so this also shows nothing is downloaded), with the engine and language in the metadata.
import { mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAttachmentPipeline } from "../../src/attachments/pipeline.ts";
import { sha256Hex } from "../../src/attachments/pipeline.ts";
import type { AttachmentPipeline, AttachmentRef, ReusableText } from "../../src/attachments/types.ts";
import { loadConfig } from "../../src/config.ts";
import { imageSize } from "../../src/extract/ocr.ts";
import { encodeBmp, encodePng, encodeTiff, renderTextPage, scannedPdf, wordRecall } from "./fixtures/text-images.ts";

let root: string;
let tempDir: string;
let pipeline: AttachmentPipeline;
let part = 0;
const reusable = new Map<string, ReusableText>();

const LINES = [
  "Invoice number 4471 from the Harbour Street bakery",
  "Twelve loaves of rye bread delivered on Tuesday morning",
  "Payment is due within thirty days of the invoice date",
];
const SCAN_LINES = ["Minutes of the quarterly planning meeting", "The committee approved the lighthouse budget"];

function ref(bytes: Buffer, mimeType: string, filename: string, extra: Partial<AttachmentRef> = {}): AttachmentRef {
  return {
    partId: String(++part),
    filename,
    mimeType,
    charset: null,
    contentId: null,
    size: bytes.length,
    attachmentId: "att",
    inlineData: null,
    ...extra,
  };
}

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "gs-ocr-"));
  tempDir = path.join(root, "attachments");
  pipeline = await createAttachmentPipeline(
    loadConfig({
      ATTACHMENT_TEMP_DIR: tempDir,
      EXTRACT_POOL_SIZE: "1",
      EXTRACT_OCR: "true",
      EXTRACT_OCR_POOL_SIZE: "1",
      EXTRACT_OCR_MAX_PAGES: "2",
    }),
    { log: pino({ level: "silent" }), findReusable: async (c) => reusable.get(c) ?? null },
  );
}, 30_000);

afterAll(async () => {
  await pipeline?.close();
  await rm(root, { recursive: true, force: true });
});

describe("OCR", () => {
  it("reads PNG, BMP and TIFF images of known text (recall ≥ 0.9), with engine and language recorded", async () => {
    const page = await renderTextPage(LINES, 200);
    for (const [bytes, type, name] of [
      [encodePng(page), "image/png", "invoice.png"],
      [encodeBmp(page), "image/bmp", "invoice.bmp"],
      [encodeTiff(page), "image/tiff", "invoice.tif"],
    ] as const) {
      const r = await pipeline.process(ref(bytes, type, name), async () => bytes);
      expect(r, name).toMatchObject({ skippedReason: null, detectedType: type });
      expect(wordRecall(r.text ?? "", LINES.join(" ")), `${name}: ${r.text}`).toBeGreaterThanOrEqual(0.9);
      expect(r.metadata, name).toMatchObject({ ocr: true, ocr_language: "eng", extractor: "tesseract" });
      expect(String(r.metadata.ocr_engine)).toMatch(/^tesseract\.js \d/);
      expect(r.checksum).toMatch(/^[0-9a-f]{64}$/);
    }
  }, 120_000);

  it("an inline image is downloaded and read when OCR is on", async () => {
    const png = encodePng(await renderTextPage(["Inline chart title reads quarterly revenue"], 200));
    const r = await pipeline.process(
      ref(png, "image/png", "", { filename: null, contentId: "chart@x" }),
      async () => png,
    );
    expect(r.skippedReason).toBeNull();
    expect(r.text?.toLowerCase()).toContain("quarterly revenue");
  }, 60_000);

  it("a scanned PDF: PDFium finds no text layer, its pages are rendered and read, up to the OCR page cap", async () => {
    const pdf = await scannedPdf([SCAN_LINES, SCAN_LINES, ["A third page past the OCR page cap"]]);
    const r = await pipeline.process(ref(pdf, "application/pdf", "scan.pdf"), async () => pdf);
    expect(r).toMatchObject({ skippedReason: null, detectedType: "application/pdf" });
    expect(wordRecall(r.text ?? "", [...SCAN_LINES, ...SCAN_LINES].join(" "))).toBeGreaterThanOrEqual(0.9);
    expect(r.text).not.toContain("third page");
    expect(r.metadata).toMatchObject({
      ocr: true,
      ocr_language: "eng",
      extractor: "pdfium+tesseract",
      ocr_pages: 2,
      ocr_page_limit_reached: true,
      pages_total: 3,
    });
  }, 120_000);

  it("an image stored as unsupported_type before OCR was turned on is read, not reused", async () => {
    const png = encodePng(await renderTextPage(["Receipt from the ferry terminal kiosk"], 200));
    reusable.set(sha256Hex(png), {
      text: null,
      textTruncated: false,
      detectedType: "image/png",
      metadata: {},
      skippedReason: "unsupported_type",
    });
    const r = await pipeline.process(ref(png, "image/png", "receipt.png"), async () => png);
    expect(r.skippedReason).toBeNull();
    expect(r.metadata.reused).toBeUndefined();
    expect(r.text?.toLowerCase()).toContain("ferry terminal");
  }, 60_000);

  it("refuses an image whose header claims more pixels than the cap, before decoding", async () => {
    const png = encodePng({ width: 8, height: 8, pixels: new Uint8Array(64).fill(255) });
    png.writeUInt32BE(100_000, 16);
    png.writeUInt32BE(100_000, 20);
    expect(imageSize(png)).toEqual({ width: 100_000, height: 100_000 });
    const r = await pipeline.process(ref(png, "image/png", "bomb.png"), async () => png);
    expect(r).toMatchObject({ skippedReason: "too_complex", text: null });
  }, 30_000);

  it("leaves no temp file", async () => {
    expect(await readdir(tempDir)).toEqual([]);
  });
});
