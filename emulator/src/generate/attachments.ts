// Attachment fixtures built in code: real PDFs, DOCX, CSV, HTML and PNG files, plus the hostile
// kinds the extraction pipeline must survive (encrypted, truncated, looping, zip-bomb, entity-bomb,
// CFB-wrapped). Used by the mailbox generator and by the pipeline's tests. Every builder is
// deterministic (same options → same bytes) and memoised per options, because a 20,000-message
// mailbox reuses a few dozen bodies; each call returns its own copy, so callers may mutate it.
import { createHash } from "node:crypto";
import {
  AlignmentType,
  Document,
  FootnoteReferenceRun,
  Packer,
  Paragraph,
  Table,
  TableCell,
  TableRow,
  TextRun,
  WidthType,
} from "docx";
import JSZip from "jszip";
import { PDFDocument, StandardFonts } from "pdf-lib";
import { buildPng } from "./png.ts";
import { standardSecurity } from "./pdf-security.ts";
import { pdfLiteral, serializePdf, type PdfObject } from "./raw-pdf.ts";
import { deflatedEntry, repeatedByteEntry, writeZip, type ZipEntry } from "./zip-writer.ts";

const memo = new Map<string, Promise<Buffer> | Buffer>();

async function cachedAsync(key: string, build: () => Promise<Buffer>): Promise<Buffer> {
  let hit = memo.get(key);
  if (!hit) {
    hit = build();
    memo.set(key, hit);
    hit.catch(() => memo.delete(key));
  }
  return Buffer.from(await hit);
}

function cached(key: string, build: () => Buffer): Buffer {
  let hit = memo.get(key);
  if (!hit) {
    hit = build();
    memo.set(key, hit);
  }
  return Buffer.from(hit as Buffer);
}

// Fixed dates keep the bytes deterministic across runs.
const FIXED_DATE = new Date(Date.UTC(2024, 0, 15, 9, 30, 0));

// ---------------------------------------------------------------------------------------------
// PDF

/** StandardFonts only encode WinAnsi: replace what Helvetica cannot draw rather than throw. */
function winAnsi(text: string): string {
  return text.replace(/[^\x20-\x7e\xa0-\xff]/g, "?");
}

function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  for (const paragraph of text.split(/\r?\n/)) {
    let line = "";
    for (const word of paragraph.split(/\s+/).filter(Boolean)) {
      if (line && line.length + 1 + word.length > width) {
        lines.push(line);
        line = word;
      } else {
        line = line ? `${line} ${word}` : word;
      }
    }
    lines.push(line);
  }
  return lines;
}

const defaultPageText = (page: number): string =>
  `Page ${page} of the generated report. The quarterly figures for the northern region were reviewed ` +
  `and the committee approved the revised budget. Keyword marmalade${page}.`;

export function makePdf(opts: {
  pages: number;
  text?: (page: number) => string;
  title?: string;
  author?: string;
}): Promise<Buffer> {
  const pageText = opts.text ?? defaultPageText;
  const texts = Array.from({ length: opts.pages }, (_, i) => winAnsi(pageText(i + 1)));
  const key = `pdf:${JSON.stringify([texts, opts.title ?? null, opts.author ?? null])}`;
  return cachedAsync(key, async () => {
    // updateMetadata:false: no producer/"now" dates, so the bytes depend only on the options.
    const doc = await PDFDocument.create({ updateMetadata: false });
    const font = await doc.embedFont(StandardFonts.Helvetica);
    if (opts.title !== undefined) doc.setTitle(winAnsi(opts.title));
    if (opts.author !== undefined) doc.setAuthor(winAnsi(opts.author));
    doc.setCreationDate(FIXED_DATE);
    for (const text of texts) {
      const page = doc.addPage([612, 792]);
      const fontKey = page.node.newFontDictionary("F1", font.ref);
      // The content stream is written directly (one text object per page, 14 pt leading) rather
      // than with page.drawText: ~3× faster, which matters for the 2,000-page fixture. Lines past
      // the bottom margin are dropped: callers keep each page's text page-sized.
      const lines = wrap(text, 95).slice(0, 49);
      const shows = lines.map((line) => `<${Buffer.from(line, "latin1").toString("hex")}> Tj T*`).join("\n");
      const ops = `BT\n${fontKey.asString()} 10 Tf 14 TL 56 740 Td\n${shows}\nET`;
      page.node.addContentStream(doc.context.register(doc.context.flateStream(ops)));
    }
    return Buffer.from(await doc.save());
  });
}

