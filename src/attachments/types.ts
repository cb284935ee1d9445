// The contract between the message parser (which finds attachment parts in Gmail's payload tree),
// the sync code (which stores rows) and the attachment pipeline (which fetches, hashes, extracts
// and forgets the bytes). Only these shapes cross those boundaries — never the bytes themselves.

/** One attachment part as Gmail describes it, before anything is downloaded. */
export interface AttachmentRef {
  partId: string;
  filename: string | null;
  /** Declared MIME type (lower-cased, without parameters). */
  mimeType: string;
  /** Declared charset parameter, when the part has one (text parts). */
  charset: string | null;
  /** Content-ID without angle brackets, for inline parts. */
  contentId: string | null;
  /** Gmail's body.size: decoded bytes. Plans the route before any download. */
  size: number;
  /** Set when the bytes must be fetched with messages.attachments.get. */
  attachmentId: string | null;
  /** base64url body.data when Gmail put the bytes inline in the message (no extra call). */
  inlineData: string | null;
}

export type AttachmentRoute = "memory" | "temp_file" | "skipped";

export type SkippedReason =
  | "too_large" // over ATTACHMENT_TEMP_FILE_MAX_BYTES: never downloaded
  | "encrypted" // password-protected PDF or OOXML
  | "unsupported_type" // images, archives, audio, legacy .doc ... (declared ones are not downloaded: no checksum)
  | "too_complex" // zip/XML bomb refused by pre-flight, or the child hit its RSS cap
  | "timeout" // the child hit its wall-clock cap
  | "corrupt" // the parser rejected the bytes
  | "empty" // zero bytes
  | "fetch_failed" // the attachment could not be downloaded (gone, permanent error)
  | "too_many_parts" // past ATTACHMENT_MAX_PER_MESSAGE in its message: never downloaded
  | "inline_image"; // an image with a Content-ID (logo, signature, tracking pixel): not downloaded unless OCR is on

/** What the pipeline hands back for one part: a row's worth of checksum, text and metadata. */
export interface AttachmentResult {
  partId: string;
  filename: string | null;
  mimeType: string;
  contentId: string | null;
  size: number;
  detectedType: string | null;
  /** SHA-256 of the decoded bytes, 64 lower-case hex; null when nothing was downloaded. */
  checksum: string | null;
  text: string | null;
  textTruncated: boolean;
  route: AttachmentRoute;
  skippedReason: SkippedReason | null;
  /** route, detected type, extractor and version, pages, words, characters, duration ms, reason. */
  metadata: Record<string, unknown>;
}

/** Text already extracted for a checksum (dedupe across messages and accounts). */
export interface ReusableText {
  text: string | null;
  textTruncated: boolean;
  detectedType: string | null;
  metadata: Record<string, unknown>;
  /** Set when the stored row is a content-based skip (encrypted, unsupported_type, corrupt, empty). */
  skippedReason?: SkippedReason | null;
}

export interface ProcessOptions {
  /** The part's 0-based position among its message's attachments (ATTACHMENT_MAX_PER_MESSAGE). */
  index?: number;
}

export interface AttachmentPipeline {
  /**
   * Plans the route from ref.size, fetches (memory or temp file) with fetchBytes unless skipped,
   * hashes, reuses or extracts in an isolated child, and returns the result. Never throws for bad
   * input: every failure ends as a result with a skippedReason. Transient fetch errors (GmailError
   * kinds rate_limited/transient/auth_revoked) are rethrown so the sync job can retry.
   */
  process(ref: AttachmentRef, fetchBytes: () => Promise<Buffer>, opts?: ProcessOptions): Promise<AttachmentResult>;
  /**
   * An HTML mail body as text: short ones converted here, long ones in an extraction child, input
   * and output capped. Never throws: a child that fails leaves a linear tag strip of the same input.
   */
  htmlBodyText(html: string): Promise<string>;
  close(): Promise<void>;
}
