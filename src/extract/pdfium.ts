// PDF text through PDFium (Chrome's PDF engine) compiled to WebAssembly: the default PDF engine
// (PDF_ENGINE=pdfium). Runs only inside an extraction child. Measured on this project's machine
// (bench/extract.ts, README "PDF extraction"): 0.93–1.04× pdftotext on real PDFs on an idle
// machine (1.1–1.5× on a loaded one, where pdftotext's process starts cost more) and 0.6–0.7× on
// text-dense generated ones (its text layout is the bound; native PDFium, measured by
// bench/pdf-engines.ts, reaches 0.80× there), 1.5–3.5× pdf.js, with equal or better word recall.
// WebAssembly also confines a memory-safety bug in PDFium to the module's own memory.
//
// The wrapper's own page API is not used: its getText() leaves the page loaded (FPDF_LoadPage
// without FPDF_ClosePage), which held 1.28 GB on a 1,170-page document. Here every page is
// loaded, read and closed in turn through the raw FPDF_* exports, so memory stays at one page.
// The WebAssembly memory never shrinks once grown: the child reports its RSS with each result
// and the pool recycles a child that a large document left big (pool.ts).
//
// No pdf.js fallback for files PDFium refuses: over the 971 PDFs of pdf.js's own test suite
// PDFium refused 7 as corrupt (pdf.js read 2 words from each of 3 of them, bug-report stubs) and
// read 5 that pdf.js could not (a circular page tree, a bad flate stream, the JBIG2 bomb); on
// ../shared/corpus it refused only files pdf.js refuses too. A fallback would hand exactly the
// malformed files to the second, larger attack surface for no text. PDF_ENGINE=pdf-parse remains.
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import path from "node:path";
import { PDFiumLibrary } from "@hyzyla/pdfium";
import { cleanText, countWords, textCapReached } from "./hygiene.ts";
import type { ExtractLimits, ExtractOutcome } from "./protocol.ts";

const require = createRequire(import.meta.url);
const packageRoot = path.dirname(path.dirname(require.resolve("@hyzyla/pdfium")));
export const pdfiumVersion = (
  JSON.parse(readFileSync(path.join(packageRoot, "package.json"), "utf8")) as { version: string }
).version;
const EXTRACTOR = "pdfium";

/** The raw FPDF_* exports used here (Emscripten names: a leading underscore). */
export interface Fpdf {
  _FPDF_LoadMemDocument(data: number, size: number, password: number): number;
  _FPDF_GetLastError(): number;
  _FPDF_CloseDocument(doc: number): void;
  _FPDF_GetPageCount(doc: number): number;
  _FPDF_LoadPage(doc: number, index: number): number;
  _FPDF_ClosePage(page: number): void;
  _FPDF_GetPageWidth(page: number): number;
  _FPDF_GetPageHeight(page: number): number;
  _FPDF_GetMetaText(doc: number, tag: number, buffer: number, length: number): number;
  _FPDF_GetSecurityHandlerRevision(doc: number): number;
  _FPDFText_LoadPage(page: number): number;
  _FPDFText_ClosePage(textPage: number): void;
  _FPDFText_CountChars(textPage: number): number;
  _FPDFText_GetText(textPage: number, start: number, count: number, buffer: number): number;
  _FPDFPage_GetAnnotCount(page: number): number;
  _FPDFPage_GetAnnot(page: number, index: number): number;
  _FPDFPage_CloseAnnot(annot: number): void;
  _FPDFAnnot_GetSubtype(annot: number): number;
  _FPDFAnnot_GetStringValue(annot: number, key: number, buffer: number, length: number): number;
  _FPDFBitmap_CreateEx(width: number, height: number, format: number, buffer: number, stride: number): number;
  _FPDFBitmap_FillRect(bitmap: number, left: number, top: number, width: number, height: number, color: number): void;
  _FPDFBitmap_Destroy(bitmap: number): void;
  _FPDF_RenderPageBitmap(
    bitmap: number,
    page: number,
    x: number,
    y: number,
    width: number,
    height: number,
    rotate: number,
    flags: number,
  ): void;
  wasmExports: { malloc(size: number): number; free(ptr: number): void };
  HEAPU8: Uint8Array;
}

