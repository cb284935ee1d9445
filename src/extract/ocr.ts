// OCR (EXTRACT_OCR=true) for image attachments and for PDF pages without a text layer. Runs only
// inside an OCR child (its own pool: pool size, timeout, RSS cap and page cap of its own, at a
// lower CPU priority than text extraction; see pipeline.ts).
//
// tesseract.js normally runs its worker script in a worker thread and downloads its core and the
// language data from a CDN. Extraction children may start no thread and open no socket, so its
// worker script (tesseract.js/src/worker-script) is driven here, in the child's own thread, with an
// adapter that loads the core WebAssembly from tesseract.js-core and the traineddata from the
// installed @tesseract.js-data/<lang> packages, and refuses any fetch or cache write. Nothing is
// downloaded at run time, ever.
import { readFileSync } from "node:fs";
import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { gunzipSync } from "node:zlib";
import { cleanText, countWords } from "./hygiene.ts";
import { languageDir } from "./ocr-languages.ts";
import { type OpenPdf, openPdf, pageText, renderPageGray } from "./pdfium.ts";
import type { ChildSkipReason, ExtractLimits, ExtractOutcome, OcrOptions } from "./protocol.ts";

const require = createRequire(import.meta.url);
const version = (name: string) =>
  (JSON.parse(readFileSync(require.resolve(`${name}/package.json`), "utf8")) as { version: string }).version;
export const ocrEngine = `tesseract.js ${version("tesseract.js")} (tesseract.js-core ${version("tesseract.js-core")})`;

// tesseract.js's own OEM constant: the LSTM recogniser only (the language packages' best_int data).
const OEM_LSTM_ONLY = 1;

type Packet = { workerId: string; jobId: string; action: string; payload: unknown };
type Reply = { jobId: string; status: "resolve" | "reject" | "progress"; data: unknown };
interface WorkerScript {
  dispatchHandlers(packet: Packet, send: (reply: Reply) => void): void;
  setAdapter(adapter: Record<string, unknown>): void;
}

function refuseNetwork(): never {
  throw new Error("OCR never downloads: language data and core come from node_modules");
}

let worker: WorkerScript | undefined;
let nextJob = 0;
let ready: { languages: string; promise: Promise<void> } | undefined;

function call(action: string, payload: unknown): Promise<unknown> {
  const script = worker as WorkerScript;
  const jobId = `job-${++nextJob}`;
  return new Promise((resolve, reject) => {
    script.dispatchHandlers({ workerId: "child", jobId, action, payload }, (reply) => {
      if (reply.jobId !== jobId) return;
      if (reply.status === "resolve") resolve(reply.data);
      else if (reply.status === "reject") reject(new Error(String(reply.data).slice(0, 200)));
    });
  });
}

/** Loads the core and the languages once per child (about a second); later calls reuse them. */
function ensureReady(languages: string[]): Promise<void> {
  const key = languages.join("+");
  if (ready?.languages === key) return ready.promise;
  const promise = (async () => {
    if (!worker) {
      worker = require("tesseract.js/src/worker-script/index.js") as WorkerScript;
      worker.setAdapter({
        // SIMD is in every Node this project runs on (≥ 22); the LSTM-only build matches the data.
        getCore: async () => require("tesseract.js-core/tesseract-core-simd-lstm.js"),
        gunzip: gunzipSync,
        fetch: refuseNetwork,
        readCache: (file: string) => readFile(file),
        writeCache: refuseNetwork,
        deleteCache: async () => {},
        checkCache: async () => false,
      });
      await call("load", { options: { lstmOnly: true, corePath: undefined, logging: false } });
    }
    // Each language from its own package folder (tesseract.js takes one langPath per call).
    for (const lang of languages) {
      await call("loadLanguage", {
        langs: lang,
        options: { langPath: languageDir(lang), cacheMethod: "none", gzip: true, lstmOnly: true },
      });
    }
    await call("initialize", { langs: key, oem: OEM_LSTM_ONLY, config: {} });
  })();
  ready = { languages: key, promise };
  promise.catch(() => {
    if (ready?.promise === promise) ready = undefined;
  });
  return promise;
}

