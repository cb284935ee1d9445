// `npm run bench:extract [-- --json]`: attachment-pipeline throughput against pdftotext (poppler)
// on the same generated PDFs at equal parallelism, DOCX throughput, and the parent's peak RSS while
// it handles one 50 MB attachment (temp-file route) and 200 small attachments at once.
// Not a test: figures depend on the machine. Targets (issue 6): pipeline ≥ 0.4× pdftotext,
// parent RSS < 300 MB above idle in both RSS scenarios. pdf-parse alone, in as many child
// processes as the pipeline has, runs in the same interleaved rounds: what the pipeline itself costs.
//   BENCH_EXTRACT_RUNS (default 5): interleaved timed runs per comparison (`npm run bench` uses
//   fewer to fit its time budget); BENCH_EXTRACT_REAL_CORPUS=false skips the shared real PDFs.
import { type ChildProcess, execFile, fork, spawn } from "node:child_process";
import { mkdtemp, readFile, readdir, rm, stat, writeFile } from "node:fs/promises";
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
import { createExtractionApp } from "../src/app.ts";
import type { AttachmentPipeline, AttachmentRef } from "../src/attachments/types.ts";
import { loadConfig } from "../src/config.ts";
import { makeCsv, makeDocx, makeHtml, makePdf } from "@gmail-sync/emulator/generate";

const json = process.argv.includes("--json");
const log = pino({ level: "silent" });
const self = fileURLToPath(import.meta.url);
const MB = 1024 * 1024;

// --- deterministic pseudo-English -----------------------------------------------------------
const WORDS = (
  "the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were " +
  "her she there been one all we their has would when if so no will more can who out up about than into them only time " +
  "budget committee quarterly report revenue northern region review approved figures growth market customer service " +
  "contract delivery schedule invoice payment account balance forecast analysis strategy policy research development"
).split(" ");
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}
function prose(seed: number, chars: number): string {
  const r = rng(seed);
  const out: string[] = [];
  let n = 0;
  while (n < chars) {
    const w = WORDS[Math.floor(r() * WORDS.length)]!;
    out.push(w);
    n += w.length + 1;
  }
  return out.join(" ");
}