// FPDF_GetLastError codes (fpdfview.h).
const FPDF_ERR = { UNKNOWN: 1, FILE: 2, FORMAT: 3, PASSWORD: 4, SECURITY: 5, PAGE: 6 } as const;
const ERROR_NAMES: Record<number, string> = {
  1: "unknown error",
  2: "file not found or could not be opened",
  3: "not a PDF or corrupted",
  4: "password required",
  5: "unsupported security scheme",
  6: "page not found or content error",
};

let loading: Promise<Fpdf> | undefined;

/** The PDFium module, instantiated once per child from the package's own pdfium.wasm (no fetch). */
export function pdfium(): Promise<Fpdf> {
  loading ??= (async () => {
    const wasmBinary = readFileSync(path.join(packageRoot, "dist", "pdfium.wasm"));
    const library = await PDFiumLibrary.init({
      wasmBinary: wasmBinary.buffer.slice(wasmBinary.byteOffset, wasmBinary.byteOffset + wasmBinary.byteLength),
    });
    return (library as unknown as { module: Fpdf }).module;
  })();
  return loading;
}

/** A PDF opened in PDFium's memory; close() frees the document and its bytes. */
export interface OpenPdf {
  m: Fpdf;
  doc: number;
  pages: number;
  close(): void;
}

/** Why PDFium refused a document: an FPDF_ERR_* code and its meaning. */
export interface OpenFailure {
  error: number;
  message: string;
  /** A user password is needed (owner-only restrictions open without one), or an unknown handler. */
  encrypted: boolean;
}

export async function openPdf(bytes: Uint8Array): Promise<OpenPdf | OpenFailure> {
  const m = await pdfium();
  const data = m.wasmExports.malloc(Math.max(1, bytes.length));
  if (data === 0) throw new Error(`PDFium could not allocate ${bytes.length} bytes`);
  m.HEAPU8.set(bytes, data);
  const doc = m._FPDF_LoadMemDocument(data, bytes.length, 0);
  if (doc === 0) {
    const code = m._FPDF_GetLastError();
    m.wasmExports.free(data);
    return {
      error: code,
      message: ERROR_NAMES[code] ?? `PDFium error ${code}`,
      encrypted: code === FPDF_ERR.PASSWORD || code === FPDF_ERR.SECURITY,
    };
  }
  let closed = false;
  return {
    m,
    doc,
    pages: m._FPDF_GetPageCount(doc),
    close() {
      if (closed) return;
      closed = true;
      m._FPDF_CloseDocument(doc);
      m.wasmExports.free(data);
    },
  };
}

/** A C string in PDFium's memory; the caller frees it. */
function cString(m: Fpdf, s: string): number {
  const ptr = m.wasmExports.malloc(s.length + 1);
  m.HEAPU8.set(Buffer.from(`${s}\0`, "latin1"), ptr);
  return ptr;
}

// Annotation subtypes whose /Contents is text a person wrote (fpdf_annot.h): sticky notes,
// free text, and the comments on text markup and stamps. Popups repeat their parent's; links
// and widgets (form fields) carry no prose of their own here.
const ANNOT_WITH_TEXT = new Set([1, 3, 9, 10, 11, 12, 13, 14]);
const MAX_ANNOTS_PER_PAGE = 1000;

function pageLayerText(m: Fpdf, page: number): { text: string; chars: number } {
  const textPage = m._FPDFText_LoadPage(page);
  if (textPage === 0) return { text: "", chars: 0 };
  try {
    const chars = m._FPDFText_CountChars(textPage);
    if (chars <= 0) return { text: "", chars: 0 };
    const buffer = m.wasmExports.malloc((chars + 1) * 2);
    if (buffer === 0) throw new Error(`PDFium could not allocate text for ${chars} characters`);
    try {
      // UTF-16LE with a terminating NUL, counted in the return value.
      const written = m._FPDFText_GetText(textPage, 0, chars, buffer);
      const units = Math.max(0, written - 1);
      return { text: Buffer.from(m.HEAPU8.buffer, buffer, units * 2).toString("utf16le"), chars };
    } finally {
      m.wasmExports.free(buffer);
    }
  } finally {
    m._FPDFText_ClosePage(textPage);
  }
}

