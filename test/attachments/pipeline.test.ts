// The pipeline end to end on real files built in code: every bad input of issue 6 ends with the
// right skipped_reason or clean text, the test process (the "worker") survives, the pool keeps
// serving, and the private temp directory is empty afterwards.
import { access, mkdtemp, readdir, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pino from "pino";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { createAttachmentPipeline } from "../../src/attachments/pipeline.ts";
import type { AttachmentPipeline, AttachmentRef, ReusableText } from "../../src/attachments/types.ts";
import { loadConfig } from "../../src/config.ts";
import {
  makeCorruptPdf,
  makeCsv,
  makeDocx,
  makeEncryptedDocx,
  makeEncryptedPdf,
  makeEntityBombDocx,
  makeHtml,
  makeImageOnlyPdf,
  makeLoopingPdf,
  makePdf,
  makePng,
  makeZipBombDocx,
} from "@gmail-sync/emulator/generate";
import { GmailError } from "../../src/errors.ts";
import { attachmentChecksumReuseTotal, attachmentTempFiles, extractChildrenKilledTotal } from "../../src/metrics.ts";

// Everything the pipeline logs, at the most verbose level, to check no content ever reaches it.
const logLines: string[] = [];
const log = pino({ level: "trace" }, { write: (line: string) => void logLines.push(line) });
let root: string;
let tempDir: string;
let pipeline: AttachmentPipeline;
const reusable = new Map<string, ReusableText>();
let part = 0;

function ref(bytes: Buffer, mimeType: string, extra: Partial<AttachmentRef> = {}): AttachmentRef {
  return {
    partId: String(++part),
    filename: "file",
    mimeType,
    charset: null,
    contentId: null,
    size: bytes.length,
    attachmentId: "att",
    inlineData: null,
    ...extra,
  };
}

async function run(bytes: Buffer, mimeType: string, extra: Partial<AttachmentRef> = {}) {
  return pipeline.process(ref(bytes, mimeType, extra), async () => bytes);
}

async function killed(reason: string): Promise<number> {
  return (await extractChildrenKilledTotal.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "gs-pipeline-"));
  // Nested so that "../../etc/passwd" from inside it would still land under root.
  tempDir = path.join(root, "a", "b", "attachments");
  const config = loadConfig({
    ATTACHMENT_TEMP_DIR: tempDir,
    ATTACHMENT_MEMORY_MAX_BYTES: String(1024 * 1024),
    EXTRACT_POOL_SIZE: "2",
    // Generous: the machine is shared; the wall-clock kill is exercised with its own pipeline below.
    EXTRACT_TIMEOUT_MS: "30000",
  });
  pipeline = await createAttachmentPipeline(config, { log, findReusable: async (c) => reusable.get(c) ?? null });
});

afterAll(async () => {
  await pipeline?.close();
  await rm(root, { recursive: true, force: true });
});

afterEach(async () => {
  expect(await readdir(tempDir)).toEqual([]);
});

