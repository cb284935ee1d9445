// Picks an extractor from the bytes' magic as well as the declared MIME type: a PDF sent as
// application/octet-stream is still a PDF, a .exe renamed .pdf is not. Runs in the parent on the
// buffer it already holds (a few index lookups), so images and archives never travel to a child.

export type ExtractorKind = "pdf" | "zip" | "text" | "html" | "rfc822";

export type Sniffed =
  | { kind: ExtractorKind; detectedType: string }
  /** Decided without parsing: encrypted OOXML, legacy Office, images, executables... */
  | { kind: "skip"; detectedType: string; reason: "encrypted" | "unsupported_type" };

export const MIME = {
  pdf: "application/pdf",
  docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  xlsx: "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  pptx: "application/vnd.openxmlformats-officedocument.presentationml.presentation",
  zip: "application/zip",
  cfb: "application/x-cfb",
  encryptedOoxml: "application/x-ooxml-encrypted",
  doc: "application/msword",
  xls: "application/vnd.ms-excel",
  ppt: "application/vnd.ms-powerpoint",
  msg: "application/vnd.ms-outlook",
  octet: "application/octet-stream",
} as const;

const startsWith = (b: Uint8Array, sig: number[], at = 0) => sig.every((v, i) => b[at + i] === v);
const ascii = (s: string) => [...s].map((c) => c.charCodeAt(0));

// Binary signatures that settle the type whatever was declared. Order matters only for overlaps.
const SIGNATURES: Array<[string, (b: Uint8Array) => boolean]> = [
  ["image/png", (b) => startsWith(b, [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a])],
  ["image/jpeg", (b) => startsWith(b, [0xff, 0xd8, 0xff])],
  ["image/gif", (b) => startsWith(b, ascii("GIF8"))],
  ["image/webp", (b) => startsWith(b, ascii("RIFF")) && startsWith(b, ascii("WEBP"), 8)],
  ["audio/wav", (b) => startsWith(b, ascii("RIFF")) && startsWith(b, ascii("WAVE"), 8)],
  ["image/bmp", (b) => startsWith(b, ascii("BM")) && b.length > 26 && b[6] === 0 && b[7] === 0],
  ["image/tiff", (b) => startsWith(b, [0x49, 0x49, 0x2a, 0x00]) || startsWith(b, [0x4d, 0x4d, 0x00, 0x2a])],
  [
    "image/heic",
    (b) => startsWith(b, ascii("ftyp"), 4) && /^(heic|heix|mif1|msf1)$/.test(String.fromCharCode(...b.subarray(8, 12))),
  ],
  ["video/mp4", (b) => startsWith(b, ascii("ftyp"), 4)],
  ["audio/mpeg", (b) => startsWith(b, ascii("ID3")) || startsWith(b, [0xff, 0xfb])],
  ["audio/ogg", (b) => startsWith(b, ascii("OggS"))],
  ["application/gzip", (b) => startsWith(b, [0x1f, 0x8b])],
  ["application/x-bzip2", (b) => startsWith(b, ascii("BZh"))],
  ["application/x-xz", (b) => startsWith(b, [0xfd, 0x37, 0x7a, 0x58, 0x5a, 0x00])],
  ["application/x-7z-compressed", (b) => startsWith(b, [0x37, 0x7a, 0xbc, 0xaf, 0x27, 0x1c])],
  ["application/vnd.rar", (b) => startsWith(b, ascii("Rar!"))],
  ["application/x-msdownload", (b) => startsWith(b, ascii("MZ"))],
  ["application/x-elf", (b) => startsWith(b, [0x7f, 0x45, 0x4c, 0x46])],
  ["application/rtf", (b) => startsWith(b, ascii("{\\rtf"))],
  ["application/postscript", (b) => startsWith(b, ascii("%!PS"))],
];

const TEXT_TYPES = new Set([
  "text/plain",
  "text/csv",
  "text/markdown",
  "text/x-markdown",
  "text/calendar",
  "text/tab-separated-values",
  "text/x-log",
  "application/csv",
  "application/json",
  "application/xml",
  "text/xml",
  "application/ics",
]);

function indexOfBytes(b: Uint8Array, needle: Uint8Array, limit = b.length): number {
  const buf = Buffer.from(b.buffer, b.byteOffset, Math.min(b.length, limit));
  return buf.indexOf(needle);
}

function utf16le(s: string): Uint8Array {
  return Buffer.from(s, "utf16le");
}