/** Comments written on the page (annotation /Contents), which the text layer does not hold. */
function annotationText(m: Fpdf, page: number): string[] {
  const count = Math.min(m._FPDFPage_GetAnnotCount(page), MAX_ANNOTS_PER_PAGE);
  if (count <= 0) return [];
  const out: string[] = [];
  const key = cString(m, "Contents");
  try {
    for (let i = 0; i < count; i++) {
      const annot = m._FPDFPage_GetAnnot(page, i);
      if (annot === 0) continue;
      try {
        if (!ANNOT_WITH_TEXT.has(m._FPDFAnnot_GetSubtype(annot))) continue;
        const bytes = m._FPDFAnnot_GetStringValue(annot, key, 0, 0);
        if (bytes <= 2 || bytes > 1024 * 1024) continue;
        const buffer = m.wasmExports.malloc(bytes);
        try {
          m._FPDFAnnot_GetStringValue(annot, key, buffer, bytes);
          const text = Buffer.from(m.HEAPU8.buffer, buffer, bytes - 2)
            .toString("utf16le")
            .trim();
          if (text) out.push(text);
        } finally {
          m.wasmExports.free(buffer);
        }
      } finally {
        m._FPDFPage_CloseAnnot(annot);
      }
    }
  } finally {
    m.wasmExports.free(key);
  }
  return out;
}

/**
 * The text of one page: its text layer, then the comments written on it (annotation contents).
 * The page is loaded and closed here; "" when it cannot load. `chars`: the text layer's count.
 */
export function pageText(pdf: OpenPdf, index: number): { text: string; chars: number } {
  const { m } = pdf;
  const page = m._FPDF_LoadPage(pdf.doc, index);
  if (page === 0) return { text: "", chars: 0 };
  try {
    const layer = pageLayerText(m, page);
    const notes = annotationText(m, page);
    return notes.length === 0 ? layer : { text: [layer.text, ...notes].join("\n"), chars: layer.chars };
  } finally {
    m._FPDF_ClosePage(page);
  }
}

/** A document information entry (Title, Author, CreationDate...) or undefined. */
function metaText(pdf: OpenPdf, tag: string): string | undefined {
  const { m } = pdf;
  const tagPtr = cString(m, tag);
  try {
    const bytes = m._FPDF_GetMetaText(pdf.doc, tagPtr, 0, 0);
    if (bytes <= 2 || bytes > 64 * 1024) return undefined;
    const buffer = m.wasmExports.malloc(bytes);
    try {
      m._FPDF_GetMetaText(pdf.doc, tagPtr, buffer, bytes);
      return Buffer.from(m.HEAPU8.buffer, buffer, bytes - 2).toString("utf16le");
    } finally {
      m.wasmExports.free(buffer);
    }
  } finally {
    m.wasmExports.free(tagPtr);
  }
}

function infoString(v: string | undefined): string | undefined {
  if (v === undefined) return undefined;
  const s = v.replace(/[\u0000-\u001F]/g, "").trim();
  return s.length > 0 ? s.slice(0, 1000) : undefined;
}

/** PDF date "D:YYYYMMDDHHmmSSOHH'mm'" → ISO string, or undefined. */
export function pdfDate(v: string | undefined): string | undefined {
  const m = /^(?:D:)?(\d{4})(\d{2})?(\d{2})?(\d{2})?(\d{2})?(\d{2})?([Zz+-])?(\d{2})?'?(\d{2})?/.exec(v?.trim() ?? "");
  if (!m) return undefined;
  const [, y, mo = "01", d = "01", h = "00", mi = "00", s = "00", sign, oh = "00", om = "00"] = m;
  const offset = sign === "+" || sign === "-" ? `${sign}${oh}:${om}` : "Z";
  const date = new Date(`${y}-${mo}-${d}T${h}:${mi}:${s}${offset}`);
  return Number.isNaN(date.getTime()) ? undefined : date.toISOString();
}

function failure(skippedReason: "encrypted" | "corrupt", reason: string): ExtractOutcome {
  return {
    detectedType: "application/pdf",
    extractor: EXTRACTOR,
    extractorVersion: pdfiumVersion,
    text: null,
    textTruncated: false,
    skippedReason,
    details: { reason },
  };
}

