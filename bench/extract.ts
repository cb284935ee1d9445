// `npm run bench:extract [-- --json]`: the attachment pipeline (PDFium, the default PDF engine)
// against pdftotext (poppler) at equal parallelism, in MB/s and pages/s, on generated PDFs and on
// the real PDFs of ../shared/corpus, with pdf-parse (pdf.js) alone beside it; word recall against
// pdftotext on the corpus PDFs, for PDFium and for pdf.js, and the files where they disagree most;
// DOCX throughput; hostile PDFs (bounded); the parent's peak RSS with one 50 MB attachment and with
// 200 small ones; OCR pages/s and word recall on generated images of known text; and what leaving
// out inline images and unreadable declared types saves on the emulator's generated mailbox.
// Not a test: figures depend on the machine. Targets (issue 16): pipeline ≥ 1.0× pdftotext on both
// sets; recall median ≥ 0.98, p10 ≥ 0.85; parent RSS < 300 MB above idle; OCR recall ≥ 0.9.
//   BENCH_EXTRACT_RUNS (default 5): interleaved timed runs per comparison (`npm run bench` uses
//   fewer to fit its time budget); BENCH_EXTRACT_REAL_CORPUS=false skips the shared real PDFs;
//   BENCH_EXTRACT_OCR=false and BENCH_EXTRACT_MAILBOX=false skip those parts.
import { type ChildProcess, execFile, fork, spawn } from "node:child_process";
import { mkdir, mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import {
  concatTransformationMatrix,
  drawObject,
  PDFDocument,
  PDFName,
  popGraphicsState,
  pushGraphicsState,
  rgb,
  StandardFonts,
} from "pdf-lib";
import { PDFParse } from "pdf-parse";
import pino from "pino";
import { DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET, startEmulator } from "@gmail-sync/emulator";
import { makeCsv, makeDocx, makeHtml, makeLoopingPdf, makePdf } from "@gmail-sync/emulator/generate";
import { PDF_PAGES, prose, rng, writeGeneratedPdfs } from "./lib/generated-pdfs.ts";
import { createExtractionApp } from "../src/app.ts";
import { skipBeforeDownload } from "../src/attachments/declared-type.ts";
import type { AttachmentPipeline, AttachmentRef } from "../src/attachments/types.ts";
import { loadConfig } from "../src/config.ts";
import { extractPdfium } from "../src/extract/pdfium.ts";
import { parseGmailMessage } from "../src/gmail/parse-message.ts";
import type { GmailMessage } from "../src/gmail/port.ts";
import { encodePng, renderTextPage, scannedPdf, wordRecall } from "../test/attachments/fixtures/text-images.ts";

const json = process.argv.includes("--json");
const log = pino({ level: "silent" });
const self = fileURLToPath(import.meta.url);
const MB = 1024 * 1024;

// --- fixtures ---------------------------------------------------------------------------------
const RUNS = Math.max(1, Number(process.env.BENCH_EXTRACT_RUNS ?? 5));

async function makeBigPdf(file: string, images: number): Promise<void> {
  // Text pages plus incompressible raw RGB images: the shape of a scanned-and-OCRed 50 MB report.
  const doc = await PDFDocument.create({ updateMetadata: false });
  const font = await doc.embedFont(StandardFonts.Helvetica);
  const r = rng(99);
  for (let i = 0; i < images; i++) {
    const side = 640;
    const pixels = Buffer.alloc(side * side * 3);
    for (let j = 0; j < pixels.length; j += 4)
      pixels.writeUInt32LE(Math.floor(r() * 2 ** 32), Math.min(j, pixels.length - 4));
    const image = doc.context.register(
      doc.context.stream(pixels, {
        Type: "XObject",
        Subtype: "Image",
        Width: side,
        Height: side,
        ColorSpace: "DeviceRGB",
        BitsPerComponent: 8,
      }),
    );
    const page = doc.addPage([612, 792]);
    page.node.setXObject(PDFName.of("Im0"), image);
    page.pushOperators(
      pushGraphicsState(),
      concatTransformationMatrix(400, 0, 0, 400, 100, 50),
      drawObject("Im0"),
      popGraphicsState(),
    );
    page.drawText(prose(i, 600), { x: 40, y: 740, size: 9, font, color: rgb(0, 0, 0), maxWidth: 530, lineHeight: 11 });
  }
  await writeFile(file, await doc.save({ useObjectStreams: false }));
}

async function buildCorpus(dir: string) {
  const pdfs = await writeGeneratedPdfs(dir);
  const docxs: Array<{ file: string; size: number }> = [];
  for (const paragraphs of [200, 1000, 3000]) {
    const file = path.join(dir, `gen-${paragraphs}para.docx`);
    const paras = Array.from({ length: paragraphs }, (_, i) => prose(paragraphs + i, 400));
    await writeFile(
      file,
      await makeDocx({
        paragraphs: paras,
        table: [
          ["Quarter", "Revenue"],
          ["Q1", "100"],
          ["Q2", "120"],
        ],
        footnote: "Figures unaudited.",
      }),
    );
    docxs.push({ file, size: (await stat(file)).size });
  }
  return { pdfs, docxs };
}

// --- helpers ----------------------------------------------------------------------------------
function refFor(file: string, size: number, mimeType: string, i: number): AttachmentRef {
  return {
    partId: String(i),
    filename: path.basename(file),
    mimeType,
    charset: null,
    contentId: null,
    size,
    attachmentId: "a",
    inlineData: null,
  };
}

async function runLimited<T>(items: T[], parallel: number, fn: (item: T, i: number) => Promise<void>): Promise<void> {
  let next = 0;
  await Promise.all(
    Array.from({ length: parallel }, async () => {
      while (next < items.length) {
        const i = next++;
        await fn(items[i]!, i);
      }
    }),
  );
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)]!;
}