/** Text and mean confidence (0–100) of one image in a format Leptonica reads. */
async function recognize(image: Uint8Array): Promise<{ text: string; confidence: number }> {
  const result = (await call("recognize", {
    image,
    options: {},
    output: { text: true, blocks: false, hocr: false, tsv: false },
  })) as { text: string | null; confidence: number | null };
  return { text: result.text ?? "", confidence: result.confidence ?? 0 };
}

function base(languages: string[]) {
  return {
    extractor: "tesseract",
    extractorVersion: ocrEngine,
    ocrDetails: { ocr: true, ocr_engine: ocrEngine, ocr_language: languages.join("+") },
  };
}

/** An outcome without text: why, and what was known. */
function skipped(
  ids: { detectedType: string; extractor: string; extractorVersion: string },
  skippedReason: ChildSkipReason,
  details: Record<string, unknown>,
): ExtractOutcome {
  return { text: null, textTruncated: false, ...ids, skippedReason, details };
}

/** An image attachment (PNG, JPEG, TIFF, GIF, WebP, BMP) → its text. */
export async function extractImage(
  bytes: Uint8Array,
  detectedType: string,
  limits: ExtractLimits,
  options: OcrOptions,
): Promise<ExtractOutcome> {
  const { extractor, extractorVersion, ocrDetails } = base(options.languages);
  const size = imageSize(bytes);
  const ids = { detectedType, extractor, extractorVersion };
  if (size !== null && size.width * size.height > options.maxPixels) {
    return skipped(ids, "too_complex", {
      ...ocrDetails,
      width: size.width,
      height: size.height,
      reason: `image over ${options.maxPixels} pixels`,
    });
  }
  await ensureReady(options.languages);
  let result: { text: string; confidence: number };
  try {
    // tesseract.js converts BMPs through bmp-js by spreading the bytes into an object (measured: a
    // 11 MB BMP drove a child past 1 GB); decoded here instead, to the grey PGM Leptonica reads.
    result = await recognize(detectedType === "image/bmp" ? bmpToPgm(bytes) : bytes);
  } catch (err) {
    return skipped(ids, "corrupt", { ...ocrDetails, reason: String((err as Error).message).slice(0, 200) });
  }
  const clean = cleanText(result.text, limits.maxTextBytes);
  return {
    text: clean.text,
    textTruncated: clean.truncated,
    detectedType,
    extractor,
    extractorVersion,
    skippedReason: null,
    details: {
      ...ocrDetails,
      ocr_confidence: Math.round(result.confidence),
      ocr_pages: 1,
      width: size?.width,
      height: size?.height,
    },
  };
}

/**
 * A PDF whose text extraction found pages without text: those pages are rendered by PDFium and
 * read by tesseract (up to options.maxPages of them); pages with a text layer keep their text.
 */
export async function extractPdfOcr(
  bytes: Uint8Array,
  limits: ExtractLimits,
  options: OcrOptions,
): Promise<ExtractOutcome> {
  const { extractorVersion, ocrDetails } = base(options.languages);
  const extractor = "pdfium+tesseract";
  const pdf = await openPdf(bytes);
  if ("error" in pdf) {
    const ids = { detectedType: "application/pdf", extractor, extractorVersion };
    return skipped(ids, pdf.encrypted ? "encrypted" : "corrupt", { reason: pdf.message });
  }
  try {
    await ensureReady(options.languages);
    return await ocrPages(pdf, limits, options, extractor, extractorVersion, ocrDetails);
  } finally {
    pdf.close();
  }
}