export async function extractPdfium(bytes: Uint8Array, limits: ExtractLimits): Promise<ExtractOutcome> {
  const pdf = await openPdf(bytes);
  if ("error" in pdf) {
    // Only a user password means encrypted: owner-password-only PDFs open and extract below.
    if (pdf.encrypted) return failure("encrypted", pdf.message);
    return failure("corrupt", `PDFium: ${pdf.message}`);
  }
  try {
    const pagesTotal = pdf.pages;
    const lastPage = Math.min(pagesTotal, limits.maxPages);
    const texts: string[] = [];
    let rawLength = 0;
    let pagesRead = 0;
    let pagesWithoutText = 0;
    let textLimitReached = false;
    for (let i = 0; i < lastPage; i++) {
      const { text } = pageText(pdf, i);
      texts.push(text);
      pagesRead++;
      if (!/[\p{L}\p{N}]/u.test(text)) pagesWithoutText++;
      rawLength += text.length;
      // Stop reading pages whose text would be thrown away.
      if (i + 1 < lastPage && textCapReached(texts, rawLength, limits.maxTextBytes)) {
        textLimitReached = true;
        break;
      }
    }
    const clean = cleanText(texts.join("\n\n"), limits.maxTextBytes);
    const words = countWords(clean.text);
    const details: Record<string, unknown> = {
      words,
      pages: pagesRead,
      pages_total: pagesTotal,
      title: infoString(metaText(pdf, "Title")),
      author: infoString(metaText(pdf, "Author")),
      created_at: pdfDate(metaText(pdf, "CreationDate")),
      encrypted: pdf.m._FPDF_GetSecurityHandlerRevision(pdf.doc) >= 0 ? true : undefined,
    };
    if (textLimitReached) details.text_limit_reached = true;
    else if (pagesTotal > pagesRead) details.page_limit_reached = true;
    // Pages but no words: a scan or an image-only document (OCR, when on, reads those pages).
    if (pagesTotal > 0 && words === 0) details.no_text_layer = true;
    if (pagesWithoutText > 0) details.pages_without_text = pagesWithoutText;
    return {
      detectedType: "application/pdf",
      extractor: EXTRACTOR,
      extractorVersion: pdfiumVersion,
      text: clean.text,
      textTruncated: clean.truncated || pagesTotal > pagesRead,
      skippedReason: null,
      details,
    };
  } finally {
    pdf.close();
  }
}

// FPDFBitmap formats and render flags (fpdfview.h).
const BITMAP_GRAY = 1;
const RENDER_ANNOT = 0x01;
const RENDER_GRAYSCALE = 0x08;
const RENDER_PRINTING = 0x800;

/**
 * Renders one page to 8-bit grayscale at `dpi` (scaled down to at most maxPixels), as a binary
 * PGM (P5) image: a format Leptonica (inside tesseract) reads without any codec.
 */
export function renderPageGray(
  pdf: OpenPdf,
  index: number,
  dpi: number,
  maxPixels: number,
): { pgm: Uint8Array; width: number; height: number } | null {
  const { m } = pdf;
  const page = m._FPDF_LoadPage(pdf.doc, index);
  if (page === 0) return null;
  try {
    const wPt = m._FPDF_GetPageWidth(page);
    const hPt = m._FPDF_GetPageHeight(page);
    if (!(wPt > 0 && hPt > 0)) return null;
    let scale = dpi / 72;
    if (wPt * hPt * scale * scale > maxPixels) scale = Math.sqrt(maxPixels / (wPt * hPt));
    const width = Math.max(1, Math.floor(wPt * scale));
    const height = Math.max(1, Math.floor(hPt * scale));
    const stride = (width + 3) & ~3;
    const buffer = m.wasmExports.malloc(stride * height);
    if (buffer === 0) throw new Error(`PDFium could not allocate a ${width}x${height} bitmap`);
    try {
      const bitmap = m._FPDFBitmap_CreateEx(width, height, BITMAP_GRAY, buffer, stride);
      if (bitmap === 0) throw new Error(`PDFium could not create a ${width}x${height} bitmap`);
      try {
        m._FPDFBitmap_FillRect(bitmap, 0, 0, width, height, 0xffffffff);
        m._FPDF_RenderPageBitmap(
          bitmap,
          page,
          0,
          0,
          width,
          height,
          0,
          RENDER_ANNOT | RENDER_GRAYSCALE | RENDER_PRINTING,
        );
        const header = Buffer.from(`P5\n${width} ${height}\n255\n`, "latin1");
        const pgm = new Uint8Array(header.length + width * height);
        pgm.set(header, 0);
        const heap = m.HEAPU8;
        for (let y = 0; y < height; y++)
          pgm.set(heap.subarray(buffer + y * stride, buffer + y * stride + width), header.length + y * width);
        return { pgm, width, height };
      } finally {
        m._FPDFBitmap_Destroy(bitmap);
      }
    } finally {
      m.wasmExports.free(buffer);
    }
  } finally {
    m._FPDF_ClosePage(page);
  }
}