async function timePipeline(
  pipeline: AttachmentPipeline,
  files: Array<{ file: string; size: number }>,
  mimeType: string,
  parallel: number,
): Promise<{ seconds: number; pages: number }> {
  let pages = 0;
  const t = performance.now();
  await runLimited(files, parallel, async (f, i) => {
    const r = await pipeline.process(refFor(f.file, f.size, mimeType, i), () => readFile(f.file));
    if (r.skippedReason)
      throw new Error(`${f.file}: unexpected skip ${r.skippedReason} (${String(r.metadata.reason)})`);
    pages += typeof r.metadata.pages === "number" ? r.metadata.pages : 0;
  });
  return { seconds: (performance.now() - t) / 1000, pages };
}

function pdftotext(file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    execFile("pdftotext", ["-q", file, "-"], { maxBuffer: 256 * MB }, (err) => (err ? reject(err) : resolve()));
  });
}

function pdftotextText(file: string): Promise<string> {
  return new Promise((resolve) => {
    execFile("pdftotext", ["-q", file, "-"], { maxBuffer: 256 * MB, timeout: 60_000 }, (err, stdout) =>
      resolve(err ? "" : stdout),
    );
  });
}

async function timePdftotext(files: Array<{ file: string }>, parallel: number): Promise<number> {
  const t = performance.now();
  await runLimited(files, parallel, (f) => pdftotext(f.file));
  return (performance.now() - t) / 1000;
}

// --- pdf-parse alone in child processes: what the pipeline adds on top, at equal parallelism -----
// Each child parses the files it is handed (pdf-parse's plain getText, as the notes measured it)
// and answers the page count: no sniffing, hashing, limits, hygiene or byte transfer.
function bareWorker(): void {
  process.on("message", async (file: string) => {
    const parser = new PDFParse({ data: new Uint8Array(await readFile(file)), isEvalSupported: false });
    const r = await parser.getText();
    await parser.destroy();
    process.send?.(r.pages.length);
  });
}

interface BarePool {
  time(files: Array<{ file: string }>): Promise<number>;
  close(): void;
}

function startBarePool(size: number): BarePool {
  const children: ChildProcess[] = Array.from({ length: size }, () =>
    fork(self, ["--bare-worker"], { stdio: ["ignore", "ignore", "inherit", "ipc"] }),
  );
  const parse = (child: ChildProcess, file: string) =>
    new Promise<void>((resolve) => {
      child.once("message", () => resolve());
      child.send(file);
    });
  return {
    async time(files) {
      let next = 0;
      const t = performance.now();
      await Promise.all(
        children.map(async (child) => {
          while (next < files.length) await parse(child, files[next++]!.file);
        }),
      );
      return (performance.now() - t) / 1000;
    },
    close() {
      for (const c of children) c.kill();
    },
  };
}

// --- RSS scenarios (each in a fresh process so the baseline is clean) --------------------------
function vm(field: "VmRSS" | "VmHWM"): Promise<number> {
  return readFile("/proc/self/status", "utf8").then(
    (s) => Number(new RegExp(`^${field}:\\s+(\\d+)`, "m").exec(s)?.[1] ?? 0) / 1024,
  );
}

async function scenario(kind: "big" | "small", dir: string): Promise<void> {
  const config = loadConfig({ ...process.env, ATTACHMENT_TEMP_DIR: path.join(dir, "tmp-attachments") });
  const { pipeline } = await createExtractionApp(config, { log });
  const files = (await readdir(path.join(dir, kind))).map((f) => path.join(dir, kind, f)).sort();
  // Warm the children (PDFium, mammoth loaded) so the measurement is of the steady state.
  const warm = path.join(dir, "warm.pdf");
  for (let i = 0; i < config.EXTRACT_POOL_SIZE * 2; i++)
    await pipeline.process(refFor(warm, (await stat(warm)).size, "application/pdf", i), () => readFile(warm));
  (globalThis as { gc?: () => void }).gc?.();
  await new Promise((r) => setTimeout(r, 200));
  const idle = await vm("VmRSS");
  // Reset the kernel's high-water mark: VmHWM then records the true peak, even inside sync work.
  await writeFile("/proc/self/clear_refs", "5");
  const t = performance.now();
  const sizes = await Promise.all(files.map((f) => stat(f).then((s) => s.size)));
  const types: Record<string, string> = {
    ".pdf": "application/pdf",
    ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
    ".csv": "text/csv",
    ".html": "text/html",
  };
  const results = await Promise.all(
    files.map((f, i) =>
      pipeline.process(refFor(f, sizes[i]!, types[path.extname(f)] ?? "application/octet-stream", i), () =>
        readFile(f),
      ),
    ),
  );
  const seconds = (performance.now() - t) / 1000;
  const peak = await vm("VmHWM");
  await pipeline.close();
  const skipped = results.filter((r) => r.skippedReason).map((r) => r.skippedReason);
  const routes = [...new Set(results.map((r) => r.route))];
  process.stdout.write(
    `${JSON.stringify({ idleMb: idle, peakMb: peak, aboveIdleMb: peak - idle, seconds, files: files.length, routes, skipped })}\n`,
  );
}

