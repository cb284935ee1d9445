// `npm run bench:pdf-engines [-- --json]`: CPU time per page of each PDF text engine on the same
// files, one engine at a time in this process (pdftotext as a process per file, its CPU read from
// this process's reaped-children times). Issue 16's evidence for whether any engine the project
// may use reads text faster than poppler:
// - PDFium as WebAssembly: the product's engine (src/extract/pdfium.ts, pages closed as read);
// - PDFium native: the libpdfium.so that the npm package pdfium-node-linux-x64-gnu ships, called
//   through the koffi FFI. A devDependency for this measurement only: the product does not load
//   it, since native code would give up WebAssembly's memory sandbox around a parser of hostile
//   files, and the package exists for Linux x64 glibc alone. Skipped where it cannot load;
// - pdf.js (pdf-parse's getText, PDF_ENGINE=pdf-parse);
// - pdftotext (poppler-utils), process start included, as bench:extract compares against.
// Files: the generated text-dense set (bench/lib/generated-pdfs.ts) and ../shared/corpus/pdf
// when present. Best of BENCH_PDF_ENGINES_RUNS (default 3) rounds per engine and set. Not a test.
import { spawnSync } from "node:child_process";
import { readFileSync } from "node:fs";
import { mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import { createRequire } from "node:module";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { PDFParse } from "pdf-parse";
import { extractPdfium } from "../src/extract/pdfium.ts";
import { writeGeneratedPdfs } from "./lib/generated-pdfs.ts";

const json = process.argv.includes("--json");
const RUNS = Math.max(1, Number(process.env.BENCH_PDF_ENGINES_RUNS ?? 3));
const here = path.dirname(fileURLToPath(import.meta.url));
const say = (s: string) => !json && process.stderr.write(`${s}\n`);
const LIMITS = { maxPages: 100_000, maxTextBytes: 1 << 30, maxXmlBytes: 1 << 30 };

interface Engine {
  name: string;
  /** Characters of text read from one file. */
  read(file: string, bytes: Uint8Array): Promise<number>;
}

/** This process's CPU time, children reaped by spawnSync included (/proc/self/stat, clock ticks). */
function cpuMs(): number {
  const own = process.cpuUsage();
  const fields = readFileSync("/proc/self/stat", "utf8").split(") ")[1]?.split(" ") ?? [];
  // After "pid (comm) ": state is field 3, so cutime (16) and cstime (17) are at 13 and 14 here.
  const children = (Number(fields[13]) + Number(fields[14])) * 10; // USER_HZ 100 on Linux
  return (own.user + own.system) / 1000 + children;
}

const wasm: Engine = {
  name: "PDFium (WebAssembly, the product's)",
  async read(_file, bytes) {
    const o = await extractPdfium(bytes, LIMITS);
    return o.text?.length ?? 0;
  },
};

const pdfjs: Engine = {
  name: "pdf.js (pdf-parse)",
  async read(_file, bytes) {
    const parser = new PDFParse({ data: bytes, isEvalSupported: false });
    try {
      return (await parser.getText()).text.length;
    } finally {
      await parser.destroy();
    }
  },
};

const pdftotext: Engine = {
  name: "pdftotext (poppler, a process a file)",
  async read(file) {
    const r = spawnSync("pdftotext", ["-q", file, "-"], { maxBuffer: 1 << 30, encoding: "utf8" });
    return r.stdout?.length ?? 0;
  },
};

/** Native PDFium through koffi, or the reason it cannot load here. */
async function nativeEngine(): Promise<Engine | string> {
  try {
    const require = createRequire(import.meta.url);
    const koffi = (await import("koffi")).default;
    const pkg = path.dirname(require.resolve("pdfium-node-linux-x64-gnu/package.json"));
    const lib = koffi.load(path.join(pkg, "prebuilds", "linux-x64-gnu", "libpdfium.so"));
    lib.func("void FPDF_InitLibrary()")();
    // `void *` with a Buffer passes the Buffer's own memory: PDFium keeps reading the document
    // from it until FPDF_CloseDocument, so the Buffer stays referenced until then.
    const loadDoc = lib.func("void *FPDF_LoadMemDocument64(void *data, size_t size, const char *password)");
    const closeDoc = lib.func("void FPDF_CloseDocument(void *doc)");
    const pageCount = lib.func("int FPDF_GetPageCount(void *doc)");
    const loadPage = lib.func("void *FPDF_LoadPage(void *doc, int index)");
    const closePage = lib.func("void FPDF_ClosePage(void *page)");
    const loadText = lib.func("void *FPDFText_LoadPage(void *page)");
    const closeText = lib.func("void FPDFText_ClosePage(void *text)");
    const countChars = lib.func("int FPDFText_CountChars(void *text)");
    const getText = lib.func("int FPDFText_GetText(void *text, int start, int count, void *buffer)");
    const version = readFileSync(path.join(pkg, "prebuilds", "linux-x64-gnu", "PDFIUM_VERSION"), "utf8");
    return {
      name: `PDFium (native, chromium/${/BUILD=(\d+)/.exec(version)?.[1] ?? "?"}, via koffi)`,
      async read(_file, bytes) {
        const data = Buffer.from(bytes);
        const doc = loadDoc(data, data.length, null);
        if (!doc) return 0;
        let chars = 0;
        try {
          const pages = pageCount(doc);
          for (let i = 0; i < pages; i++) {
            const page = loadPage(doc, i);
            if (!page) continue;
            const text = loadText(page);
            if (text) {
              const n = countChars(text);
              if (n > 0) {
                const out = Buffer.alloc((n + 1) * 2);
                const written = getText(text, 0, n, out);
                chars += out.toString("utf16le", 0, Math.max(0, written - 1) * 2).length;
              }
              closeText(text);
            }
            closePage(page);
          }
        } finally {
          closeDoc(doc);
        }
        void data.length; // referenced until the document is closed
        return chars;
      },
    };
  } catch (err) {
    return (err as Error).message.split("\n")[0] ?? String(err);
  }
}

interface Row {
  set: string;
  engine: string;
  files: number;
  pages: number;
  cpuMs: number;
  msPerPage: number;
  vsPdftotext: number;
  characters: number;
}

async function time(engine: Engine, files: Array<{ file: string; bytes: Uint8Array }>) {
  let best = Number.POSITIVE_INFINITY;
  let characters = 0;
  for (let r = 0; r <= RUNS; r++) {
    const t0 = cpuMs();
    let chars = 0;
    for (const f of files) chars += await engine.read(f.file, f.bytes).catch(() => 0);
    const spent = cpuMs() - t0;
    if (r > 0) best = Math.min(best, spent); // round 0 warms the engine up (WebAssembly tiers, fonts)
    characters = chars;
  }
  return { cpuMs: best, characters };
}

async function main(): Promise<void> {
  const dir = await mkdtemp(path.join(os.tmpdir(), "gmail-sync-bench-pdf-engines-"));
  try {
    const sets: Array<{ name: string; files: Array<{ file: string; bytes: Uint8Array }> }> = [];
    const generated = await writeGeneratedPdfs(dir);
    sets.push({
      name: "generated (text-dense)",
      files: await Promise.all(generated.map(async (g) => ({ file: g.file, bytes: await readFile(g.file) }))),
    });
    const corpusDir = path.resolve(here, "../../shared/corpus/pdf");
    const names = (await readdir(corpusDir).catch(() => [] as string[])).filter((n) => n.endsWith(".pdf")).sort();
    if (names.length > 0)
      sets.push({
        name: "real (../shared/corpus/pdf)",
        files: await Promise.all(
          names.map(async (n) => ({ file: path.join(corpusDir, n), bytes: await readFile(path.join(corpusDir, n)) })),
        ),
      });

    const native = await nativeEngine();
    if (typeof native === "string") say(`native PDFium not measured: ${native}`);
    const engines = [pdftotext, wasm, ...(typeof native === "string" ? [] : [native]), pdfjs];
    const rows: Row[] = [];
    for (const set of sets) {
      // Pages as PDFium counts them; the same divisor for every engine.
      let pages = 0;
      for (const f of set.files) pages += Number((await extractPdfium(f.bytes, LIMITS)).details.pages ?? 0);
      let reference = 0;
      for (const engine of engines) {
        say(`${set.name}: ${engine.name} ...`);
        const t = await time(engine, set.files);
        if (engine === pdftotext) reference = t.cpuMs;
        rows.push({
          set: set.name,
          engine: engine.name,
          files: set.files.length,
          pages,
          cpuMs: Math.round(t.cpuMs),
          msPerPage: Number((t.cpuMs / pages).toFixed(3)),
          vsPdftotext: Number((reference / t.cpuMs).toFixed(2)),
          characters: t.characters,
        });
      }
    }
    const result = {
      runs: RUNS,
      loadAverage: os.loadavg().map((l) => Number(l.toFixed(2))),
      native: typeof native === "string" ? { skipped: native } : { measured: true },
      rows,
    };
    if (json) {
      process.stdout.write(`${JSON.stringify(result)}\n`);
      return;
    }
    console.log(
      `PDF engines, CPU per page (best of ${RUNS} rounds after a warm-up), load ${result.loadAverage.join(" ")}`,
    );
    console.log(
      "set                          engine                                        pages  CPU ms  ms/page  pdftotext ÷ it  characters",
    );
    for (const r of rows)
      console.log(
        `${r.set.padEnd(28)} ${r.engine.padEnd(45)} ${String(r.pages).padStart(5)} ${String(r.cpuMs).padStart(7)} ${r.msPerPage.toFixed(3).padStart(8)} ${r.vsPdftotext.toFixed(2).padStart(15)}  ${r.characters}`,
      );
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
}

await main();
process.exit(0);
