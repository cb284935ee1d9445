// Fetch, hash, extract in isolation, forget: the ephemeral attachment pipeline. Plans the route
// from the size Gmail reports (memory ≤ ATTACHMENT_MEMORY_MAX_BYTES < temp file ≤
// ATTACHMENT_TEMP_FILE_MAX_BYTES < not downloaded), leaves out parts past
// ATTACHMENT_MAX_PER_MESSAGE and parts whose declared type no extractor reads (declared-type.ts),
// reuses text already extracted for the same SHA-256, and hands everything else to the
// child-process pool; with EXTRACT_OCR, images and PDF pages without a text layer then go to a
// second pool of OCR children (its own size, limits and a lower CPU priority). Only checksum, text
// and metadata leave this module; the bytes are dropped (and any temp file deleted) before
// process() returns. HTML mail bodies are converted here too (htmlBodyText): long ones in a child.
import { createHash } from "node:crypto";
import type { Config } from "../config.ts";
import { isGmailError } from "../errors.ts";
import { createExtractPool, type ExtractPool } from "../extract/pool.ts";
import { HTML_BODY_INLINE_MAX_CHARS, htmlBodyToText, htmlInputCap, stripTags } from "../extract/html.ts";
import { cleanText, countCharacters, countWords } from "../extract/hygiene.ts";
import { ocrLanguageDirs } from "../extract/ocr-languages.ts";
import type { ExtractRequest, OcrOptions } from "../extract/protocol.ts";
import { sniff } from "../extract/sniff.ts";
import { docxXmlCap } from "../extract/zip-preflight.ts";
import type { Logger } from "../log.ts";
import {
  attachmentChecksumReuseTotal,
  attachmentDownloadedBytesTotal,
  attachmentExtractedBytesTotal,
  attachmentExtractedPagesTotal,
  attachmentProcessingSeconds,
  attachmentsSkippedTotal,
  attachmentsTotal,
  sizeBucket,
} from "../metrics.ts";
import { OCR_IMAGE_TYPES, skipBeforeDownload } from "./declared-type.ts";
import { ensureTempDir, removeTempFile, sweepOrphanTempFiles, writeTempFile } from "./temp-files.ts";
import type {
  AttachmentPipeline,
  AttachmentRef,
  AttachmentResult,
  AttachmentRoute,
  ReusableText,
  SkippedReason,
} from "./types.ts";

/** What the message parser does to body text: no NUL, no lone surrogate (Postgres text). */
function cleanBody(text: string): string {
  return text.replace(/\u0000/g, "").toWellFormed();
}

/** A count the child already reported in its metadata, if it is a plausible one. */
function countOf(v: unknown): number | undefined {
  return typeof v === "number" && Number.isInteger(v) && v >= 0 ? v : undefined;
}

export interface PipelineDeps {
  log: Logger;
  findReusable: (checksum: string) => Promise<ReusableText | null>;
}

type PipelineConfig = Pick<
  Config,
  | "ATTACHMENT_TEMP_DIR"
  | "ATTACHMENT_MEMORY_MAX_BYTES"
  | "ATTACHMENT_TEMP_FILE_MAX_BYTES"
  | "TEMP_FILE_ORPHAN_MINUTES"
  | "EXTRACT_POOL_SIZE"
  | "EXTRACT_RSS_LIMIT_MB"
  | "EXTRACT_TIMEOUT_MS"
  | "EXTRACT_MAX_PAGES"
  | "EXTRACT_MAX_TEXT_BYTES"
  | "EXTRACT_RECYCLE_AFTER"
  | "PDF_ENGINE"
  | "ATTACHMENT_MAX_PER_MESSAGE"
  | "EXTRACT_OCR"
  | "EXTRACT_OCR_LANGUAGES"
  | "EXTRACT_OCR_POOL_SIZE"
  | "EXTRACT_OCR_RSS_LIMIT_MB"
  | "EXTRACT_OCR_TIMEOUT_MS"
  | "EXTRACT_OCR_MAX_PAGES"