function runScenario(
  kind: "big" | "small",
  dir: string,
): Promise<{
  idleMb: number;
  peakMb: number;
  aboveIdleMb: number;
  seconds: number;
  files: number;
  routes: string[];
  skipped: string[];
}> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ["--expose-gc", self, "--scenario", kind, dir], {
      stdio: ["ignore", "pipe", "inherit"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.on("exit", (code) =>
      code === 0
        ? resolve(JSON.parse(out.trim().split("\n").pop()!))
        : reject(new Error(`scenario ${kind} exited ${code}`)),
    );
  });
}

// --- recall -----------------------------------------------------------------------------------
/** The share of the reference's letters and digits (whitespace ignored) found in the text: blind to how words were split. */
function charRecall(actual: string, expected: string): number {
  const chars = (s: string) => s.toLowerCase().match(/[\p{L}\p{N}]/gu) ?? [];
  const have = new Map<string, number>();
  for (const c of chars(actual)) have.set(c, (have.get(c) ?? 0) + 1);
  let hit = 0;
  const want = chars(expected);
  for (const c of want) {
    const n = have.get(c) ?? 0;
    if (n > 0) {
      hit++;
      have.set(c, n - 1);
    }
  }
  return want.length === 0 ? 1 : hit / want.length;
}

/** Percentile with linear interpolation between closest ranks (numpy's default). */
function percentile(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  const at = (s.length - 1) * p;
  const lo = Math.floor(at);
  return s[lo]! + (s[Math.min(lo + 1, s.length - 1)]! - s[lo]!) * (at - lo);
}

const wordCount = (s: string) => (s.toLowerCase().match(/[\p{L}\p{N}]+/gu) ?? []).length;

// --- children's RSS (the OCR and hostile parts) --------------------------------------------------
async function childrenRssMb(): Promise<number> {
  let total = 0;
  for (const task of await readdir(`/proc/${process.pid}/task`).catch(() => [] as string[])) {
    const list = await readFile(`/proc/${process.pid}/task/${task}/children`, "utf8").catch(() => "");
    for (const pid of list.trim().split(/\s+/).filter(Boolean)) {
      const status = await readFile(`/proc/${pid}/status`, "utf8").catch(() => "");
      total = Math.max(total, Number(/^VmRSS:\s+(\d+)/m.exec(status)?.[1] ?? 0) / 1024);
    }
  }
  return total;
}

async function sampling<T>(fn: () => Promise<T>): Promise<{ value: T; peakChildMb: number }> {
  let peak = 0;
  let busy = false;
  const timer = setInterval(async () => {
    if (busy) return;
    busy = true;
    peak = Math.max(peak, await childrenRssMb());
    busy = false;
  }, 25);
  try {
    return { value: await fn(), peakChildMb: peak };
  } finally {
    clearInterval(timer);
  }
}

// --- OCR ----------------------------------------------------------------------------------------
async function ocrBench(dir: string): Promise<{
  pages: number;
  seconds: number;
  pagesPerSecond: number;
  recallMedian: number;
  recallMin: number;
  pdfPages: number;
  pdfSeconds: number;
  pdfRecall: number;
  peakChildMb: number;
  config: { pool: number; rssMb: number; timeoutMs: number; maxPages: number };
}> {
  // Four dense pages of known prose (≈ 35 lines of 11 pt text each), as 300-DPI PNGs and as a
  // scanned PDF (the same pages embedded as images) whose pages PDFium renders for OCR at 300 DPI.
  const pageLines = Array.from({ length: 4 }, (_, p) =>
    Array.from({ length: 35 }, (_, l) => prose(p * 1000 + l, 80).slice(0, 80)),
  );
  const images = await Promise.all(pageLines.map(async (lines) => encodePng(await renderTextPage(lines, 300, 11))));
  const pdf = await scannedPdf(pageLines, 200);
  const config = loadConfig({ ...process.env, ATTACHMENT_TEMP_DIR: path.join(dir, "tmp-ocr"), EXTRACT_OCR: "true" });
  const { pipeline, close } = await createExtractionApp(config, { log });
  try {
    const ref = (bytes: Buffer, mimeType: string, i: number): AttachmentRef => ({
      partId: String(i),
      filename: mimeType === "application/pdf" ? "scan.pdf" : `page-${i}.png`,
      mimeType,
      charset: null,
      contentId: null,
      size: bytes.length,
      attachmentId: "a",
      inlineData: null,
    });
    // Untimed: loads the core and the language data in the OCR child (about a second).
    await pipeline.process(ref(images[0]!, "image/png", 99), async () => images[0]!);
    const recalls: number[] = [];
    const t = performance.now();
    const { peakChildMb: peakImages } = await sampling(async () => {
      for (const [i, png] of images.entries()) {
        const r = await pipeline.process(ref(png, "image/png", i), async () => png);
        recalls.push(wordRecall(r.text ?? "", pageLines[i]!.join(" ")));
      }
    });
    const seconds = (performance.now() - t) / 1000;
    const t2 = performance.now();
    const { value: scan, peakChildMb: peakPdf } = await sampling(() =>
      pipeline.process(ref(pdf, "application/pdf", 50), async () => pdf),
    );
    const pdfSeconds = (performance.now() - t2) / 1000;
    return {
      pages: images.length,
      seconds,
      pagesPerSecond: images.length / seconds,
      recallMedian: median(recalls),
      recallMin: Math.min(...recalls),
      pdfPages: Number(scan.metadata.ocr_pages ?? 0),
      pdfSeconds,
      pdfRecall: wordRecall(scan.text ?? "", pageLines.flat().join(" ")),
      peakChildMb: Math.max(peakImages, peakPdf),
      config: {
        pool: config.EXTRACT_OCR_POOL_SIZE,
        rssMb: config.EXTRACT_OCR_RSS_LIMIT_MB,
        timeoutMs: config.EXTRACT_OCR_TIMEOUT_MS,
        maxPages: config.EXTRACT_OCR_MAX_PAGES,
      },
    };
  } finally {
    await close();
  }
}