export function makeEncryptedPdf(opts: { userPassword?: string; ownerOnly?: boolean } = {}): Promise<Buffer> {
  const userPassword = opts.ownerOnly ? "" : (opts.userPassword ?? "secret");
  const key = `encrypted-pdf:${JSON.stringify([userPassword, opts.ownerOnly ?? false])}`;
  return cachedAsync(key, async () => {
    const fileId = createHash("md5").update(key).digest();
    const security = standardSecurity({
      userPassword,
      ownerPassword: "owner-of-the-fixture",
      // Printing/copying off: an owner-only PDF like this still opens and extracts in pdf.js.
      permissions: -3904,
      fileId,
    });
    const lines = [
      opts.ownerOnly ? "Owner restricted statement, opens without a password." : "Password protected statement.",
      "Confidential salary review for the platypus division.",
      "Keyword quandaryencrypted appears only inside this document.",
    ];
    const content = `BT /F1 12 Tf 72 720 Td 16 TL ${lines.map((l) => `${pdfLiteral(l)} '`).join(" ")} ET`;
    const objects: PdfObject[] = [
      "<< /Type /Catalog /Pages 2 0 R >>",
      "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
      "<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> >> /Contents 5 0 R >>",
      "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
      { dict: "<< >>", stream: security.encrypt(5, Buffer.from(content, "latin1")) },
      security.encryptDict,
    ];
    const id = fileId.toString("hex");
    return serializePdf(objects, `/Root 1 0 R /Encrypt 6 0 R /ID [<${id}> <${id}>]`);
  });
}

export function makeCorruptPdf(): Promise<Buffer> {
  return cachedAsync("corrupt-pdf", async () => {
    const whole = await makePdf({ pages: 3, title: "Truncated transfer" });
    // Cut mid-file: the header survives, the page tree, xref and trailer do not.
    return whole.subarray(0, Math.floor(whole.length * 0.35));
  });
}

export function makeImageOnlyPdf(): Promise<Buffer> {
  return cachedAsync("image-only-pdf", async () => {
    const doc = await PDFDocument.create({ updateMetadata: false });
    for (let i = 0; i < 3; i++) {
      const image = await doc.embedPng(buildPng(160, 120, 1000 + i));
      const page = doc.addPage([612, 792]);
      page.drawImage(image, { x: 56, y: 300, width: 500, height: 375 });
    }
    return Buffer.from(await doc.save());
  });
}

/**
 * A page whose content draws form XObject X0, which draws X1 four times, ... down to a leaf that
 * shows a word: 4^24 text runs from a 5 KB file. pdf.js re-evaluates non-empty forms on every
 * Do (it only caches forms that produced no text) and only detects cycles, not this DAG, so text
 * extraction runs until a wall-clock or memory limit stops it.
 */
export function makeLoopingPdf(): Promise<Buffer> {
  return cachedAsync("looping-pdf", async () => {
    const depth = 24;
    const fanOut = 4;
    const firstForm = 6;
    const objects: PdfObject[] = [
      "<< /Type /Catalog /Pages 2 0 R >>",
      "<< /Type /Pages /Kids [3 0 R] /Count 1 >>",
      `<< /Type /Page /Parent 2 0 R /MediaBox [0 0 612 792] /Resources << /Font << /F1 4 0 R >> /XObject << /X0 ${firstForm} 0 R >> >> /Contents 5 0 R >>`,
      "<< /Type /Font /Subtype /Type1 /BaseFont /Helvetica /Encoding /WinAnsiEncoding >>",
      { dict: "<< >>", stream: Buffer.from("BT /F1 12 Tf 72 720 Td (Recursive ledger) Tj ET\n/X0 Do") },
    ];
    for (let level = 0; level < depth; level++) {
      const last = level === depth - 1;
      const body = last
        ? "BT /F1 6 Tf 10 10 Td (loop) Tj ET"
        : Array.from({ length: fanOut }, () => `/X${level + 1} Do`).join("\n");
      const resources = last
        ? "<< /Font << /F1 4 0 R >> >>"
        : `<< /XObject << /X${level + 1} ${firstForm + level + 1} 0 R >> >>`;
      objects.push({
        dict: `<< /Type /XObject /Subtype /Form /BBox [0 0 612 792] /Resources ${resources} >>`,
        stream: Buffer.from(body),
      });
    }
    return serializePdf(objects, "/Root 1 0 R");
  });
}

