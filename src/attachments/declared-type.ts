// Which parts are not worth a download, decided from what the sender declared (MIME type, filename,
// Content-ID) before any byte is fetched: every attachments.get costs 5 quota units and the bytes.
// Only types no extractor reads are left out, and a filename that names a readable type always
// wins (a PDF sent as image/jpeg named report.pdf is still fetched and sniffed). With OCR on, the
// images OCR reads are fetched, inline ones included.

/** Image types the OCR pool reads (detected from the bytes). */
export const OCR_IMAGE_TYPES = new Set([
  "image/png",
  "image/jpeg",
  "image/tiff",
  "image/gif",
  "image/webp",
  "image/bmp",
]);

// Declared spellings of the same types (mail clients are inventive).
const OCR_DECLARED = new Set([
  ...OCR_IMAGE_TYPES,
  "image/jpg",
  "image/pjpeg",
  "image/x-png",
  "image/x-ms-bmp",
  "image/x-bmp",
  "image/tif",
  "image/x-tiff",
]);

// Declared types no extractor reads, besides image/*, audio/*, video/*, font/* and model/*.
const UNREADABLE = new Set([
  "application/x-msdownload",
  "application/x-dosexec",
  "application/x-executable",
  "application/vnd.microsoft.portable-executable",
  "application/x-7z-compressed",
  "application/vnd.rar",
  "application/x-rar-compressed",
  "application/gzip",
  "application/x-gzip",
  "application/x-bzip2",
  "application/x-xz",
  "application/x-tar",
  "application/pkcs7-signature",
  "application/x-pkcs7-signature",
  "application/pkcs7-mime",
  "application/x-pkcs7-mime",
  "application/pgp-signature",
  "application/pgp-keys",
  "application/ms-tnef",
  "application/vnd.ms-tnef",
  "application/vnd.ms-excel",
  "application/vnd.ms-powerpoint",
  "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  "application/vnd.openxmlformats-officedocument.presentationml.presentation",
  "application/postscript",
]);

// Filenames that name something an extractor reads: such a part is always fetched.
const READABLE_NAME = /\.(pdf|docx|txt|text|csv|tsv|md|markdown|html?|xhtml|eml|ics|json|xml|log)$/i;

export type DeclaredSkip = { reason: "inline_image" | "unsupported_type"; detail: string } | null;

export function skipBeforeDownload(
  ref: { mimeType: string; filename: string | null; contentId: string | null },
  ocr: boolean,
): DeclaredSkip {
  const type = ref.mimeType.toLowerCase();
  if (ref.filename !== null && READABLE_NAME.test(ref.filename)) return null;
  if (ocr && OCR_DECLARED.has(type)) return null;
  if (type.startsWith("image/")) {
    if (ref.contentId !== null)
      return { reason: "inline_image", detail: `inline ${type} (Content-ID): not downloaded` };
    return { reason: "unsupported_type", detail: `declared ${type}: no extractor reads it; not downloaded` };
  }
  if (/^(audio|video|font|model)\//.test(type) || UNREADABLE.has(type))
    return { reason: "unsupported_type", detail: `declared ${type}: no extractor reads it; not downloaded` };
  return null;
}