// --- the generated mailbox: what declared-type skips save -----------------------------------------
async function mailboxSavings(messages: number): Promise<{
  messages: number;
  parts: number;
  fetchedBefore: number;
  bytesBefore: number;
  skipped: number;
  skippedInline: number;
  unitsSaved: number;
  bytesSaved: number;
  unitsPerMessageSaved: number;
}> {
  const email = "bench-owner@example.com";
  // The demo's mailbox: generated mail with every attachment kind, Gmail's rendering; no quota here.
  const emu = await startEmulator({
    port: 0,
    messages,
    accounts: [email],
    userQuotaUnitsPerMinute: 0,
    projectQuotaUnitsPerMinute: 0,
    maxConcurrentPerUser: 0,
    addedNotFoundRate: 0,
    faultRate: 0,
  });
  try {
    const refresh = await emu.control.issueRefreshToken(email);
    const token = (await (
      await fetch(emu.tokenUrl, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "refresh_token",
          refresh_token: refresh,
          client_id: DEFAULT_CLIENT_ID,
          client_secret: DEFAULT_CLIENT_SECRET,
        }),
      })
    ).json()) as { access_token: string };
    const api = async (p: string) =>
      (
        await fetch(`${emu.gmailRootUrl}gmail/v1/users/me/${p}`, {
          headers: { authorization: `Bearer ${token.access_token}` },
        })
      ).json() as Promise<Record<string, unknown>>;
    const ids: string[] = [];
    let pageToken: string | undefined;
    do {
      const page = (await api(`messages?maxResults=500${pageToken ? `&pageToken=${pageToken}` : ""}`)) as {
        messages?: Array<{ id: string }>;
        nextPageToken?: string;
      };
      ids.push(...(page.messages ?? []).map((m) => m.id));
      pageToken = page.nextPageToken;
    } while (pageToken);
    const out = {
      parts: 0,
      fetchedBefore: 0,
      bytesBefore: 0,
      skipped: 0,
      skippedInline: 0,
      unitsSaved: 0,
      bytesSaved: 0,
    };
    await runLimited(ids, 8, async (id) => {
      const parsed = parseGmailMessage((await api(`messages/${id}?format=full`)) as GmailMessage);
      for (const ref of parsed.attachments) {
        out.parts++;
        // attachments.get: 5 quota units and the bytes; inline data (small parts) comes with the message.
        const fetched = ref.attachmentId !== null && ref.inlineData === null;
        if (fetched) {
          out.fetchedBefore++;
          out.bytesBefore += ref.size;
        }
        // As the pipeline decides: only a part that would be downloaded is left out.
        const skip = fetched ? skipBeforeDownload(ref, false) : null;
        if (skip === null) continue;
        out.skipped++;
        if (skip.reason === "inline_image") out.skippedInline++;
        out.unitsSaved += 5;
        out.bytesSaved += ref.size;
      }
    });
    return { messages: ids.length, ...out, unitsPerMessageSaved: out.unitsSaved / ids.length };
  } finally {
    await emu.close();
  }
}

