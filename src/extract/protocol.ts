// Messages between the parent (pool.ts) and an extraction child (child.ts). Sent over the fork IPC
// channel with `serialization: "advanced"` (structured clone), so bytes travel as a Uint8Array
// copy, not as JSON.
import type { ExtractorKind } from "./sniff.ts";

export interface ExtractLimits {
  maxPages: number;
  maxTextBytes: number;
  /** Inflated word/*.xml the DOCX pre-flight lets through to mammoth (see docxXmlCap). */
  maxXmlBytes: number;
}

export type ExtractSource = { type: "bytes"; bytes: Uint8Array } | { type: "file"; path: string };

/** PDF_ENGINE: PDFium (WebAssembly, the default) or pdf-parse (pdf.js). */
export type PdfEngine = "pdfium" | "pdf-parse";

/** What OCR children do (EXTRACT_OCR=true): see ocr.ts. */
export interface OcrOptions {
  /** tesseract language codes, each an installed @tesseract.js-data/<code> package. */
  languages: string[];
  /** Pages rendered and read per PDF (pages with a text layer are not counted). */
  maxPages: number;
  /** Rendering resolution of PDF pages. */
  dpi: number;
  /** Images (and rendered pages) above this many pixels are refused (images) or scaled down (pages). */
  maxPixels: number;
}

/** Text extractors, plus the OCR kinds only OCR children receive. */
export type RequestKind = ExtractorKind | "ocr-image" | "ocr-pdf";

export interface ExtractRequest {
  kind: RequestKind;
  source: ExtractSource;
  declaredType: string;
  charset: string | null;
  detectedType: string;
  limits: ExtractLimits;
  /** PDF engine for kind "pdf"; PDFium when absent. */
  pdfEngine?: PdfEngine;
  /** Required for the OCR kinds. */
  ocr?: OcrOptions;
  /** Kind "html": an attachment (the default) or a mail body (html-to-text's own link format). */
  htmlStyle?: "attachment" | "body";
}

/** Skips a child can decide on its own; timeout and RSS kills are decided by the parent. */
export type ChildSkipReason = "encrypted" | "unsupported_type" | "too_complex" | "corrupt";

export interface ExtractOutcome {
  text: string | null;
  textTruncated: boolean;
  detectedType: string;
  extractor: string;
  extractorVersion: string | null;
  skippedReason: ChildSkipReason | null;
  /** Extractor-specific metadata: pages, pages_total, title, author, no_text_layer, reason... */
  details: Record<string, unknown>;
}

export type ParentMessage = { type: "extract"; id: number; request: ExtractRequest } | { type: "exit" };

export type ChildMessage =
  | { type: "ready"; pid: number }
  | {
      type: "result";
      id: number;
      outcome: ExtractOutcome;
      /** The child's RSS after the job: WebAssembly memory never shrinks, so a grown child is recycled. */
      rssMb?: number;
      /** The child's parser state is unknown after this job (a WebAssembly abort): replace it. */
      recycle?: boolean;
    };