// ---------------------------------------------------------------------------------------------
// DOCX

/** Re-zips with fixed timestamps and creation dates: docx stamps "now" into core.xml. */
async function normalizeZip(bytes: Buffer): Promise<Buffer> {
  const zip = await JSZip.loadAsync(bytes);
  const entries: ZipEntry[] = [];
  for (const file of Object.values(zip.files)) {
    if (file.dir) continue;
    let data = await file.async("nodebuffer");
    if (file.name === "docProps/core.xml") {
      data = Buffer.from(
        data
          .toString("utf8")
          .replace(
            /(<dcterms:(?:created|modified)[^>]*>)[^<]*/g,
            `$1${FIXED_DATE.toISOString().replace(/\.\d+Z$/, "Z")}`,
          ),
      );
    }
    entries.push(deflatedEntry(file.name, data));
  }
  return writeZip(entries);
}

export function makeDocx(opts: { paragraphs: string[]; table?: string[][]; footnote?: string }): Promise<Buffer> {
  const key = `docx:${JSON.stringify([opts.paragraphs, opts.table ?? null, opts.footnote ?? null])}`;
  return cachedAsync(key, async () => {
    const children: (Paragraph | Table)[] = opts.paragraphs.map((text, i) => {
      const runs: (TextRun | FootnoteReferenceRun)[] = [new TextRun(text)];
      if (i === 0 && opts.footnote !== undefined) runs.push(new FootnoteReferenceRun(1));
      return new Paragraph({ children: runs });
    });
    if (opts.table && opts.table.length > 0) {
      children.push(
        new Table({
          width: { size: 100, type: WidthType.PERCENTAGE },
          rows: opts.table.map(
            (row) =>
              new TableRow({
                children: row.map(
                  (cell) => new TableCell({ children: [new Paragraph({ text: cell, alignment: AlignmentType.LEFT })] }),
                ),
              }),
          ),
        }),
      );
    }
    if (opts.paragraphs.length === 0 && opts.footnote !== undefined) {
      children.push(new Paragraph({ children: [new FootnoteReferenceRun(1)] }));
    }
    const doc = new Document({
      creator: "gmail-sync generator",
      sections: [{ children }],
      ...(opts.footnote !== undefined ? { footnotes: { 1: { children: [new Paragraph(opts.footnote)] } } } : {}),
    });
    return normalizeZip(await Packer.toBuffer(doc));
  });
}

const CONTENT_TYPES =
  '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' +
  '<Types xmlns="http://schemas.openxmlformats.org/package/2006/content-types">' +
  '<Default Extension="rels" ContentType="application/vnd.openxmlformats-package.relationships+xml"/>' +
  '<Default Extension="xml" ContentType="application/xml"/>' +
  '<Override PartName="/word/document.xml" ContentType="application/vnd.openxmlformats-officedocument.wordprocessingml.document.main+xml"/>' +
  "</Types>";
const ROOT_RELS =
  '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' +
  '<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships">' +
  '<Relationship Id="rId1" Type="http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument" Target="word/document.xml"/>' +
  "</Relationships>";
const W_NS = 'xmlns:w="http://schemas.openxmlformats.org/wordprocessingml/2006/main"';