async function ocrPages(
  pdf: OpenPdf,
  limits: ExtractLimits,
  options: OcrOptions,
  extractor: string,
  extractorVersion: string,
  ocrDetails: Record<string, unknown>,
): Promise<ExtractOutcome> {
  const lastPage = Math.min(pdf.pages, limits.maxPages);
  const texts: string[] = [];
  let ocrPagesRead = 0;
  let ocrPagesLeft = 0;
  let confidence = 0;
  let bytes = 0;
  let textLimitReached = false;
  for (let i = 0; i < lastPage; i++) {
    const layer = pageText(pdf, i).text;
    let text = layer;
    if (!/[\p{L}\p{N}]/u.test(layer)) {
      if (ocrPagesRead >= options.maxPages) {
        ocrPagesLeft++;
      } else {
        const image = renderPageGray(pdf, i, options.dpi, options.maxPixels);
        if (image !== null) {
          const result = await recognize(image.pgm);
          text = result.text;
          confidence += result.confidence;
          ocrPagesRead++;
        }
      }
    }
    texts.push(text);
    bytes += text.length;
    if (bytes > limits.maxTextBytes && i + 1 < lastPage) {
      textLimitReached = true;
      break;
    }
  }
  const clean = cleanText(texts.join("\n\n"), limits.maxTextBytes);
  const details: Record<string, unknown> = {
    ...ocrDetails,
    words: countWords(clean.text),
    pages: texts.length,
    pages_total: pdf.pages,
    ocr_pages: ocrPagesRead,
    ocr_confidence: ocrPagesRead > 0 ? Math.round(confidence / ocrPagesRead) : undefined,
  };
  if (ocrPagesLeft > 0) {
    details.ocr_page_limit_reached = true;
    details.ocr_pages_skipped = ocrPagesLeft;
  }
  if (textLimitReached) details.text_limit_reached = true;
  else if (pdf.pages > texts.length) details.page_limit_reached = true;
  return {
    text: clean.text,
    textTruncated: clean.truncated || textLimitReached || pdf.pages > texts.length,
    detectedType: "application/pdf",
    extractor,
    extractorVersion,
    skippedReason: null,
    details,
  };
}

/**
 * Width and height from an image header, without decoding: a decompression bomb (a tiny PNG that
 * inflates to gigapixels) is refused before Leptonica allocates it. null when the header is not
 * understood (the RSS cap still holds).
 */
export function imageSize(b: Uint8Array): { width: number; height: number } | null {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  try {
    // PNG: IHDR right after the signature.
    if (buf.length >= 24 && buf.readUInt32BE(0) === 0x89504e47)
      return { width: buf.readUInt32BE(16), height: buf.readUInt32BE(20) };
    // GIF: logical screen size (frames cannot exceed it in practice; Leptonica reads the first).
    if (buf.length >= 10 && buf.toString("latin1", 0, 4) === "GIF8")
      return { width: buf.readUInt16LE(6), height: buf.readUInt16LE(8) };
    // BMP: BITMAPINFOHEADER (height may be negative for top-down bitmaps).
    if (buf.length >= 26 && buf.toString("latin1", 0, 2) === "BM")
      return { width: Math.abs(buf.readInt32LE(18)), height: Math.abs(buf.readInt32LE(22)) };
    // WebP: VP8 (lossy), VP8L (lossless) or VP8X (extended) chunk.
    if (buf.length >= 30 && buf.toString("latin1", 0, 4) === "RIFF" && buf.toString("latin1", 8, 12) === "WEBP") {
      const chunk = buf.toString("latin1", 12, 16);
      if (chunk === "VP8 ") return { width: buf.readUInt16LE(26) & 0x3fff, height: buf.readUInt16LE(28) & 0x3fff };
      if (chunk === "VP8L") {
        const bits = buf.readUInt32LE(21);
        return { width: (bits & 0x3fff) + 1, height: ((bits >> 14) & 0x3fff) + 1 };
      }
      if (chunk === "VP8X") return { width: buf.readUIntLE(24, 3) + 1, height: buf.readUIntLE(27, 3) + 1 };
      return null;
    }
    // JPEG: the first start-of-frame marker.
    if (buf.length >= 4 && buf[0] === 0xff && buf[1] === 0xd8) {
      let at = 2;
      while (at + 9 < buf.length) {
        if (buf[at] !== 0xff) return null;
        const marker = buf[at + 1] as number;
        if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc)
          return { width: buf.readUInt16BE(at + 7), height: buf.readUInt16BE(at + 5) };
        at += 2 + buf.readUInt16BE(at + 2);
      }
      return null;
    }
    // TIFF: the first IFD's ImageWidth (256) and ImageLength (257).
    const le = buf.toString("latin1", 0, 2) === "II";
    if (buf.length >= 8 && (le || buf.toString("latin1", 0, 2) === "MM")) {
      const u16 = (o: number) => (le ? buf.readUInt16LE(o) : buf.readUInt16BE(o));
      const u32 = (o: number) => (le ? buf.readUInt32LE(o) : buf.readUInt32BE(o));
      const ifd = u32(4);
      const count = u16(ifd);
      let width = 0;
      let height = 0;
      for (let i = 0; i < count && i < 512; i++) {
        const e = ifd + 2 + i * 12;
        const tag = u16(e);
        const value = u16(e + 2) === 3 ? u16(e + 8) : u32(e + 8);
        if (tag === 256) width = value;
        if (tag === 257) height = value;
      }
      return width > 0 && height > 0 ? { width, height } : null;
    }
  } catch {
    return null;
  }
  return null;
}

