// Reads a zip's central directory and inflates the XML mammoth would load, counting bytes, before
// mammoth ever sees the file. mammoth (JSZip + xmldom) inflates whole parts in memory and needs
// ~50x the document.xml size: a 1 MB DOCX can demand gigabytes. Limits follow Tika's 100:1 ratio.
// Which parts mammoth loads is read the way mammoth reads it: the package relationships
// (_rels/.rels) name the main document part, wherever it is, and the main part's relationships
// name its styles, numbering, notes and comments; each of them is counted, not just word/*.xml.
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
  | { ok: true; detectedType: string; entries: number; xmlBytes: number; mainPart: string }
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

/** Parts in word/ that mammoth may read by its fallback paths, whatever the relationships say. */
function wordPart(name: string): boolean {
  return /^word\/[^/]+\.xml$/.test(name) || /^word\/_rels\/[^/]+\.rels$/.test(name);
}

/** A relationships part is a few KB; more is not a real one. */
const MAX_RELS_BYTES = 1024 * 1024;

interface Relationship {
  type: string;
  target: string;
  external: boolean;
}

function attribute(tag: string, name: string): string | undefined {
  const m = new RegExp(`\\s${name}\\s*=\\s*(?:"([^"]*)"|'([^']*)')`).exec(tag);
  const v = m?.[1] ?? m?.[2];
  return v
    ?.replace(/&amp;/g, "&")
    .replace(/&quot;/g, '"')
    .replace(/&apos;/g, "'")
    .replace(/&lt;/g, "<")
    .replace(/&gt;/g, ">");
}

export function parseRelationships(xml: string): Relationship[] {
  const out: Relationship[] = [];
  for (const m of xml.matchAll(/<(?:[A-Za-z_][\w.-]*:)?Relationship\b[^>]*>/g)) {
    const type = attribute(m[0], "Type");
    const target = attribute(m[0], "Target");
    if (type === undefined || target === undefined) continue;
    out.push({ type, target, external: /^external$/i.test(attribute(m[0], "TargetMode") ?? "") });
  }
  return out;
}

/** mammoth's zipfile.joinPath + stripPrefix("/"): a target relative to its source's folder, or absolute. */
export function resolvePart(base: string, target: string): string {
  const joined = target.startsWith("/") ? target : base === "" ? target : `${base}/${target}`;
  const parts: string[] = [];
  for (const seg of joined.split("/")) {
    if (seg === "" || seg === ".") continue;
    if (seg === "..") parts.pop();
    else parts.push(seg);
  }
  return parts.join("/");
}

function dirname(part: string): string {
  const at = part.lastIndexOf("/");
  return at < 0 ? "" : part.slice(0, at);
}

/** The relationships part of a part: word/document.xml → word/_rels/document.xml.rels. */
export function relationshipsPart(part: string): string {
  const dir = dirname(part);
  const file = part.slice(dir.length === 0 ? 0 : dir.length + 1);
  return `${dir === "" ? "" : `${dir}/`}_rels/${file}.rels`;
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

/**
 * Inflates one entry, counting bytes against the shared budget and refusing DTDs (entity bombs).
 * With `keep`, the inflated bytes are returned too (relationship parts, at most MAX_RELS_BYTES).
 */
async function inflateCounting(
  zip: yauzl.ZipFile,
  entry: yauzl.Entry,
  budget: { left: number; cap: number },
  keep = false,
): Promise<{ bytes: number; content: Buffer | null }> {
  const stream = await zip.openReadStreamPromise(entry);
  let bytes = 0;
  let tail = Buffer.alloc(0);
  let head = true;
  const kept: Buffer[] = [];
  try {
    for await (const chunk of stream as AsyncIterable<Buffer>) {
      bytes += chunk.length;
      if (keep) {
        if (bytes > MAX_RELS_BYTES)
          throw new Refused("too_complex", `${entry.fileName.slice(0, 100)} inflates past ${MAX_RELS_BYTES} bytes`);
        kept.push(chunk);
      }
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
  return { bytes, content: keep ? Buffer.concat(kept) : null };
}

/** `main`: the word-processing main part the package relationships name, when there is one. */
function kindOf(names: Set<string>, main?: string): string {
  if (main !== undefined) return MIME.docx;
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
    const byName = new Map(entries.map((e) => [e.fileName, e]));
    const budget = { left: limits.maxXmlBytes, cap: limits.maxXmlBytes };
    const counted = new Set<string>();
    let xmlBytes = 0;
    const count = async (name: string, keep = false): Promise<Buffer | null> => {
      const entry = byName.get(name);
      if (entry === undefined || counted.has(name)) return null;
      counted.add(name);
      const r = await inflateCounting(zip as yauzl.ZipFile, entry, budget, keep);
      xmlBytes += r.bytes;
      return r.content;
    };
    const OFFICE_DOCUMENT = /\/officeDocument$/;
    // The main document part as mammoth finds it: the first officeDocument relationship whose
    // target exists (any namespace: transitional or strict), else word/document.xml.
    const packageRels = parseRelationships((await count("_rels/.rels", true))?.toString("utf8") ?? "");
    const main = packageRels
      .filter((r) => !r.external && OFFICE_DOCUMENT.test(r.type))
      .map((r) => resolvePart("", r.target))
      .find((p) => byName.has(p));
    // A main part elsewhere than word/ is a word-processing one only if the content types say so.
    const contentTypes = (await count("[Content_Types].xml", true))?.toString("utf8") ?? "";
    const wordMain = main !== undefined && (main === "word/document.xml" || /wordprocessingml/i.test(contentTypes));
    detectedType = kindOf(names, wordMain ? main : undefined);
    if (detectedType !== MIME.docx)
      return { ok: false, detectedType, reason: "unsupported_type", detail: "not a word-processing document" };
    const mainPart = main ?? "word/document.xml";
    await count(mainPart);
    // Everything the main part links to inside the package that is XML: styles, numbering,
    // footnotes, endnotes, comments (and headers, settings... counted too: cheap and bounded).
    const related = parseRelationships((await count(relationshipsPart(mainPart), true))?.toString("utf8") ?? "");
    for (const r of related) {
      if (r.external) continue;
      const part = resolvePart(dirname(mainPart), r.target);
      if (/\.(xml|rels)$/i.test(part)) await count(part);
    }
    // mammoth's fallback paths (word/styles.xml... when no relationship names them) and the rest of word/.
    for (const entry of entries) if (wordPart(entry.fileName)) await count(entry.fileName);
    return { ok: true, detectedType, entries: entries.length, xmlBytes, mainPart };
  } catch (err) {
    // Refused while listing: name what the entries seen so far say it is (a DOCX already known stays one).
    if (detectedType !== MIME.docx) detectedType = kindOf(names);
    if (err instanceof Refused) return { ok: false, detectedType, reason: err.reason, detail: err.message };
    const message = String((err as Error)?.message ?? err);
    // yauzl checks inflated sizes against the directory: more bytes than declared is a bomb that lies.
    const reason = /too many bytes/i.test(message) ? "too_complex" : "corrupt";
    return { ok: false, detectedType, reason, detail: message.slice(0, 200) };
  } finally {
    zip?.close();
  }
}