/** An OLE2/CFB container: its directory names its streams in UTF-16LE. */
function sniffCfb(b: Uint8Array): Sniffed {
  // Encrypted OOXML (ECMA-376 agile/standard encryption) stores EncryptionInfo + EncryptedPackage.
  if (indexOfBytes(b, utf16le("EncryptedPackage")) >= 0) {
    return { kind: "skip", detectedType: MIME.encryptedOoxml, reason: "encrypted" };
  }
  const types: Array<[string, string]> = [
    ["WordDocument", MIME.doc],
    ["Workbook", MIME.xls],
    ["PowerPoint Document", MIME.ppt],
    ["__substg1.0_", MIME.msg],
  ];
  for (const [stream, type] of types) {
    if (indexOfBytes(b, utf16le(stream)) >= 0) return { kind: "skip", detectedType: type, reason: "unsupported_type" };
  }
  return { kind: "skip", detectedType: MIME.cfb, reason: "unsupported_type" };
}

/** Looks like text: no NUL in the sample (UTF-16 announces itself with a BOM) and few controls. */
export function looksLikeText(b: Uint8Array): boolean {
  if (hasUtf16Bom(b)) return true;
  const n = Math.min(b.length, 8192);
  if (n === 0) return false;
  let controls = 0;
  for (let i = 0; i < n; i++) {
    const c = b[i] as number;
    if (c === 0) return false;
    if (c < 0x20 && c !== 0x09 && c !== 0x0a && c !== 0x0d && c !== 0x0c && c !== 0x1b) controls++;
  }
  return controls / n < 0.01;
}

function hasUtf16Bom(b: Uint8Array): boolean {
  return startsWith(b, [0xff, 0xfe]) || startsWith(b, [0xfe, 0xff]);
}

function looksLikeHtml(b: Uint8Array): boolean {
  const head = Buffer.from(b.buffer, b.byteOffset, Math.min(b.length, 1024))
    .toString("latin1")
    .replace(/^\uFEFF|^\xEF\xBB\xBF/, "")
    .trimStart()
    .toLowerCase();
  return (
    head.startsWith("<!doctype html") ||
    head.startsWith("<html") ||
    (head.startsWith("<?xml") && head.includes("<html"))
  );
}

/** Decides the extractor. `declared` is the lower-cased MIME type without parameters. */
export function sniff(bytes: Uint8Array, declared: string, filename: string | null = null): Sniffed {
  const declaredType = (declared.toLowerCase().split(";")[0] ?? "").trim();
  // %PDF- may follow junk (mail gateways prepend banners); pdf.js looks within the first 1 KB too.
  if (indexOfBytes(bytes, Buffer.from("%PDF-"), 1024) >= 0) return { kind: "pdf", detectedType: MIME.pdf };
  if (startsWith(bytes, [0x50, 0x4b, 0x03, 0x04]) || startsWith(bytes, [0x50, 0x4b, 0x05, 0x06])) {
    // The zip extractor reads the directory to tell DOCX from XLSX, PPTX or a plain archive.
    return { kind: "zip", detectedType: MIME.zip };
  }
  if (startsWith(bytes, [0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1])) return sniffCfb(bytes);
  for (const [type, test] of SIGNATURES)
    if (test(bytes)) return { kind: "skip", detectedType: type, reason: "unsupported_type" };

  // No binary signature: the declared type (or, for generic types, the content) decides.
  if (declaredType === "message/rfc822" || declaredType === "message/global")
    return { kind: "rfc822", detectedType: "message/rfc822" };
  if (declaredType === "text/html" || declaredType === "application/xhtml+xml")
    return { kind: "html", detectedType: "text/html" };
  if (
    TEXT_TYPES.has(declaredType) ||
    (declaredType.startsWith("text/") && !/^text\/(rtf|x-vcard|vcard)$/.test(declaredType))
  ) {
    if (looksLikeHtml(bytes) && declaredType === "text/plain") return { kind: "html", detectedType: "text/html" };
    return { kind: "text", detectedType: declaredType.startsWith("text/") ? declaredType : "text/plain" };
  }
  if (declaredType === MIME.pdf) return { kind: "pdf", detectedType: MIME.pdf }; // header damaged: let pdf.js try
  const generic =
    declaredType === "" ||
    declaredType === MIME.octet ||
    declaredType === "application/unknown" ||
    declaredType === "binary/octet-stream";
  if (generic && looksLikeText(bytes)) {
    if (looksLikeHtml(bytes)) return { kind: "html", detectedType: "text/html" };
    if (filename && /\.eml$/i.test(filename)) return { kind: "rfc822", detectedType: "message/rfc822" };
    return { kind: "text", detectedType: "text/plain" };
  }
  return { kind: "skip", detectedType: generic ? MIME.octet : declaredType, reason: "unsupported_type" };
}