/**
 * An uncompressed BMP (1, 4, 8-bit palette; 24 or 32-bit) → 8-bit grey PGM. Throws on RLE and
 * other compressions (the OCR outcome is then corrupt, with the reason).
 */
export function bmpToPgm(b: Uint8Array): Uint8Array {
  const buf = Buffer.from(b.buffer, b.byteOffset, b.length);
  const dataAt = buf.readUInt32LE(10);
  const headerSize = buf.readUInt32LE(14);
  const width = buf.readInt32LE(18);
  const rawHeight = buf.readInt32LE(22);
  const bpp = buf.readUInt16LE(28);
  const compression = buf.readUInt32LE(30);
  const height = Math.abs(rawHeight);
  if (width <= 0 || height === 0) throw new Error("BMP without pixels");
  if (!(compression === 0 || (compression === 3 && bpp === 32)))
    throw new Error(`BMP compression ${compression} is not supported`);
  if (![1, 4, 8, 24, 32].includes(bpp)) throw new Error(`BMP of ${bpp} bits per pixel is not supported`);
  const colours = bpp <= 8 ? buf.readUInt32LE(46) || 1 << bpp : 0;
  const palette = 14 + headerSize;
  const grey = (blue: number, green: number, red: number) => (red * 77 + green * 150 + blue * 29) >> 8;
  const paletteGrey = Array.from({ length: colours }, (_, i) =>
    grey(buf[palette + i * 4] ?? 0, buf[palette + i * 4 + 1] ?? 0, buf[palette + i * 4 + 2] ?? 0),
  );
  const stride = (((width * bpp + 31) >> 5) << 2) >>> 0;
  if (dataAt + stride * height > buf.length) throw new Error("BMP is truncated");
  const header = Buffer.from(`P5\n${width} ${height}\n255\n`, "latin1");
  const out = new Uint8Array(header.length + width * height);
  out.set(header, 0);
  for (let y = 0; y < height; y++) {
    // Bottom-up unless the height is negative.
    const row = dataAt + (rawHeight > 0 ? height - 1 - y : y) * stride;
    const to = header.length + y * width;
    for (let x = 0; x < width; x++) {
      let v: number;
      if (bpp === 24 || bpp === 32) {
        const at = row + x * (bpp / 8);
        v = grey(buf[at] as number, buf[at + 1] as number, buf[at + 2] as number);
      } else {
        const bit = x * bpp;
        const byte = buf[row + (bit >> 3)] as number;
        const index = (byte >> (8 - bpp - (bit & 7))) & ((1 << bpp) - 1);
        v = paletteGrey[index] ?? 0;
      }
      out[to + x] = v;
    }
  }
  return out;
}