>;

/** OCR rendering of PDF pages: 300 DPI, as scanners do; pages and images capped at 40 megapixels. */
const OCR_DPI = 300;
const OCR_MAX_PIXELS = 40_000_000;

const EMPTY_SHA256 = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

/** Fetch errors the sync job retries instead of recording fetch_failed. */
const RETRYABLE = new Set(["rate_limited", "transient", "auth_revoked"]);

export type Plan = { route: "memory" | "temp_file" } | { route: "skipped"; reason: "too_large" | "empty" };

/** The route for a part, decided from its size before anything is downloaded. */
export function planRoute(
  size: number,
  config: Pick<Config, "ATTACHMENT_MEMORY_MAX_BYTES" | "ATTACHMENT_TEMP_FILE_MAX_BYTES">,
): Plan {
  if (size > config.ATTACHMENT_TEMP_FILE_MAX_BYTES) return { route: "skipped", reason: "too_large" };
  if (size <= 0) return { route: "skipped", reason: "empty" };
  return { route: size > config.ATTACHMENT_MEMORY_MAX_BYTES ? "temp_file" : "memory" };
}

export function sha256Hex(bytes: Uint8Array): string {
  return createHash("sha256").update(bytes).digest("hex");
}

// Postgres jsonb rejects \u0000 and lone surrogates just as text columns do; parser error messages
// and document titles can carry both. Long strings are cut: metadata is not a second text column.
function safeString(v: string): string {
  return v.slice(0, 1000).replace(/\u0000|[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "");
}

function compact(o: Record<string, unknown>): Record<string, unknown> {
  return Object.fromEntries(
    Object.entries(o)
      .filter(([, v]) => v !== undefined && v !== null)
      .map(([k, v]) => [k, typeof v === "string" ? safeString(v) : v]),
  );
}

export async function createAttachmentPipeline(
  config: PipelineConfig,
  deps: PipelineDeps,
): Promise<AttachmentPipeline> {
  const { log } = deps;
  const dir = await ensureTempDir(config.ATTACHMENT_TEMP_DIR);
  await sweepOrphanTempFiles(dir, config.TEMP_FILE_ORPHAN_MINUTES, log);
  // Orphans can only come from a process that died mid-extraction; checking at the orphan age's
  // own pace is enough, and the timer never keeps the process alive.
  const sweeper = setInterval(
    () =>
      void sweepOrphanTempFiles(dir, config.TEMP_FILE_ORPHAN_MINUTES, log).catch((err: Error) =>
        log.error({ err: err.message }, "temp file sweep failed"),
      ),
    config.TEMP_FILE_ORPHAN_MINUTES * 60_000,
  );
  sweeper.unref();

  const pool: ExtractPool = createExtractPool({
    size: config.EXTRACT_POOL_SIZE,
    rssLimitMb: config.EXTRACT_RSS_LIMIT_MB,
    timeoutMs: config.EXTRACT_TIMEOUT_MS,
    recycleAfter: config.EXTRACT_RECYCLE_AFTER,
    // Children may read this directory (temp-file route) and nothing else but their code.
    tempDir: dir,
    log,
  });
  const limits = {
    maxPages: config.EXTRACT_MAX_PAGES,
    maxTextBytes: config.EXTRACT_MAX_TEXT_BYTES,
    maxXmlBytes: docxXmlCap(config.EXTRACT_RSS_LIMIT_MB),
  };
  // OCR children: a pool of their own, so a page of OCR (seconds) never holds a text extraction
  // back, at niceness 10 so that text extraction and the sync keep the CPU when both want it.
  // The language folders are resolved now: a missing @tesseract.js-data package fails start-up.
  const ocr: OcrOptions | null = config.EXTRACT_OCR
    ? {
        languages: config.EXTRACT_OCR_LANGUAGES,
        maxPages: config.EXTRACT_OCR_MAX_PAGES,
        dpi: OCR_DPI,
        maxPixels: OCR_MAX_PIXELS,
      }
    : null;
  const ocrPool: ExtractPool | null = ocr
    ? createExtractPool({
        size: config.EXTRACT_OCR_POOL_SIZE,
        rssLimitMb: config.EXTRACT_OCR_RSS_LIMIT_MB,
        timeoutMs: config.EXTRACT_OCR_TIMEOUT_MS,
        recycleAfter: config.EXTRACT_RECYCLE_AFTER,
        tempDir: dir,
        readDirs: ocrLanguageDirs(ocr.languages),
        nice: 10,
        log,
      })
    : null;

  async function findReusable(checksum: string): Promise<ReusableText | null> {
    try {
      return await deps.findReusable(checksum);
    } catch (err) {
      // Reuse is an optimisation: a failed lookup costs one extraction, not the attachment.
      log.warn({ err: (err as Error).message }, "checksum reuse lookup failed");
      return null;
    }
  }

  async function withSource<T>(
    bytes: Buffer,
    route: "memory" | "temp_file",
    fn: (source: ExtractRequest["source"]) => Promise<T>,
  ): Promise<T> {
    if (route === "memory") return fn({ type: "bytes", bytes });
    // Mid-size attachments go through a private temp file: the child reads it, the parent does not
    // ship tens of MB over IPC, and the file is gone before this function returns, whatever happened.
    const file = await writeTempFile(dir, bytes);
    try {
      return await fn({ type: "file", path: file });
    } finally {
      await removeTempFile(file, log);
    }
  }

  /** Text extraction, then OCR of what it could not read (PDF pages without text), when on. */
  async function extractWithOcr(request: Omit<ExtractRequest, "source">, source: ExtractRequest["source"]) {
    const outcome = await pool.run({ ...request, source });
    if (
      ocrPool === null ||
      ocr === null ||
      request.kind !== "pdf" ||
      outcome.skippedReason !== null ||
      // PDFium counts pages without text; pdf-parse (PDF_ENGINE=pdf-parse) only flags a document without any.
      !((countOf(outcome.details.pages_without_text) ?? 0) > 0 || outcome.details.no_text_layer === true)
    )
      return outcome;
    const read = await ocrPool.run({ ...request, kind: "ocr-pdf", ocr, source });
    if (read.skippedReason !== null || read.text === null) {
      // OCR failed or was cut off: the text layer's result stands, and says why OCR is missing.
      return { ...outcome, details: { ...outcome.details, ocr_skipped: read.skippedReason ?? "no text" } };
    }
    return read;
  }

  async function run(
    ref: AttachmentRef,
    fetchBytes: () => Promise<Buffer>,
    started: number,
    index: number | undefined,
  ): Promise<AttachmentResult> {
    const base = { partId: ref.partId, filename: ref.filename, mimeType: ref.mimeType, contentId: ref.contentId };
    const finish = (
      route: AttachmentRoute,
      fields: {
        size: number;
        checksum: string | null;
        detectedType: string | null;
        text?: string | null;
        textTruncated?: boolean;
        skippedReason?: SkippedReason | null;
        metadata?: Record<string, unknown>;
      },
    ): AttachmentResult => {
      const text = fields.text ?? null;
      const skippedReason = fields.skippedReason ?? null;
      return {
        ...base,
        size: fields.size,
        detectedType: fields.detectedType,
        checksum: fields.checksum,
        text,
        textTruncated: fields.textTruncated ?? false,
        route,
        skippedReason,
        metadata: compact({
          ...fields.metadata,
          route,
          detected_type: fields.detectedType,
          size: fields.size,
          // The child counts as it cleans (see child.ts); counting ~2 MB of text again here would
          // take the parent's share of a core from the sibling children.
          words: text === null ? undefined : (countOf(fields.metadata?.words) ?? countWords(text)),
          characters: text === null ? undefined : (countOf(fields.metadata?.characters) ?? countCharacters(text)),
          duration_ms: Math.round(performance.now() - started),
          skipped_reason: skippedReason ?? undefined,
        }),
      };
    };

    if (index !== undefined && index >= config.ATTACHMENT_MAX_PER_MESSAGE) {
      return finish("skipped", {
        size: ref.size,
        checksum: null,
        detectedType: null,
        skippedReason: "too_many_parts",
        metadata: { reason: `part ${index + 1} of a message: only ${config.ATTACHMENT_MAX_PER_MESSAGE} are fetched` },
      });
    }
    const plan = planRoute(ref.size, config);
    if (plan.route === "skipped" && plan.reason === "too_large") {
      return finish("skipped", {
        size: ref.size,
        checksum: null,
        detectedType: null,
        skippedReason: "too_large",
        metadata: { reason: `declared size over ${config.ATTACHMENT_TEMP_FILE_MAX_BYTES} bytes: not downloaded` },
      });
    }
    // Gmail's size is of the decoded bytes: zero means there is nothing to fetch.
    if (plan.route === "skipped")
      return finish("skipped", {
        size: 0,
        checksum: EMPTY_SHA256,
        detectedType: "inode/x-empty",
        skippedReason: "empty",
        metadata: { reason: "zero bytes" },
      });

    // Only a download is saved: bytes that came inline with the message (or a local file, for
    // `gmail-sync extract`) cost nothing more to sniff.
    const download = ref.attachmentId !== null && ref.inlineData === null;
    const declared = download ? skipBeforeDownload(ref, ocr !== null) : null;
    if (declared !== null) {
      return finish("skipped", {
        size: ref.size,
        checksum: null,
        detectedType: null,
        skippedReason: declared.reason,
        metadata: { reason: declared.detail },
      });
    }

    let bytes: Buffer;
    try {
      bytes = await fetchBytes();
    } catch (err) {
      if (isGmailError(err) && RETRYABLE.has(err.kind)) throw err;
      const reason = isGmailError(err) ? `${err.kind}: ${err.message}` : String((err as Error)?.message ?? err);
      return finish("skipped", {
        size: ref.size,
        checksum: null,
        detectedType: null,
        skippedReason: "fetch_failed",
        metadata: { reason: reason.slice(0, 200) },
      });
    }
    attachmentDownloadedBytesTotal.inc(bytes.length);
    const size = bytes.length;
    const checksum = sha256Hex(bytes);
    // Gmail's size is an estimate we planned with; the decoded bytes decide.
    const actual = planRoute(size, config);
    if (actual.route === "skipped") {
      const empty = actual.reason === "empty";
      const reason = empty ? "zero bytes" : `decoded size over ${config.ATTACHMENT_TEMP_FILE_MAX_BYTES} bytes`;
      return finish("skipped", {
        size,
        checksum,
        detectedType: empty ? "inode/x-empty" : null,
        skippedReason: actual.reason,
        metadata: { reason },
      });
    }
    const route = actual.route;

    const sniffed = sniff(bytes, ref.mimeType, ref.filename);
    const ocrImage = ocrPool !== null && sniffed.kind === "skip" && OCR_IMAGE_TYPES.has(sniffed.detectedType);
    if (sniffed.kind === "skip" && !ocrImage) {
      return finish(route, {
        size,
        checksum,
        detectedType: sniffed.detectedType,
        skippedReason: sniffed.reason,
        metadata: { reason: `detected ${sniffed.detectedType}` },
      });
    }

    const reusable = await findReusable(checksum);
    // With OCR on, what an earlier extraction without OCR stored for an image (unsupported_type)
    // or a scan (pages without text) is not the last word: read it again.
    const beforeOcr =
      ocr !== null &&
      reusable !== null &&
      reusable.metadata.ocr !== true &&
      (ocrImage ||
        (countOf(reusable.metadata.pages_without_text) ?? 0) > 0 ||
        reusable.metadata.no_text_layer === true);
    if (reusable && !beforeOcr) {
      attachmentChecksumReuseTotal.inc();
      return finish(route, {
        size,
        checksum,
        detectedType: reusable.detectedType ?? sniffed.detectedType,
        text: reusable.text,
        textTruncated: reusable.textTruncated,
        skippedReason: reusable.skippedReason ?? null,
        metadata: { ...reusable.metadata, reused: true },
      });
    }

    const outcome = await withSource(bytes, route, (source) =>
      ocrImage && ocrPool !== null && ocr !== null
        ? ocrPool.run({
            kind: "ocr-image",
            declaredType: ref.mimeType,
            charset: null,
            detectedType: sniffed.detectedType,
            limits,
            ocr,
            source,
          })
        : extractWithOcr(
            {
              kind: sniffed.kind === "skip" ? "text" : sniffed.kind,
              declaredType: ref.mimeType,
              charset: ref.charset,
              detectedType: sniffed.detectedType,
              limits,
              pdfEngine: config.PDF_ENGINE,
            },
            source,
          ),
    );
    return finish(route, {
      size,
      checksum,
      detectedType: outcome.detectedType,
      text: outcome.skippedReason ? null : outcome.text,
      textTruncated: outcome.textTruncated,
      skippedReason: outcome.skippedReason,
      metadata: { ...outcome.details, extractor: outcome.extractor, extractor_version: outcome.extractorVersion },
    });
  }

  return {
    async process(ref, fetchBytes, opts = {}) {
      const started = performance.now();
      const result = await run(ref, fetchBytes, started, opts.index);
      // Outcome only: never the filename's content, the text or the bytes.
      log.debug(
        {
          partId: ref.partId,
          route: result.route,
          detectedType: result.detectedType,
          skippedReason: result.skippedReason,
          size: result.size,
          ms: result.metadata.duration_ms,
        },
        "attachment processed",
      );
      attachmentProcessingSeconds.observe(
        { size_bucket: sizeBucket(result.size) },
        (performance.now() - started) / 1000,
      );
      attachmentsTotal.inc({ route: result.route });
      if (result.skippedReason) attachmentsSkippedTotal.inc({ reason: result.skippedReason });
      if (result.text) attachmentExtractedBytesTotal.inc(Buffer.byteLength(result.text, "utf8"));
      const pages = result.metadata.pages;
      if (typeof pages === "number" && result.metadata.reused !== true) attachmentExtractedPagesTotal.inc(pages);
      return result;
    },
    async htmlBodyText(html) {
      if (html.length <= HTML_BODY_INLINE_MAX_CHARS) return cleanBody(htmlBodyToText(html));
      // Long bodies: html-to-text's DOM costs ~60× the input in memory (4 M characters: ~0.9 s
      // and ~300 MB), so they are converted in a child, input capped like an HTML attachment.
      const cap = htmlInputCap(limits);
      const input = html.length > cap ? html.slice(0, cap) : html;
      try {
        const outcome = await pool.run({
          kind: "html",
          htmlStyle: "body",
          source: { type: "bytes", bytes: Buffer.from(input, "utf8") },
          declaredType: "text/html",
          charset: "utf-8",
          detectedType: "text/html",
          limits,
        });
        if (outcome.text !== null) return outcome.text;
        log.warn({ reason: outcome.skippedReason }, "HTML body conversion failed in its child; tags stripped instead");
      } catch (err) {
        log.warn({ err: (err as Error).message }, "HTML body conversion failed; tags stripped instead");
      }
      // Linear and DOM-free: bounded time and memory for any input, and the message is stored.
      return cleanText(stripTags(input), limits.maxTextBytes).text;
    },
    async close() {
      clearInterval(sweeper);
      await Promise.all([pool.close(), ocrPool?.close()]);
    },
  };
}
