// The fixture builders produce what they claim: real text layers, real password protection,
// real zip-bomb sizes — checked with the same libraries the extraction pipeline uses.
import { spawn } from "node:child_process";
import { crc32 } from "node:zlib";
import JSZip from "jszip";
import mammoth from "mammoth";
import { PDFDocument } from "pdf-lib";
import { PDFParse } from "pdf-parse";
import yauzl from "yauzl";
import { describe, expect, it } from "vitest";
import {
  makeCorruptPdf,
  makeCsv,
  makeDocx,
  makeEncryptedDocx,
  makeEncryptedPdf,
  makeEntityBombDocx,
  makeHtml,
  makeImageOnlyPdf,
  makeLoopingPdf,
  makePdf,
  makePng,
  makeZipBombDocx,
} from "../src/generate/attachments.ts";
import { crc32Combine } from "../src/generate/zip-writer.ts";

async function pdfText(bytes: Buffer, password?: string): Promise<{ text: string; pages: number }> {
  const parser = new PDFParse({
    data: new Uint8Array(bytes),
    isEvalSupported: false,
    ...(password !== undefined ? { password } : {}),
  });
  try {
    const result = await parser.getText({ pageJoiner: "" });
    return { text: result.text.trim(), pages: result.total };
  } finally {
    await parser.destroy();
  }
}

async function pdfError(bytes: Buffer): Promise<string> {
  try {
    await pdfText(bytes);
  } catch (err) {
    return (err as Error).name;
  }
  return "no error";
}

function zipDirectory(bytes: Buffer): Promise<Map<string, { compressed: number; uncompressed: number }>> {
  return new Promise((resolve, reject) => {
    yauzl.fromBuffer(bytes, { lazyEntries: true }, (err, zip) => {
      if (err || !zip) return reject(err);
      const entries = new Map<string, { compressed: number; uncompressed: number }>();
      zip.on("entry", (entry: yauzl.Entry) => {
        entries.set(entry.fileName, { compressed: entry.compressedSize, uncompressed: entry.uncompressedSize });
        zip.readEntry();
      });
      zip.on("end", () => resolve(entries));
      zip.on("error", reject);
      zip.readEntry();
    });
  });
}

