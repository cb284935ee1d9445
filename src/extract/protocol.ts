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

export interface ExtractRequest {
  kind: ExtractorKind;
  source: ExtractSource;
  declaredType: string;
  charset: string | null;
  detectedType: string;
  limits: ExtractLimits;
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

export type ChildMessage = { type: "ready"; pid: number } | { type: "result"; id: number; outcome: ExtractOutcome };