/**
 * A well-formed DOCX whose word/document.xml is one paragraph of `inflatedBytes` letters
 * (default 1.2 GB): ~1.2 MB on the wire, sizes declared honestly in the zip directory. The zip
 * is written by hand because the XML is never materialised; no ZIP64, so at most 4 GiB.
 */
export function makeZipBombDocx(opts: { inflatedBytes?: number } = {}): Promise<Buffer> {
  const inflatedBytes = opts.inflatedBytes ?? 1_200_000_000;
  return cachedAsync(`zip-bomb-docx:${inflatedBytes}`, async () =>
    writeZip([
      deflatedEntry("[Content_Types].xml", CONTENT_TYPES),
      deflatedEntry("_rels/.rels", ROOT_RELS),
      repeatedByteEntry(
        "word/document.xml",
        `<?xml version="1.0" encoding="UTF-8" standalone="yes"?><w:document ${W_NS}><w:body><w:p><w:r><w:t>`,
        0x41, // "A"
        "</w:t></w:r></w:p></w:body></w:document>",
        inflatedBytes,
      ),
    ]),
  );
}

/** Billion laughs in word/document.xml: ten levels of ten references each. */
export function makeEntityBombDocx(): Promise<Buffer> {
  return cachedAsync("entity-bomb-docx", async () => {
    const entities = ['<!ENTITY lol0 "lol">'];
    for (let i = 1; i < 10; i++) {
      entities.push(`<!ENTITY lol${i} "${Array.from({ length: 10 }, () => `&lol${i - 1};`).join("")}">`);
    }
    const xml =
      '<?xml version="1.0" encoding="UTF-8" standalone="yes"?>' +
      `<!DOCTYPE w:document [${entities.join("")}]>` +
      `<w:document ${W_NS}><w:body><w:p><w:r><w:t>&lol9;</w:t></w:r></w:p></w:body></w:document>`;
    return writeZip([
      deflatedEntry("[Content_Types].xml", CONTENT_TYPES),
      deflatedEntry("_rels/.rels", ROOT_RELS),
      deflatedEntry("word/document.xml", xml),
    ]);
  });
}

/**
 * What Word writes for a password-protected .docx: an OLE2 compound file (not a zip) holding
 * EncryptionInfo and EncryptedPackage streams. The header and directory are laid out as in
 * [MS-CFB]; the stream contents are deterministic noise standing in for AES ciphertext.
 */