describe("PDF builders", () => {
  it("makePdf writes a searchable text layer on every page, with title and author", async () => {
    const bytes = await makePdf({
      pages: 4,
      text: (p) => `Page ${p} mentions zanzibarite${p} twice.`,
      title: "Quarterly",
      author: "Ana",
    });
    expect(bytes.subarray(0, 5).toString()).toBe("%PDF-");
    const { text, pages } = await pdfText(bytes);
    expect(pages).toBe(4);
    for (let p = 1; p <= 4; p++) expect(text).toContain(`zanzibarite${p}`);
    const parser = new PDFParse({ data: new Uint8Array(bytes), isEvalSupported: false });
    const info = await parser.getInfo();
    await parser.destroy();
    expect(info.info).toMatchObject({ Title: "Quarterly", Author: "Ana" });
  });

  it("makePdf is deterministic and hands out independent copies", async () => {
    const a = await makePdf({ pages: 2 });
    const b = await makePdf({ pages: 2 });
    expect(a.equals(b)).toBe(true);
    a.fill(0);
    expect((await makePdf({ pages: 2 })).equals(b)).toBe(true);
    expect((await makePdf({ pages: 3 })).equals(b)).toBe(false);
  });

  it("makeEncryptedPdf needs its user password; ownerOnly opens without one", async () => {
    const locked = await makeEncryptedPdf();
    expect(locked.toString("latin1")).toContain("/Encrypt");
    expect(await pdfError(locked)).toBe("PasswordException");
    expect((await pdfText(locked, "secret")).text).toContain("quandaryencrypted");
    expect(await pdfError(await makeEncryptedPdf({ userPassword: "other" }))).toBe("PasswordException");
    const ownerOnly = await makeEncryptedPdf({ ownerOnly: true });
    expect(ownerOnly.toString("latin1")).toContain("/Encrypt");
    expect((await pdfText(ownerOnly)).text).toContain("quandaryencrypted");
    // The text is really encrypted, not just flagged.
    expect(ownerOnly.toString("latin1")).not.toContain("quandaryencrypted");
  });

  it("makeCorruptPdf is a truncated PDF pdf.js rejects", async () => {
    const bytes = await makeCorruptPdf();
    expect(bytes.subarray(0, 5).toString()).toBe("%PDF-");
    expect(bytes.toString("latin1")).not.toContain("%%EOF");
    expect(await pdfError(bytes)).toBe("InvalidPDFException");
  });

  it("makeImageOnlyPdf has pages and no text", async () => {
    const { text, pages } = await pdfText(await makeImageOnlyPdf());
    expect(pages).toBe(3);
    expect(text).toBe("");
  });

  it("makeLoopingPdf is a small valid PDF whose text extraction does not finish", async () => {
    const bytes = await makeLoopingPdf();
    expect(bytes.length).toBeLessThan(10_000);
    expect((await PDFDocument.load(bytes)).getPageCount()).toBe(1);
    // In a child process: in this one it would block the test worker.
    const child = spawn(
      process.execPath,
      [
        "--input-type=module",
        "-e",
        `import { PDFParse } from "pdf-parse";
         const chunks = []; for await (const c of process.stdin) chunks.push(c);
         await new PDFParse({ data: new Uint8Array(Buffer.concat(chunks)), isEvalSupported: false }).getText();
         console.log("finished");`,
      ],
      { cwd: process.cwd(), stdio: ["pipe", "pipe", "inherit"] },
    );
    let out = "";
    child.stdout.on("data", (c: Buffer) => (out += c.toString()));
    child.stdin.end(bytes);
    const exited = await new Promise<boolean>((resolve) => {
      const timer = setTimeout(() => resolve(false), 2_500);
      child.on("exit", () => {
        clearTimeout(timer);
        resolve(true);
      });
    });
    child.kill("SIGKILL");
    expect(exited).toBe(false);
    expect(out).toBe("");
  });
});

describe("DOCX builders", () => {
  it("makeDocx holds paragraphs, a table and a footnote mammoth can read, deterministically", async () => {
    const opts = {
      paragraphs: ["Minutes of the meeting about heliotrope.", "Second paragraph."],
      table: [
        ["Item", "Owner"],
        ["tablecellwombat", "Ana"],
      ],
      footnote: "footnotequokka source",
    };
    const bytes = await makeDocx(opts);
    const raw = (await mammoth.extractRawText({ buffer: bytes })).value;
    expect(raw).toContain("heliotrope");
    expect(raw).toContain("tablecellwombat");
    const html = (await mammoth.convertToHtml({ buffer: bytes })).value;
    expect(html).toContain("<table>");
    expect(html).toContain("footnotequokka");
    expect((await makeDocx(opts)).equals(bytes)).toBe(true);
  });

  it("makeZipBombDocx is small on disk and declares a document.xml over 1 GB", async () => {
    const bytes = await makeZipBombDocx();
    expect(bytes.length).toBeLessThan(2_000_000);
    const entries = await zipDirectory(bytes);
    expect(entries.get("word/document.xml")!.uncompressed).toBeGreaterThan(1_000_000_000);
    expect(entries.has("[Content_Types].xml")).toBe(true);
  });

  it("makeZipBombDocx's deflate stream and CRC are real (checked on a 3 MB one)", async () => {
    const bytes = await makeZipBombDocx({ inflatedBytes: 3_000_000 });
    const zip = await JSZip.loadAsync(bytes, { checkCRC32: true });
    const xml = await zip.file("word/document.xml")!.async("nodebuffer");
    expect(xml.length).toBeGreaterThanOrEqual(3_000_000);
    expect(xml.subarray(0, 5).toString()).toBe("<?xml");
    expect(xml.subarray(-13).toString()).toBe("</w:document>");
    expect(bytes.length).toBeLessThan(10_000);
  });

  it("combines CRC-32s exactly as computing them over the concatenation", () => {
    const a = Buffer.from('<?xml version="1.0"?><w:t>');
    for (const b of [Buffer.alloc(0), Buffer.from("x"), Buffer.alloc(3_000_017, 0x41)]) {
      expect(crc32Combine(crc32(a), crc32(b), b.length)).toBe(crc32(Buffer.concat([a, b])) >>> 0);
    }
  });

  it("makeEntityBombDocx nests ten levels of entities in document.xml", async () => {
    const zip = await JSZip.loadAsync(await makeEntityBombDocx());
    const xml = await zip.file("word/document.xml")!.async("string");
    expect(xml.match(/<!ENTITY lol\d/g)).toHaveLength(10);
    expect(xml).toContain("<w:t>&lol9;</w:t>");
    expect(xml).toContain("&lol8;&lol8;");
  });

  it("makeEncryptedDocx is an OLE compound file holding EncryptedPackage", () => {
    const bytes = makeEncryptedDocx();
    expect(bytes.subarray(0, 8).toString("hex")).toBe("d0cf11e0a1b11ae1");
    expect(bytes.length % 512).toBe(0);
    expect(bytes.includes(Buffer.from("EncryptedPackage", "utf16le"))).toBe(true);
    expect(bytes.includes(Buffer.from("PK\x03\x04", "latin1"))).toBe(false);
  });
});

