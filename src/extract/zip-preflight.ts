// Reads a zip's central directory and inflates the XML mammoth would load, counting bytes, before
// mammoth ever sees the file. mammoth (JSZip + xmldom) inflates whole parts in memory and needs
// ~50x the document.xml size: a 1 MB DOCX can demand gigabytes. Limits follow Tika's 100:1 ratio.
import yauzl from "yauzl";
import { MIME } from "./sniff.ts";

export const ZIP_LIMITS = {
  maxEntries: 1000,
  maxEntryBytes: 64 * 1024 * 1024,
  maxTotalBytes: 128 * 1024 * 1024,
  maxRatio: 100,
  /** The ratio check applies from this size on: tiny XML parts compress extremely well. */
  ratioFloorBytes: 1024 * 1024,
  /** Inflated word/*.xml (and relationships) we accept in total: mammoth then stays < ~1 GB. */
  maxXmlBytes: 20 * 1024 * 1024,
};

const MB = 1024 * 1024;

/**
 * The word-XML cap for a child with this RSS cap: mammoth needs ~45–50× the XML size (13.9 MB XML
 * → 688 MB RSS), so a 512 MB child takes ~9 MB of XML; never more than 20 MB. Refusing up front
 * is cheaper than letting the watchdog kill the child seconds later, and says why.
 */
export function docxXmlCap(rssLimitMb: number): number {
  return Math.max(MB, Math.min(ZIP_LIMITS.maxXmlBytes, Math.floor((rssLimitMb * MB) / 55)));
}

export type Preflight =
  | { ok: true; detectedType: string; entries: number; xmlBytes: number }
  | {
      ok: false;
      detectedType: string;
      reason: "too_complex" | "corrupt" | "unsupported_type" | "encrypted";
      detail: string;
    };

type Limits = typeof ZIP_LIMITS;

// A control-flow signal, not one of the project's errors: thrown by the checks below and caught in
// preflightZip, which turns it into a Preflight result, so it never leaves this file. It stays
// here rather than in src/errors.ts because this file runs in extraction children, which may read
// only src/extract/ (the allow-list in child-spawn.ts).
class Refused extends Error {
  readonly reason: "too_complex" | "corrupt" | "encrypted";
  constructor(reason: "too_complex" | "corrupt" | "encrypted", detail: string) {
    super(detail);
    this.reason = reason;
  }
}

const DTD = [Buffer.from("<!DOCTYPE"), Buffer.from("<!ENTITY")];

/** Parts mammoth reads: the main document, notes, comments, styles, numbering and relationships. */
function mammothReads(name: string): boolean {
  return (
    /^word\/[^/]+\.xml$/.test(name) ||
    /^word\/_rels\/[^/]+\.rels$/.test(name) ||
    name === "_rels/.rels" ||
    name === "[Content_Types].xml"
  );
}

async function listEntries(zip: yauzl.ZipFile, limits: Limits, names: Set<string>): Promise<yauzl.Entry[]> {
  if (zip.entryCount > limits.maxEntries)
    throw new Refused("too_complex", `zip has ${zip.entryCount} entries (limit ${limits.maxEntries})`);
  const entries: yauzl.Entry[] = [];
  let total = 0;
  return new Promise((resolve, reject) => {
    zip.on("entry", (entry: yauzl.Entry) => {
      try {
        names.add(entry.fileName);
        total += entry.uncompressedSize;
        if (entry.uncompressedSize > limits.maxEntryBytes)
          throw new Refused(
            "too_complex",
            `entry ${entry.fileName.slice(0, 100)} declares ${entry.uncompressedSize} bytes`,
          );
        if (total > limits.maxTotalBytes)
          throw new Refused("too_complex", `entries declare more than ${limits.maxTotalBytes} bytes in total`);
        if (
          entry.uncompressedSize >= limits.ratioFloorBytes &&
          entry.uncompressedSize > limits.maxRatio * Math.max(1, entry.compressedSize)
        ) {
          throw new Refused(
            "too_complex",
            `entry ${entry.fileName.slice(0, 100)} compresses ${Math.round(entry.uncompressedSize / Math.max(1, entry.compressedSize))}:1`,
          );
        }
        if (entry.isEncrypted()) throw new Refused("encrypted", "zip entries are encrypted");
        entries.push(entry);
        zip.readEntry();
      } catch (err) {
        reject(err);
      }
    });
    zip.on("end", () => resolve(entries));
    zip.on("error", reject);
    zip.readEntry();
  });
}