describe("attachment pipeline", () => {
  it("extracts a PDF with its checksum, page count and metadata, even when declared as octet-stream", async () => {
    const pdf = await makePdf({ pages: 3, title: "Quarterly report", author: "Ada" });
    const r = await run(pdf, "application/octet-stream");
    expect(r).toMatchObject({
      route: "memory",
      skippedReason: null,
      detectedType: "application/pdf",
      textTruncated: false,
    });
    expect(r.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(r.text).toContain("marmalade2");
    expect(r.text).not.toMatch(/-- \d+ of \d+ --/); // no page-marker text
    expect(r.metadata).toMatchObject({
      route: "memory",
      detected_type: "application/pdf",
      extractor: "pdfium",
      pages: 3,
      title: "Quarterly report",
      author: "Ada",
    });
    expect(r.metadata.extractor_version).toMatch(/^\d+\.\d+\.\d+$/);
    expect(r.metadata.words).toBeGreaterThan(50);
    expect(typeof r.metadata.duration_ms).toBe("number");
  });

  it("truncated PDF → corrupt", async () => {
    const r = await run(await makeCorruptPdf(), "application/pdf");
    expect(r).toMatchObject({ skippedReason: "corrupt", text: null, detectedType: "application/pdf" });
  });

  it("password PDF → encrypted; owner-password-only PDF extracts", async () => {
    expect(await run(await makeEncryptedPdf(), "application/pdf")).toMatchObject({
      skippedReason: "encrypted",
      text: null,
    });
    const owner = await run(await makeEncryptedPdf({ ownerOnly: true }), "application/pdf");
    expect(owner.skippedReason).toBeNull();
    expect(owner.text).toContain("quandaryencrypted");
  });

  it("image-only PDF → text layer flagged missing", async () => {
    const r = await run(await makeImageOnlyPdf(), "application/pdf");
    expect(r).toMatchObject({ skippedReason: null, text: "" });
    expect(r.metadata).toMatchObject({ pages: 3, no_text_layer: true, words: 0 });
  });

  it("2,000-page PDF → first 500 pages, marked truncated", async () => {
    const r = await run(await makePdf({ pages: 2000 }), "application/pdf");
    expect(r.skippedReason).toBeNull();
    expect(r.textTruncated).toBe(true);
    expect(r.metadata).toMatchObject({ pages: 500, pages_total: 2000, page_limit_reached: true });
    expect(r.text).toContain("marmalade500.");
    expect(r.text).not.toContain("marmalade501.");
  }, 60_000);

  it("PDF whose content stream loops the parser → timeout; the next attachment still extracts", async () => {
    // pdf.js (PDF_ENGINE=pdf-parse) loops on this file until the wall clock stops it; PDFium, the
    // default, explodes in memory instead and meets the RSS cap first (pdfium.test.ts).
    const short = await createAttachmentPipeline(
      loadConfig({
        ATTACHMENT_TEMP_DIR: tempDir,
        EXTRACT_POOL_SIZE: "1",
        EXTRACT_TIMEOUT_MS: "2000",
        PDF_ENGINE: "pdf-parse",
      }),
      { log, findReusable: async () => null },
    );
    try {
      const timeoutsBefore = await killed("timeout");
      const looping = await makeLoopingPdf();
      const csv = makeCsv([["after", "loop"]]);
      // Queued behind the looping PDF on the pool's only child.
      const [r, next] = await Promise.all([
        short.process(ref(looping, "application/pdf"), async () => looping),
        short.process(ref(csv, "text/csv"), async () => csv),
      ]);
      expect(r).toMatchObject({ skippedReason: "timeout", text: null, detectedType: "application/pdf" });
      expect(r.metadata.duration_ms).toBeGreaterThanOrEqual(2000);
      expect(await killed("timeout")).toBe(timeoutsBefore + 1);
      // The killed child was replaced: the queued attachment and the next ones still extract.
      expect(next.text).toBe("after,loop");
      const pdf = await makePdf({ pages: 1 });
      expect((await short.process(ref(pdf, "application/pdf"), async () => pdf)).skippedReason).toBeNull();
    } finally {
      await short.close();
    }
  }, 30_000);

  it("DOCX with text, table and footnote; zip bomb past 1 GB and XML entity bomb → too_complex", async () => {
    const docx = await makeDocx({
      paragraphs: ["Hello docx world"],
      table: [["cellA", "cellB"]],
      footnote: "A footnote kept",
    });
    const ok = await run(docx, "application/vnd.openxmlformats-officedocument.wordprocessingml.document");
    expect(ok).toMatchObject({
      skippedReason: null,
      detectedType: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    });
    for (const word of ["Hello docx world", "cellA", "cellB", "A footnote kept"]) expect(ok.text).toContain(word);
    expect(ok.metadata).toMatchObject({ extractor: "mammoth" });

    const bomb = await run(
      await makeZipBombDocx(),
      "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    );
    expect(bomb).toMatchObject({
      skippedReason: "too_complex",
      text: null,
      detectedType: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    });
    const entity = await run(await makeEntityBombDocx(), "application/octet-stream");
    expect(entity).toMatchObject({ skippedReason: "too_complex", text: null });
    expect(entity.metadata.reason).toMatch(/DTD/);
  });

  it("encrypted OOXML (CFB) → encrypted without any parser", async () => {
    const r = await run(makeEncryptedDocx(), "application/vnd.openxmlformats-officedocument.wordprocessingml.document");
    expect(r).toMatchObject({ skippedReason: "encrypted", detectedType: "application/x-ooxml-encrypted", text: null });
    expect(r.metadata.extractor).toBeUndefined();
  });

  it("0-byte file → empty, whether Gmail says 0 or the download comes back empty", async () => {
    let fetched = 0;
    const planned = await pipeline.process(ref(Buffer.alloc(0), "application/pdf"), async () => {
      fetched++;
      return Buffer.alloc(0);
    });
    expect(planned).toMatchObject({ skippedReason: "empty", route: "skipped", size: 0 });
    expect(fetched).toBe(0);
    const lied = await pipeline.process(ref(Buffer.alloc(0), "text/plain", { size: 100 }), async () => Buffer.alloc(0));
    expect(lied).toMatchObject({
      skippedReason: "empty",
      size: 0,
      checksum: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
    });
  });

  it("a file named ../../etc/passwd goes through a random temp name and is deleted", async () => {
    const bytes = Buffer.from("root:x:0:0:root:/root:/bin/bash\n".repeat(40_000)); // > 1 MB: temp-file route
    const r = await run(bytes, "application/octet-stream", { filename: "../../etc/passwd" });
    expect(r).toMatchObject({
      route: "temp_file",
      skippedReason: null,
      filename: "../../etc/passwd",
      detectedType: "text/plain",
    });
    expect(r.text?.startsWith("root:x:0:0:root:/root:/bin/bash")).toBe(true);
    await expect(access(path.join(tempDir, "../../etc/passwd"))).rejects.toThrow();
    await expect(access(path.join(tempDir, "passwd"))).rejects.toThrow();
  });

  it("UTF-16 CSV → clean text; NUL bytes in text → removed", async () => {
    const csv = await run(
      makeCsv(
        [
          ["name", "city"],
          ["Zoë", "Zürich"],
        ],
        { encoding: "utf16le" },
      ),
      "text/csv",
    );
    expect(csv).toMatchObject({ skippedReason: null, text: "name,city\nZoë,Zürich", detectedType: "text/csv" });
    const nul = await run(Buffer.from("before\u0000after\u0000\u0000 end\n"), "text/plain", { charset: "utf-8" });
    expect(nul.text).toBe("beforeafter end");
  });

  it("HTML of 20 MB → text via the temp file, scripts and styles dropped, capped and marked truncated", async () => {
    const paragraphs = Array.from(
      { length: 300_000 },
      (_, i) => `Paragraph ${i} of the very long newsletter with plenty of words.`,
    );
    const html = makeHtml({ title: "Huge newsletter", paragraphs, withScript: true });
    expect(html.length).toBeGreaterThan(20 * 1000 * 1000);
    const r = await run(html, "text/html");
    expect(r).toMatchObject({
      route: "temp_file",
      skippedReason: null,
      detectedType: "text/html",
      textTruncated: true,
    });
    expect(r.text).toContain("Paragraph 1 of the very long newsletter");
    expect(r.text).not.toContain("scriptpayloadxyzzy");
    expect(r.text).not.toContain("stylepayloadplugh");
    expect(Buffer.byteLength(r.text ?? "")).toBeLessThanOrEqual(1024 * 1024);
  }, 60_000);

  it("message/rfc822 → headers and body text, attachments by name only", async () => {
    const eml = [
      "From: Alice <alice@example.com>",
      "To: bob@example.com",
      "Subject: Forwarded plans",
      "Date: Tue, 1 Apr 2025 10:00:00 +0000",
      "MIME-Version: 1.0",
      'Content-Type: multipart/mixed; boundary="b"',
      "",
      "--b",
      "Content-Type: text/plain; charset=utf-8",
      "",
      "The inner body mentions zeppelin.",
      "--b",
      'Content-Type: application/octet-stream; name="blob.bin"',
      'Content-Disposition: attachment; filename="blob.bin"',
      "Content-Transfer-Encoding: base64",
      "",
      Buffer.from("innerattachmentbytes").toString("base64"),
      "--b--",
      "",
    ].join("\r\n");
    const r = await run(Buffer.from(eml), "message/rfc822");
    expect(r).toMatchObject({ skippedReason: null, detectedType: "message/rfc822" });
    expect(r.text).toContain("Subject: Forwarded plans");
    expect(r.text).toContain("From: Alice <alice@example.com>");
    expect(r.text).toContain("zeppelin");
    expect(r.text).toContain("blob.bin");
    expect(r.text).not.toContain("innerattachmentbytes");
  });

  it("images and renamed executables → unsupported_type with the detected type", async () => {
    // Declared as an image: not even downloaded (parts-cap.test.ts); sent as octet-stream: sniffed.
    expect(await run(makePng(), "image/png")).toMatchObject({
      skippedReason: "unsupported_type",
      detectedType: null,
      checksum: null,
      route: "skipped",
    });
    expect(await run(makePng(), "application/octet-stream")).toMatchObject({
      skippedReason: "unsupported_type",
      detectedType: "image/png",
      route: "memory",
    });
    const exe = Buffer.concat([Buffer.from("MZ"), Buffer.alloc(2000, 0x90)]);
    expect(await run(exe, "application/pdf", { filename: "invoice.pdf" })).toMatchObject({
      skippedReason: "unsupported_type",
      detectedType: "application/x-msdownload",
    });
  });

  it("over the temp-file limit → too_large without downloading", async () => {
    let fetched = false;
    const r = await pipeline.process(
      ref(Buffer.alloc(0), "application/pdf", { size: 50 * 1024 * 1024 + 1 }),
      async () => {
        fetched = true;
        return Buffer.alloc(0);
      },
    );
    expect(fetched).toBe(false);
    expect(r).toMatchObject({
      route: "skipped",
      skippedReason: "too_large",
      checksum: null,
      text: null,
      size: 50 * 1024 * 1024 + 1,
    });
    expect(r.metadata).toMatchObject({ route: "skipped", skipped_reason: "too_large" });
  });

  it("fetch errors: retryable kinds are rethrown, a gone attachment is fetch_failed", async () => {
    const bytes = Buffer.from("x");
    await expect(
      pipeline.process(ref(bytes, "text/plain"), async () =>
        Promise.reject(new GmailError("rate_limited", "slow down")),
      ),
    ).rejects.toThrow("slow down");
    await expect(
      pipeline.process(ref(bytes, "text/plain"), async () => Promise.reject(new GmailError("transient", "502"))),
    ).rejects.toThrow("502");
    const gone = await pipeline.process(ref(bytes, "text/plain"), async () =>
      Promise.reject(new GmailError("not_found", "gone")),
    );
    expect(gone).toMatchObject({ route: "skipped", skippedReason: "fetch_failed", checksum: null });
  });

  it("reuses text stored for the same checksum instead of extracting again", async () => {
    const pdf = await makePdf({ pages: 2, title: "reuse me" });
    const first = await run(pdf, "application/pdf");
    // Stored metadata passes the same jsonb hygiene as fresh metadata (NUL, lone surrogates).
    reusable.set(first.checksum!, {
      text: "stored text",
      textTruncated: false,
      detectedType: "application/pdf",
      metadata: { extractor: "pdf-parse", pages: 2, title: "a\u0000b\uD800c 😀" },
    });
    const before = (await attachmentChecksumReuseTotal.get()).values[0]?.value ?? 0;
    const second = await run(pdf, "application/pdf");
    expect(second).toMatchObject({ checksum: first.checksum, text: "stored text", skippedReason: null });
    expect(second.metadata).toMatchObject({ reused: true, extractor: "pdf-parse", title: "abc 😀" });
    expect((await attachmentChecksumReuseTotal.get()).values[0]?.value).toBe(before + 1);
  });

  it("leaves no temp file open and logs no content", async () => {
    expect((await attachmentTempFiles.get()).values[0]?.value).toBe(0);
    const logged = logLines.join("");
    expect(logLines.length).toBeGreaterThan(10);
    for (const marker of [
      "marmalade",
      "zeppelin",
      "innerattachmentbytes",
      "root:x:0:0",
      "Zürich",
      "quandaryencrypted",
      "Hello docx world",
      "Paragraph 1 of",
    ]) {
      expect(logged).not.toContain(marker);
    }
  });
});