// --- fixtures ---------------------------------------------------------------------------------
const PDF_PAGES = [10, 50, 100, 250, 500];
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
  const pdfs: Array<{ file: string; pages: number; size: number }> = [];
  for (const pages of PDF_PAGES) {
    const file = path.join(dir, `gen-${pages}p.pdf`);
    await writeFile(
      file,
      await makePdf({ pages, text: (p) => prose(pages * 10_000 + p, 4300), title: `Generated ${pages} pages` }),
    );
    pdfs.push({ file, pages, size: (await stat(file)).size });
  }
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
  // Warm the children (pdf.js, mammoth loaded) so the measurement is of the steady state.
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
    // One untimed pass warms every side (children load pdf.js; poppler's pages hit the cache).
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
    barePool.close();
    const bareRatio = median(bareRuns.map((s, i) => popplerRuns[i]! / s));
    const pipelineVsBare = median(pipeRuns.map((s, i) => bareRuns[i]! / s));
    if (pagesSeen !== pdfPages) throw new Error(`pipeline read ${pagesSeen} pages, expected ${pdfPages}`);
    const pipeS = median(pipeRuns);
    const popS = median(popplerRuns);
    // Each pipeline run is followed at once by a pdftotext run: on a shared machine the pair sees
    // about the same load, so the median of per-pair ratios is steadier than a ratio of medians.
    const ratio = median(pipeRuns.map((s, i) => popplerRuns[i]! / s));

    // Real PDFs from public test corpora, when the shared folder is on this machine (read in place).
    let real: { files: number; mb: number; pipeS: number; popS: number; ratio: number } | null = null;
    const realDir = path.resolve(path.dirname(self), "../../shared/corpus/pdf");
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
      await timePdftotext(realFiles, parallel);
      const rp: number[] = [];
      const rq: number[] = [];
      for (let i = 0; i < RUNS; i++) {
        rp.push((await timePipeline(pipeline, realFiles, "application/pdf", parallel)).seconds);
        rq.push(await timePdftotext(realFiles, parallel));
      }
      real = {
        files: realFiles.length,
        mb: realFiles.reduce((a, f) => a + f.size, 0) / MB,
        pipeS: median(rp),
        popS: median(rq),
        ratio: median(rp.map((s, i) => rq[i]! / s)),
      };
    }

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
    await bare();
    await timePipeline(single, pdfs, "application/pdf", 1);
    const s1: { bare: number[]; pipe: number[]; pop: number[] } = { bare: [], pipe: [], pop: [] };
    for (let i = 0; i < Math.min(3, RUNS); i++) {
      s1.bare.push(await bare());
      s1.pipe.push((await timePipeline(single, pdfs, "application/pdf", 1)).seconds);
      s1.pop.push(await timePdftotext(pdfs, 1));
    }
    await single.close();
    const pdfParseAloneRatio = median(s1.bare.map((b, i) => s1.pop[i]! / b));
    const pipelineVsPdfParse = median(s1.pipe.map((p, i) => s1.bare[i]! / p));

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
    await pipeline.close();

    say("RSS: one 50 MB attachment (temp-file route) ...");
    await import("node:fs/promises").then((fs) =>
      Promise.all([fs.mkdir(path.join(dir, "big")), fs.mkdir(path.join(dir, "small"))]),
    );
    await writeFile(path.join(dir, "warm.pdf"), await makePdf({ pages: 2 }));
    await makeBigPdf(path.join(dir, "big", "big.pdf"), 38);
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

    const mbPerSecond = pdfBytes / MB / pipeS;
    const result = {
      mbPerSecond: round(mbPerSecond),
      pagesPerSecond: round(pdfPages / pipeS),
      pdftotextMbPerSecond: round(pdfBytes / MB / popS),
      pdftotextPagesPerSecond: round(pdfPages / popS),
      ratioVsPdftotext: round(ratio),
      ratioVsPdftotextBestRuns: round(Math.min(...popplerRuns) / Math.min(...pipeRuns)),
      ratioVsPdftotextRealCorpus: real ? round(real.ratio) : null,
      pdfParseAloneRatioVsPdftotext: round(bareRatio),
      pipelineSpeedVsPdfParseAlone: round(pipelineVsBare),
      pdfParseAloneRatioVsPdftotextSerial: round(pdfParseAloneRatio),
      pipelineSpeedVsPdfParseAloneSerial: round(pipelineVsPdfParse),
      docxMbPerSecond: round(docxBytes / MB / median(docxRuns)),
      peakRssMbAboveIdle50Mb: round(big.aboveIdleMb),
      peakRssMbAboveIdle200Small: round(small.aboveIdleMb),
      parallelism: parallel,
      runs: RUNS,
      pdfFiles: pdfs.length,
      pdfMb: round(pdfBytes / MB),
      pdfPages,
      docxMb: round(docxBytes / MB),
      bigAttachmentMb: round(bigSize / MB),
      bigRoute: big.routes.join(","),
      idleRssMb: round(big.idleMb),
    };
    if (json) {
      console.log(JSON.stringify(result));
      return;
    }
    const rows: Array<[string, string]> = [
      [
        "corpus",
        `${pdfs.length} generated PDFs (${result.pdfMb} MB, ${pdfPages} pages), ${docxs.length} DOCX (${result.docxMb} MB); parallelism ${parallel}`,
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
        `${result.ratioVsPdftotext}x median of per-run ratios (target >= 0.4); best run vs best run ${result.ratioVsPdftotextBestRuns}x`,
      ],
      [
        "pdf-parse alone",
        `${result.pdfParseAloneRatioVsPdftotext}x pdftotext in ${parallel} child processes (median of ${RUNS}: ${bareRuns.map((s) => s.toFixed(2)).join(" / ")} s); the pipeline runs at ${result.pipelineSpeedVsPdfParseAlone}x its speed`,
      ],
      ...(real
        ? ([
            [
              "real PDFs (corpus)",
              `${real.files} files, ${round(real.mb)} MB: pipeline ${round(real.mb / real.pipeS)} MB/s, pdftotext ${round(real.mb / real.popS)} MB/s, ratio ${result.ratioVsPdftotextRealCorpus}x`,
            ],
          ] as Array<[string, string]>)
        : []),
      [
        "parallelism 1",
        `pdf-parse alone ${round(pdfParseAloneRatio)}x pdftotext; pipeline runs at ${round(pipelineVsPdfParse)}x the speed of pdf-parse alone`,
      ],
      ["pipeline DOCX", `${result.docxMbPerSecond} MB/s`],
      [
        "50 MB attachment",
        `${result.bigAttachmentMb} MB via ${result.bigRoute}: parent peak ${round(big.peakMb)} MB, ${result.peakRssMbAboveIdle50Mb} MB above idle ${round(big.idleMb)} MB (target < 300), ${big.seconds.toFixed(2)} s${big.skipped.length ? `, skipped: ${big.skipped.join(",")}` : ""}`,
      ],
      [
        "200 small at once",
        `parent peak ${round(small.peakMb)} MB, ${result.peakRssMbAboveIdle200Small} MB above idle ${round(small.idleMb)} MB (target < 300), ${small.seconds.toFixed(2)} s${small.skipped.length ? `, skipped: ${small.skipped.join(",")}` : ""}`,
      ],
    ];
    const w = Math.max(...rows.map(([k]) => k.length));
    for (const [k, v] of rows) console.log(`${k.padEnd(w)}  ${v}`);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

function round(n: number): number {
  return Math.round(n * 100) / 100;
}

const at = process.argv.indexOf("--scenario");
if (at >= 0) await scenario(process.argv[at + 1] as "big" | "small", process.argv[at + 2]!);
else if (process.argv.includes("--bare-worker")) bareWorker();
else await main();