// --- main -------------------------------------------------------------------------------------
async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "gmail-sync-bench-extract-"));
  try {
    const say = (s: string) => !json && process.stderr.write(`${s}\n`);
    say("building the corpus ...");
    const { pdfs, docxs } = await buildCorpus(dir);
    // Every page, all text: the same work pdftotext does (production caps stop at 1 MB of text).
    const config = loadConfig({
      ...process.env,
      ATTACHMENT_TEMP_DIR: path.join(dir, "tmp-attachments"),
      EXTRACT_MAX_PAGES: String(Math.max(...PDF_PAGES)),
      EXTRACT_MAX_TEXT_BYTES: String(256 * MB),
    });
    const parallel = config.EXTRACT_POOL_SIZE;
    const pdfBytes = pdfs.reduce((a, f) => a + f.size, 0);
    const pdfPages = pdfs.reduce((a, f) => a + f.pages, 0);
    const docxBytes = docxs.reduce((a, f) => a + f.size, 0);

    const { pipeline } = await createExtractionApp(config, { log });
    say(
      `PDF throughput: ${pdfs.length} files, ${(pdfBytes / MB).toFixed(2)} MB, ${pdfPages} pages, parallelism ${parallel} ...`,
    );
    // One untimed pass warms every side (children load PDFium or pdf.js; poppler's pages hit the cache).
    const barePool = startBarePool(parallel);
    await timePipeline(pipeline, pdfs, "application/pdf", parallel);
    await barePool.time(pdfs);
    await timePdftotext(pdfs, parallel);
    const pipeRuns: number[] = [];
    const bareRuns: number[] = [];
    const popplerRuns: number[] = [];
    let pagesSeen = 0;
    for (let i = 0; i < RUNS; i++) {
      const p = await timePipeline(pipeline, pdfs, "application/pdf", parallel);
      pipeRuns.push(p.seconds);
      pagesSeen = p.pages;
      bareRuns.push(await barePool.time(pdfs));
      popplerRuns.push(await timePdftotext(pdfs, parallel));
    }
    const bareRatio = median(bareRuns.map((s, i) => popplerRuns[i]! / s));
    const pipelineVsBare = median(pipeRuns.map((s, i) => bareRuns[i]! / s));
    if (pagesSeen !== pdfPages) throw new Error(`pipeline read ${pagesSeen} pages, expected ${pdfPages}`);
    const pipeS = median(pipeRuns);
    const popS = median(popplerRuns);
    // Each pipeline run is followed at once by a pdftotext run: on a shared machine the pair sees
    // about the same load, so the median of per-pair ratios is steadier than a ratio of medians.
    const ratio = median(pipeRuns.map((s, i) => popplerRuns[i]! / s));

    // Real PDFs from public test corpora, when the shared folder is on this machine (read in place).
    let real: {
      files: number;
      mb: number;
      pages: number;
      pipeS: number;
      popS: number;
      bareS: number;
      ratio: number;
      bareRatio: number;
    } | null = null;
    let recall: {
      files: number;
      pdfium: { median: number; p10: number; min: number };
      pdfjs: { median: number; p10: number; min: number };
      disagree: Array<{
        file: string;
        words: number;
        pdfium: number;
        pdfjs: number;
        pdfiumChars: number;
        pdfjsChars: number;
      }>;
      lowest: Array<{ file: string; words: number; pdfium: number; pdfiumChars: number }>;
    } | null = null;
    const corpusRoot = path.resolve(path.dirname(self), "../../shared/corpus");
    const realDir = path.join(corpusRoot, "pdf");
    const realNames =
      process.env.BENCH_EXTRACT_REAL_CORPUS === "false" ? [] : await readdir(realDir).catch(() => [] as string[]);
    if (realNames.length > 0) {
      say(`real PDFs: ${realNames.length} files from ${realDir} ...`);
      const realFiles = await Promise.all(
        realNames
          .filter((n) => n.endsWith(".pdf"))
          .sort()
          .map(async (n) => ({ file: path.join(realDir, n), size: (await stat(path.join(realDir, n))).size })),
      );
      const realPages = (await timePipeline(pipeline, realFiles, "application/pdf", parallel)).pages;
      await barePool.time(realFiles);
      await timePdftotext(realFiles, parallel);
      const rp: number[] = [];
      const rb: number[] = [];
      const rq: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        rp.push((await timePipeline(pipeline, realFiles, "application/pdf", parallel)).seconds);
        rb.push(await barePool.time(realFiles));
        rq.push(await timePdftotext(realFiles, parallel));
      }
      real = {
        files: realFiles.length,
        mb: realFiles.reduce((a, f) => a + f.size, 0) / MB,
        pages: realPages,
        pipeS: median(rp),
        popS: median(rq),
        bareS: median(rb),
        ratio: median(rp.map((s, i) => rq[i]! / s)),
        bareRatio: median(rb.map((s, i) => rq[i]! / s)),
      };

      say("word recall against pdftotext: PDFium and pdf.js (PDF_ENGINE=pdf-parse) ...");
      const { pipeline: pdfjs, close: closePdfjs } = await createExtractionApp(
        { ...config, PDF_ENGINE: "pdf-parse" },
        { log },
      );
      const rows: Array<{
        file: string;
        words: number;
        pdfium: number;
        pdfjs: number;
        pdfiumChars: number;
        pdfjsChars: number;
      }> = [];
      for (const [i, f] of realFiles.entries()) {
        const reference = await pdftotextText(f.file);
        const words = wordCount(reference);
        if (words === 0) continue; // no text layer (scans): nothing to recall
        const a = await pipeline.process(refFor(f.file, f.size, "application/pdf", i), () => readFile(f.file));
        const b = await pdfjs.process(refFor(f.file, f.size, "application/pdf", i), () => readFile(f.file));
        rows.push({
          file: path.basename(f.file),
          words,
          pdfium: wordRecall(a.text ?? "", reference),
          pdfjs: wordRecall(b.text ?? "", reference),
          pdfiumChars: charRecall(a.text ?? "", reference),
          pdfjsChars: charRecall(b.text ?? "", reference),
        });
      }
      await closePdfjs();
      const stats = (xs: number[]) => ({ median: median2(xs), p10: percentile(xs, 0.1), min: Math.min(...xs) });
      recall = {
        files: rows.length,
        pdfium: stats(rows.map((r) => r.pdfium)),
        pdfjs: stats(rows.map((r) => r.pdfjs)),
        disagree: [...rows].sort((x, y) => Math.abs(y.pdfium - y.pdfjs) - Math.abs(x.pdfium - x.pdfjs)).slice(0, 6),
        lowest: [...rows].sort((x, y) => x.pdfium - y.pdfium).slice(0, 3),
      };
    }
    barePool.close();

    // What the pipeline itself costs: at parallelism 1, pdf-parse alone in this process (warm, the
    // notes' measurement) vs the pipeline with one child vs pdftotext, interleaved.
    say("parallelism 1: pdf-parse alone vs pipeline vs pdftotext ...");
    const { pipeline: single } = await createExtractionApp({ ...config, EXTRACT_POOL_SIZE: 1 }, { log });
    const bare = async () => {
      const t = performance.now();
      for (const f of pdfs) {
        const parser = new PDFParse({ data: new Uint8Array(await readFile(f.file)), isEvalSupported: false });
        await parser.getText();
        await parser.destroy();
      }
      return (performance.now() - t) / 1000;
    };
    // PDFium's extractor alone in this process (no child, no IPC): the engine's own speed.
    const pdfiumAlone = async () => {
      const t = performance.now();
      for (const f of pdfs)
        await extractPdfium(new Uint8Array(await readFile(f.file)), {
          maxPages: 100_000,
          maxTextBytes: 256 * MB,
          maxXmlBytes: 1,
        });
      return (performance.now() - t) / 1000;
    };
    await bare();
    await pdfiumAlone();
    await timePipeline(single, pdfs, "application/pdf", 1);
    const s1: { bare: number[]; pdfium: number[]; pipe: number[]; pop: number[] } = {
      bare: [],
      pdfium: [],
      pipe: [],
      pop: [],
    };
    for (let i = 0; i < Math.min(3, RUNS); i++) {
      s1.bare.push(await bare());
      s1.pdfium.push(await pdfiumAlone());
      s1.pipe.push((await timePipeline(single, pdfs, "application/pdf", 1)).seconds);
      s1.pop.push(await timePdftotext(pdfs, 1));
    }
    await single.close();
    const pdfParseAloneRatio = median(s1.bare.map((b, i) => s1.pop[i]! / b));
    const pipelineVsPdfParse = median(s1.pipe.map((p, i) => s1.bare[i]! / p));
    const pipelineSerialRatio = median(s1.pipe.map((p, i) => s1.pop[i]! / p));
    const pdfiumAloneSerialRatio = median(s1.pdfium.map((p, i) => s1.pop[i]! / p));

    say("DOCX throughput ...");
    await timePipeline(
      pipeline,
      docxs,
      "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
      parallel,
    );
    const docxRuns: number[] = [];
    for (let i = 0; i < Math.min(3, RUNS); i++)
      docxRuns.push(
        (
          await timePipeline(
            pipeline,
            docxs,
            "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
            parallel,
          )
        ).seconds,
      );

    say("hostile PDFs (bounded by the RSS cap and the wall clock) ...");
    const hostile: Array<{ file: string; outcome: string; seconds: number; peakChildMb: number }> = [];
    const hostileFiles: Array<{ name: string; bytes: () => Promise<Buffer> }> = [
      { name: "generated looping PDF (4^24 form XObjects)", bytes: () => makeLoopingPdf() },
    ];
    const bomb = path.join(corpusRoot, "corrupt", "pdfjs-bomb_giant.pdf");
    if (realNames.length > 0 && (await stat(bomb).catch(() => null)))
      hostileFiles.push({ name: "pdfjs-bomb_giant.pdf (corpus)", bytes: () => readFile(bomb) });
    for (const [i, h] of hostileFiles.entries()) {
      const bytes = await h.bytes();
      const t = performance.now();
      const { value: r, peakChildMb } = await sampling(() =>
        pipeline.process(refFor(h.name, bytes.length, "application/pdf", 900 + i), async () => bytes),
      );
      hostile.push({
        file: h.name,
        outcome: r.skippedReason ?? `text (${r.metadata.words} words)`,
        seconds: (performance.now() - t) / 1000,
        peakChildMb,
      });
    }
    await pipeline.close();

    say("RSS: one 50 MB attachment (temp-file route) ...");
    await Promise.all([mkdir(path.join(dir, "big")), mkdir(path.join(dir, "small"))]);
    await writeFile(path.join(dir, "warm.pdf"), await makePdf({ pages: 2 }));
    await makeBigPdf(path.join(dir, "big", "big.pdf"), 42);
    const bigSize = (await stat(path.join(dir, "big", "big.pdf"))).size;
    const big = await runScenario("big", dir);

    say("RSS: 200 small attachments at once ...");
    for (let i = 0; i < 200; i++) {
      const base = path.join(dir, "small", `s${String(i).padStart(3, "0")}`);
      if (i % 4 === 0)
        await writeFile(`${base}.pdf`, await makePdf({ pages: 1 + (i % 5), text: (p) => prose(i * 100 + p, 2000) }));
      else if (i % 4 === 1)
        await writeFile(`${base}.docx`, await makeDocx({ paragraphs: [prose(i, 3000), prose(i + 1, 3000)] }));
      else if (i % 4 === 2)
        await writeFile(
          `${base}.csv`,
          makeCsv(Array.from({ length: 300 }, (_, r) => [String(r), prose(i * 1000 + r, 60)])),
        );
      else
        await writeFile(
          `${base}.html`,
          makeHtml({ title: `Note ${i}`, paragraphs: Array.from({ length: 50 }, (_, r) => prose(i * 77 + r, 300)) }),
        );
    }
    const small = await runScenario("small", dir);

    let ocr: Awaited<ReturnType<typeof ocrBench>> | null = null;
    if (process.env.BENCH_EXTRACT_OCR !== "false") {
      say("OCR: generated pages of known text (PNG at 300 DPI, and a scanned PDF) ...");
      ocr = await ocrBench(dir);
    }
    let mailbox: Awaited<ReturnType<typeof mailboxSavings>> | null = null;
    if (process.env.BENCH_EXTRACT_MAILBOX !== "false") {
      say("the emulator's generated mailbox: parts left out before download ...");
      mailbox = await mailboxSavings(1000);
    }

    const mbPerSecond = pdfBytes / MB / pipeS;
    const result = {
      engine: config.PDF_ENGINE,
      mbPerSecond: round(mbPerSecond),
      pagesPerSecond: round(pdfPages / pipeS),
      pdftotextMbPerSecond: round(pdfBytes / MB / popS),
      pdftotextPagesPerSecond: round(pdfPages / popS),
      ratioVsPdftotext: round(ratio),
      ratioVsPdftotextBestRuns: round(Math.min(...popplerRuns) / Math.min(...pipeRuns)),
      ratioVsPdftotextRealCorpus: real ? round(real.ratio) : null,
      realCorpus: real
        ? {
            files: real.files,
            mb: round(real.mb),
            pages: real.pages,
            mbPerSecond: round(real.mb / real.pipeS),
            pagesPerSecond: round(real.pages / real.pipeS),
            pdftotextMbPerSecond: round(real.mb / real.popS),
            pdftotextPagesPerSecond: round(real.pages / real.popS),
            pdfParseAloneMbPerSecond: round(real.mb / real.bareS),
            pdfParseAloneRatioVsPdftotext: round(real.bareRatio),
          }
        : null,
      pdfParseAloneRatioVsPdftotext: round(bareRatio),
      pdfParseAloneMbPerSecond: round(pdfBytes / MB / median(bareRuns)),
      pipelineSpeedVsPdfParseAlone: round(pipelineVsBare),
      pdfParseAloneRatioVsPdftotextSerial: round(pdfParseAloneRatio),
      pipelineSpeedVsPdfParseAloneSerial: round(pipelineVsPdfParse),
      pipelineRatioVsPdftotextSerial: round(pipelineSerialRatio),
      pdfiumAloneRatioVsPdftotextSerial: round(pdfiumAloneSerialRatio),
      recall: recall
        ? {
            files: recall.files,
            pdfiumMedian: round3(recall.pdfium.median),
            pdfiumP10: round3(recall.pdfium.p10),
            pdfjsMedian: round3(recall.pdfjs.median),
            pdfjsP10: round3(recall.pdfjs.p10),
            disagree: recall.disagree.map((d) => ({
              ...d,
              pdfium: round3(d.pdfium),
              pdfjs: round3(d.pdfjs),
              pdfiumChars: round3(d.pdfiumChars),
              pdfjsChars: round3(d.pdfjsChars),
            })),
            lowest: recall.lowest.map((d) => ({ ...d, pdfium: round3(d.pdfium), pdfiumChars: round3(d.pdfiumChars) })),
          }
        : null,
      hostile: hostile.map((h) => ({ ...h, seconds: round(h.seconds), peakChildMb: Math.round(h.peakChildMb) })),
      docxMbPerSecond: round(docxBytes / MB / median(docxRuns)),
      peakRssMbAboveIdle50Mb: round(big.aboveIdleMb),
      peakRssMbAboveIdle200Small: round(small.aboveIdleMb),
      ocr: ocr
        ? {
            pagesPerSecond: round(ocr.pagesPerSecond),
            secondsPerPage: round(ocr.seconds / ocr.pages),
            recallMedian: round3(ocr.recallMedian),
            recallMin: round3(ocr.recallMin),
            scannedPdfPages: ocr.pdfPages,
            scannedPdfSecondsPerPage: round(ocr.pdfSeconds / Math.max(1, ocr.pdfPages)),
            scannedPdfRecall: round3(ocr.pdfRecall),
            peakChildMb: Math.round(ocr.peakChildMb),
            ...ocr.config,
          }
        : null,
      mailbox,
      parallelism: parallel,
      runs: RUNS,
      pdfFiles: pdfs.length,
      pdfMb: round(pdfBytes / MB),
      pdfPages,
      docxMb: round(docxBytes / MB),
      bigAttachmentMb: round(bigSize / MB),
      bigRoute: big.routes.join(","),
      idleRssMb: round(big.idleMb),
      loadAverage: os.loadavg().map((l) => round(l)),
    };
    if (json) {
      console.log(JSON.stringify(result));
      return;
    }
    const rows: Array<[string, string]> = [
      [
        "corpus",
        `${pdfs.length} generated PDFs (${result.pdfMb} MB, ${pdfPages} pages), ${docxs.length} DOCX (${result.docxMb} MB); parallelism ${parallel}; PDF engine ${result.engine}`,
      ],
      [
        "pipeline PDF",
        `${result.mbPerSecond} MB/s, ${result.pagesPerSecond} pages/s (median of ${RUNS}: ${pipeRuns.map((s) => s.toFixed(2)).join(" / ")} s)`,
      ],
      [
        "pdftotext",
        `${result.pdftotextMbPerSecond} MB/s, ${result.pdftotextPagesPerSecond} pages/s (median of ${RUNS}: ${popplerRuns.map((s) => s.toFixed(2)).join(" / ")} s)`,
      ],
      [
        "ratio vs pdftotext",
        `${result.ratioVsPdftotext}x median of per-run ratios (target >= 1.0); best run vs best run ${result.ratioVsPdftotextBestRuns}x`,
      ],
      [
        "pdf-parse alone",
        `${result.pdfParseAloneMbPerSecond} MB/s, ${result.pdfParseAloneRatioVsPdftotext}x pdftotext in ${parallel} child processes (median of ${RUNS}: ${bareRuns.map((s) => s.toFixed(2)).join(" / ")} s); the pipeline runs at ${result.pipelineSpeedVsPdfParseAlone}x its speed`,
      ],
      ...(real && result.realCorpus
        ? ([
            [
              "real PDFs (corpus)",
              `${real.files} files, ${round(real.mb)} MB, ${real.pages} pages: pipeline ${result.realCorpus.mbPerSecond} MB/s ${result.realCorpus.pagesPerSecond} pages/s; pdftotext ${result.realCorpus.pdftotextMbPerSecond} MB/s ${result.realCorpus.pdftotextPagesPerSecond} pages/s; ratio ${result.ratioVsPdftotextRealCorpus}x (target >= 1.0); pdf-parse alone ${result.realCorpus.pdfParseAloneMbPerSecond} MB/s (${result.realCorpus.pdfParseAloneRatioVsPdftotext}x)`,
            ],
          ] as Array<[string, string]>)
        : []),
      ...(result.recall
        ? ([
            [
              "word recall vs pdftotext",
              `${result.recall.files} corpus PDFs with text: PDFium median ${result.recall.pdfiumMedian}, p10 ${result.recall.pdfiumP10} (targets 0.98, 0.85); pdf.js median ${result.recall.pdfjsMedian}, p10 ${result.recall.pdfjsP10}`,
            ],
            ...result.recall.lowest.map(
              (d, i) =>
                [
                  i === 0 ? "PDFium's lowest recall" : "",
                  `${d.file} (${d.words} words): words ${d.pdfium}, letters ${d.pdfiumChars} (letters ignore where words are split)`,
                ] as [string, string],
            ),
            ...result.recall.disagree.map(
              (d, i) =>
                [
                  i === 0 ? "PDFium vs pdf.js, most apart" : "",
                  `${d.file} (${d.words} words): word recall PDFium ${d.pdfium} / pdf.js ${d.pdfjs}; letters ${d.pdfiumChars} / ${d.pdfjsChars}`,
                ] as [string, string],
            ),
          ] as Array<[string, string]>)
        : []),
      [
        "parallelism 1",
        `pipeline ${round(pipelineSerialRatio)}x pdftotext; PDFium's extractor alone (in process) ${round(pdfiumAloneSerialRatio)}x; pdf-parse alone ${round(pdfParseAloneRatio)}x; pipeline at ${round(pipelineVsPdfParse)}x the speed of pdf-parse alone`,
      ],
      ["pipeline DOCX", `${result.docxMbPerSecond} MB/s`],
      ...result.hostile.map(
        (h, i) =>
          [
            i === 0 ? "hostile PDFs" : "",
            `${h.file}: ${h.outcome} in ${h.seconds} s, child peak ${h.peakChildMb} MB (cap ${config.EXTRACT_RSS_LIMIT_MB})`,
          ] as [string, string],
      ),
      [
        "50 MB attachment",
        `${result.bigAttachmentMb} MB via ${result.bigRoute}: parent peak ${round(big.peakMb)} MB, ${result.peakRssMbAboveIdle50Mb} MB above idle ${round(big.idleMb)} MB (target < 300), ${big.seconds.toFixed(2)} s${big.skipped.length ? `, skipped: ${big.skipped.join(",")}` : ""}`,
      ],
      [
        "200 small at once",
        `parent peak ${round(small.peakMb)} MB, ${result.peakRssMbAboveIdle200Small} MB above idle ${round(small.idleMb)} MB (target < 300), ${small.seconds.toFixed(2)} s${small.skipped.length ? `, skipped: ${small.skipped.join(",")}` : ""}`,
      ],
      ...(result.ocr
        ? ([
            [
              "OCR",
              `${result.ocr.pagesPerSecond} pages/s (${result.ocr.secondsPerPage} s a dense 300-DPI page, ${result.ocr.pool} OCR child); word recall median ${result.ocr.recallMedian}, min ${result.ocr.recallMin} (target >= 0.9); scanned PDF: ${result.ocr.scannedPdfPages} pages at ${result.ocr.scannedPdfSecondsPerPage} s/page, recall ${result.ocr.scannedPdfRecall}; OCR child peak ${result.ocr.peakChildMb} MB (cap ${result.ocr.rssMb})`,
            ],
          ] as Array<[string, string]>)
        : []),
      ...(mailbox
        ? ([
            [
              "generated mailbox",
              `${mailbox.messages} messages, ${mailbox.parts} attachment parts, ${mailbox.fetchedBefore} fetched with attachments.get (${round(mailbox.bytesBefore / MB)} MB); left out before download: ${mailbox.skipped} parts (${mailbox.skippedInline} inline images): ${mailbox.unitsSaved} quota units (${round(mailbox.unitsPerMessageSaved)} a message) and ${round(mailbox.bytesSaved / MB)} MB`,
            ],
          ] as Array<[string, string]>)
        : []),
      ["load average", result.loadAverage.join(" ")],
    ];
    const w = Math.max(...rows.map(([k]) => k.length));
    for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

/** The median, averaging the two middle values of an even count. */
function median2(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  const m = s.length / 2;
  return s.length % 2 === 1 ? s[Math.floor(m)]! : (s[m - 1]! + s[m]!) / 2;
}

function round3(n: number): number {
  return Math.round(n * 1000) / 1000;
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

const at = process.argv.indexOf("--scenario");
if (at >= 0) await scenario(process.argv[at + 1] as "big" | "small", process.argv[at + 2]!);
else if (process.argv.includes("--bare-worker")) bareWorker();
else await main();