/** Inflates one entry, counting bytes against the shared budget and refusing DTDs (entity bombs). */
async function inflateCounting(
  zip: yauzl.ZipFile,
  entry: yauzl.Entry,
  budget: { left: number; cap: number },
): Promise<number> {
  const stream = await zip.openReadStreamPromise(entry);
  let bytes = 0;
  let tail = Buffer.alloc(0);
  let head = true;
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      budget.left -= chunk.length;
      if (budget.left < 0)
        throw new Refused(
          "too_complex",
          `word XML inflates past ${budget.cap} bytes (mammoth would need ~50x that in memory)`,
        );
      // OOXML never carries a DTD; a DOCTYPE or ENTITY declaration is an entity-bomb or XXE attempt.
      // Declarations must precede the root element, so the first 64 KB is where to look.
      if (head) {
        const window = Buffer.concat([tail, chunk]);
        if (DTD.some((d) => window.indexOf(d) >= 0))
          throw new Refused("too_complex", `${entry.fileName.slice(0, 100)} declares a DTD (entity expansion refused)`);
        tail = window.subarray(Math.max(0, window.length - 16));
        head = bytes < 64 * 1024;
      }
    }
  } finally {
    stream.destroy();
  }
  return bytes;
}

function kindOf(names: Set<string>): string {
  if (names.has("word/document.xml")) return MIME.docx;
  if (names.has("xl/workbook.xml")) return MIME.xlsx;
  if (names.has("ppt/presentation.xml")) return MIME.pptx;
  if (names.has("mimetype") && names.has("content.xml")) return "application/vnd.oasis.opendocument";
  return MIME.zip;
}

export async function preflightZip(bytes: Uint8Array, limits: Limits = ZIP_LIMITS): Promise<Preflight> {
  const buf = Buffer.from(bytes.buffer, bytes.byteOffset, bytes.length);
  let zip: yauzl.ZipFile | undefined;
  const names = new Set<string>();
  let detectedType: string = MIME.zip;
  try {
    zip = await yauzl.fromBufferPromise(buf, {
      lazyEntries: true,
      validateEntrySizes: true,
      strictFileNames: false,
      decodeStrings: true,
    });
    const entries = await listEntries(zip, limits, names);
    detectedType = kindOf(names);
    if (detectedType !== MIME.docx)
      return { ok: false, detectedType, reason: "unsupported_type", detail: "not a word-processing document" };
    const budget = { left: limits.maxXmlBytes, cap: limits.maxXmlBytes };
    let xmlBytes = 0;
    for (const entry of entries)
      if (mammothReads(entry.fileName)) xmlBytes += await inflateCounting(zip, entry, budget);
    return { ok: true, detectedType, entries: entries.length, xmlBytes };
  } catch (err) {
    // Refused while listing: name what the entries seen so far say it is.
    detectedType = kindOf(names);
    if (err instanceof Refused) return { ok: false, detectedType, reason: err.reason, detail: err.message };
    const message = String((err as Error)?.message ?? err);
    // yauzl checks inflated sizes against the directory: more bytes than declared is a bomb that lies.
    const reason = /too many bytes/i.test(message) ? "too_complex" : "corrupt";
    return { ok: false, detectedType, reason, detail: message.slice(0, 200) };
  } finally {
    zip?.close();
  }
}