export function makeEncryptedDocx(): Buffer {
  return cached("encrypted-docx", () => {
    const sector = 512;
    const header = Buffer.alloc(sector);
    Buffer.from("d0cf11e0a1b11ae1", "hex").copy(header, 0);
    header.writeUInt16LE(0x003e, 24); // minor version
    header.writeUInt16LE(0x0003, 26); // major version 3 (512-byte sectors)
    header.writeUInt16LE(0xfffe, 28); // byte order
    header.writeUInt16LE(9, 30); // sector shift
    header.writeUInt16LE(6, 32); // mini sector shift
    header.writeUInt32LE(1, 44); // FAT sectors
    header.writeUInt32LE(1, 48); // first directory sector
    header.writeUInt32LE(4096, 56); // mini stream cutoff
    header.writeUInt32LE(0xfffffffe, 60); // no mini FAT
    header.writeUInt32LE(0xfffffffe, 68); // no DIFAT sectors
    header.writeUInt32LE(0, 76); // DIFAT[0] = FAT at sector 0
    for (let i = 80; i < sector; i += 4) header.writeUInt32LE(0xffffffff, i);
    const infoSectors = 8; // 4 KB EncryptionInfo
    const packageSectors = 16; // 8 KB EncryptedPackage
    const fat = Buffer.alloc(sector, 0xff);
    fat.writeUInt32LE(0xfffffffd, 0); // sector 0: FAT
    fat.writeUInt32LE(0xfffffffe, 4); // sector 1: directory, end of chain
    const chain = (first: number, count: number): void => {
      for (let i = 0; i < count; i++) fat.writeUInt32LE(i === count - 1 ? 0xfffffffe : first + i + 1, (first + i) * 4);
    };
    chain(2, infoSectors);
    chain(2 + infoSectors, packageSectors);
    const dir = Buffer.alloc(sector);
    const entry = (
      index: number,
      name: string,
      type: number,
      start: number,
      size: number,
      child = 0xffffffff,
      right = 0xffffffff,
    ): void => {
      const at = index * 128;
      const utf16 = Buffer.from(`${name}\0`, "utf16le");
      utf16.copy(dir, at);
      dir.writeUInt16LE(utf16.length, at + 64);
      dir[at + 66] = type;
      dir[at + 67] = 1; // black
      dir.writeUInt32LE(0xffffffff, at + 68); // left sibling
      dir.writeUInt32LE(right, at + 72);
      dir.writeUInt32LE(child, at + 76);
      dir.writeUInt32LE(start, at + 116);
      dir.writeUInt32LE(size, at + 120);
    };
    entry(0, "Root Entry", 5, 0xfffffffe, 0, 1);
    entry(1, "EncryptionInfo", 2, 2, infoSectors * sector, 0xffffffff, 2);
    entry(2, "EncryptedPackage", 2, 2 + infoSectors, packageSectors * sector);
    const noise = Buffer.alloc((infoSectors + packageSectors) * sector);
    let block = createHash("sha256").update("encrypted-docx").digest();
    for (let at = 0; at < noise.length; at += block.length) {
      block.copy(noise, at);
      block = createHash("sha256").update(block).digest();
    }
    // EncryptionInfo starts with its version (4.4 = agile encryption) and an XML descriptor.
    const info = Buffer.concat([
      Buffer.from([4, 0, 4, 0, 0x40, 0, 0, 0]),
      Buffer.from(
        '<?xml version="1.0" encoding="UTF-8" standalone="yes"?><encryption xmlns="http://schemas.microsoft.com/office/2006/encryption"><keyData saltSize="16" blockSize="16" keyBits="256" hashSize="64" cipherAlgorithm="AES" cipherChaining="ChainingModeCBC" hashAlgorithm="SHA512"/></encryption>',
      ),
    ]);
    info.copy(noise, 0);
    noise.writeUInt32LE(7 * 1024, infoSectors * sector); // EncryptedPackage: plaintext size
    return Buffer.concat([header, fat, dir, noise]);
  });
}

// ---------------------------------------------------------------------------------------------
// Text formats and images

function csvField(value: string): string {
  return /[",\r\n]/.test(value) ? `"${value.replace(/"/g, '""')}"` : value;
}

export function makeCsv(rows: string[][], opts: { encoding?: "utf8" | "utf16le" } = {}): Buffer {
  const text = `${rows.map((row) => row.map(csvField).join(",")).join("\r\n")}\r\n`;
  if (opts.encoding === "utf16le") return Buffer.concat([Buffer.from([0xff, 0xfe]), Buffer.from(text, "utf16le")]);
  return Buffer.from(text, "utf8");
}

const escapeHtml = (text: string): string =>
  text.replace(/[&<>"]/g, (c) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;" })[c] as string);

export function makeHtml(opts: { title: string; paragraphs: string[]; withScript?: boolean }): Buffer {
  const script = opts.withScript
    ? '<script>var hiddenToken = "scriptpayloadxyzzy"; document.title = hiddenToken;</script>' +
      "<style>.stylepayloadplugh { color: red; }</style>"
    : "";
  return Buffer.from(
    `<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8"><title>${escapeHtml(opts.title)}</title>${script}</head>\n` +
      `<body><h1>${escapeHtml(opts.title)}</h1>\n${opts.paragraphs.map((p) => `<p>${escapeHtml(p)}</p>`).join("\n")}\n</body></html>\n`,
    "utf8",
  );
}

export function makePng(opts: { width?: number; height?: number; seed?: number } = {}): Buffer {
  const width = opts.width ?? 64;
  const height = opts.height ?? 48;
  const seed = opts.seed ?? 1;
  return cached(`png:${width}x${height}:${seed}`, () => buildPng(width, height, seed));
}
