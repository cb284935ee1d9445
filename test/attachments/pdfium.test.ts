// Issue 16: PDFium (WebAssembly) is the default PDF engine. In process here for its limits and
// metadata; through the pipeline (sandboxed children) for the engine switch, encryption and the
// hostile PDF that explodes. Nothing here reads ../shared/corpus (bench/extract.ts does).
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  makeCorruptPdf,
  makeEncryptedPdf,
  makeImageOnlyPdf,
  makeLoopingPdf,
  makePdf,
} from "@gmail-sync/emulator/generate";
import { createAttachmentPipeline } from "../../src/attachments/pipeline.ts";
import type { AttachmentPipeline, AttachmentRef } from "../../src/attachments/types.ts";
import { loadConfig } from "../../src/config.ts";
import { extractPdfium, pdfDate, pdfium, pdfiumVersion } from "../../src/extract/pdfium.ts";

const limits = { maxPages: 500, maxTextBytes: 1024 * 1024, maxXmlBytes: 1 };
let root: string;
let part = 0;

function ref(bytes: Buffer): AttachmentRef {
  return {
    partId: String(++part),
    filename: "doc.pdf",
    mimeType: "application/pdf",
    charset: null,
    contentId: null,
    size: bytes.length,
    attachmentId: "att",
    inlineData: null,
  };
}

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "gs-pdfium-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("PDFium extractor (in process)", () => {
  it("reads text and metadata; the page cap and the text cap stop reading, and say so", async () => {
    const pdf = new Uint8Array(await makePdf({ pages: 120, title: "Quarterly report", author: "Ada" }));
    const full = await extractPdfium(pdf, limits);
    expect(full).toMatchObject({
      extractor: "pdfium",
      extractorVersion: pdfiumVersion,
      skippedReason: null,
      textTruncated: false,
      details: { pages: 120, pages_total: 120, title: "Quarterly report", author: "Ada" },
    });
    expect(full.text).toContain("marmalade120.");
    expect(full.details.no_text_layer).toBeUndefined();
    const capped = await extractPdfium(pdf, { ...limits, maxTextBytes: 4000 });
    expect(capped).toMatchObject({ textTruncated: true, details: { pages_total: 120, text_limit_reached: true } });
    expect(capped.details.pages).toBeLessThan(120);
    expect(Buffer.byteLength(capped.text ?? "")).toBeLessThanOrEqual(4000);
    const paged = await extractPdfium(pdf, { ...limits, maxPages: 70 });
    expect(paged).toMatchObject({
      textTruncated: true,
      details: { pages: 70, pages_total: 120, page_limit_reached: true },
    });
    expect(paged.text).toContain("marmalade70.");
    expect(paged.text).not.toContain("marmalade71.");
  }, 30_000);

  it("closes every page as it reads: a 1,000-page document leaves the WebAssembly heap small", async () => {
    const pdf = new Uint8Array(await makePdf({ pages: 1000 }));
    const r = await extractPdfium(pdf, { ...limits, maxPages: 1000, maxTextBytes: 64 * 1024 * 1024 });
    expect(r.details.pages).toBe(1000);
    // Measured: ~18 MB with pages closed; leaving them loaded (the wrapper's getText) grows it ~4×.
    expect((await pdfium()).HEAPU8.length / (1024 * 1024)).toBeLessThan(48);
  }, 60_000);

  it("password → encrypted; owner-only restrictions extract; no text layer flagged; garbage → corrupt", async () => {
    expect(await extractPdfium(new Uint8Array(await makeEncryptedPdf()), limits)).toMatchObject({
      skippedReason: "encrypted",
      text: null,
    });
    const owner = await extractPdfium(new Uint8Array(await makeEncryptedPdf({ ownerOnly: true })), limits);
    expect(owner).toMatchObject({ skippedReason: null, details: { encrypted: true } });
    expect(owner.text).toContain("quandaryencrypted");
    const scan = await extractPdfium(new Uint8Array(await makeImageOnlyPdf()), limits);
    expect(scan).toMatchObject({
      text: "",
      details: { pages: 3, no_text_layer: true, words: 0, pages_without_text: 3 },
    });
    expect(await extractPdfium(new Uint8Array(await makeCorruptPdf()), limits)).toMatchObject({
      skippedReason: "corrupt",
      text: null,
    });
    expect(await extractPdfium(new Uint8Array(Buffer.from("MZ not a pdf at all")), limits)).toMatchObject({
      skippedReason: "corrupt",
    });
  });

  it("parses PDF dates", () => {
    expect(pdfDate("D:20070915110200+02'00'")).toBe("2007-09-15T09:02:00.000Z");
    expect(pdfDate("D:2023")).toBe("2023-01-01T00:00:00.000Z");
    expect(pdfDate("yesterday")).toBeUndefined();
    expect(pdfDate(undefined)).toBeUndefined();
  });
});

describe("PDF engines through the pipeline", () => {
  let pipeline: AttachmentPipeline;
  let pdfParse: AttachmentPipeline;
  beforeAll(async () => {
    const base = { ATTACHMENT_TEMP_DIR: path.join(root, "attachments"), EXTRACT_POOL_SIZE: "1" };
    pipeline = await createAttachmentPipeline(loadConfig({ ...base, EXTRACT_TIMEOUT_MS: "20000" }), {
      log: pino({ level: "silent" }),
      findReusable: async () => null,
    });
    pdfParse = await createAttachmentPipeline(loadConfig({ ...base, PDF_ENGINE: "pdf-parse" }), {
      log: pino({ level: "silent" }),
      findReusable: async () => null,
    });
  });
  afterAll(async () => {
    await Promise.all([pipeline?.close(), pdfParse?.close()]);
  });

  it("PDFium by default, pdf-parse with PDF_ENGINE=pdf-parse: the same text", async () => {
    const pdf = await makePdf({ pages: 3, title: "Engines" });
    const a = await pipeline.process(ref(pdf), async () => pdf);
    const b = await pdfParse.process(ref(pdf), async () => pdf);
    expect(a.metadata).toMatchObject({ extractor: "pdfium", pages: 3, title: "Engines" });
    expect(b.metadata).toMatchObject({ extractor: "pdf-parse", pages: 3, title: "Engines" });
    expect(String(b.metadata.extractor_version)).toMatch(/pdfjs-dist/);
    for (const r of [a, b]) for (const w of ["marmalade1.", "marmalade2.", "marmalade3."]) expect(r.text).toContain(w);
  }, 30_000);

  it("a PDF that multiplies its content 4^24 times ends as too_complex or timeout, and the next one extracts", async () => {
    const looping = await makeLoopingPdf();
    const r = await pipeline.process(ref(looping), async () => looping);
    expect(r).toMatchObject({ text: null, detectedType: "application/pdf" });
    expect(r.skippedReason).toMatch(/^(too_complex|timeout)$/);
    const pdf = await makePdf({ pages: 1 });
    expect((await pipeline.process(ref(pdf), async () => pdf)).skippedReason).toBeNull();
  }, 60_000);
});