describe("text and image builders", () => {
  it("makeCsv quotes fields and writes UTF-16LE with a BOM on request", () => {
    const rows = [
      ["name", "note"],
      ["Zoë", 'says "hi", then leaves'],
    ];
    const utf8 = makeCsv(rows);
    expect(utf8.toString("utf8")).toBe('name,note\r\nZoë,"says ""hi"", then leaves"\r\n');
    const utf16 = makeCsv(rows, { encoding: "utf16le" });
    expect([...utf16.subarray(0, 2)]).toEqual([0xff, 0xfe]);
    expect(utf16.subarray(2).toString("utf16le")).toBe(utf8.toString("utf8"));
  });

  it("makeHtml escapes text and adds script and style only when asked", () => {
    const plain = makeHtml({ title: "A & B", paragraphs: ["<not a tag>"] }).toString();
    expect(plain).toContain("<title>A &amp; B</title>");
    expect(plain).toContain("&lt;not a tag&gt;");
    expect(plain).not.toContain("<script");
    const scripted = makeHtml({ title: "x", paragraphs: ["y"], withScript: true }).toString();
    expect(scripted).toContain("<script>");
    expect(scripted).toContain("<style>");
  });

  it("makePng writes a valid PNG whose chunks carry correct CRCs", () => {
    const png = makePng({ width: 20, height: 10, seed: 7 });
    expect(png.subarray(0, 8).toString("hex")).toBe("89504e470d0a1a0a");
    let at = 8;
    const types: string[] = [];
    while (at < png.length) {
      const length = png.readUInt32BE(at);
      const typeAndData = png.subarray(at + 4, at + 8 + length);
      expect(png.readUInt32BE(at + 8 + length)).toBe(crc32(typeAndData) >>> 0);
      types.push(typeAndData.subarray(0, 4).toString());
      at += 12 + length;
    }
    expect(types).toEqual(["IHDR", "IDAT", "IEND"]);
    expect(png.readUInt32BE(16)).toBe(20);
    expect(png.readUInt32BE(20)).toBe(10);
    expect(makePng({ width: 20, height: 10, seed: 7 }).equals(png)).toBe(true);
    expect(makePng({ width: 20, height: 10, seed: 8 }).equals(png)).toBe(false);
  });
});
