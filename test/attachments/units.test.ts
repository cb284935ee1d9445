// Pure pieces of the pipeline: output hygiene, magic-byte sniffing, charset decoding, route plan.
import { describe, expect, it } from "vitest";
import { planRoute, sha256Hex } from "../../src/attachments/pipeline.ts";
import { decodeText } from "../../src/extract/decode.ts";
import { capUtf8, cleanText, countCharacters, countWords } from "../../src/extract/hygiene.ts";
import { MIME, sniff } from "../../src/extract/sniff.ts";
import { docxXmlCap, preflightZip, ZIP_LIMITS } from "../../src/extract/zip-preflight.ts";
import { makeCsv, makeDocx, makeEncryptedDocx, makePdf, makePng } from "@gmail-sync/emulator/generate";

describe("cleanText", () => {
  it("removes NUL, controls and lone surrogates and normalizes whitespace", () => {
    const raw = "a\u0000b\u0001c \t\u00A0 d\r\n\r\n\r\n\r\ne\uD800f\uDC00g 😀\u000Bh";
    const { text, truncated } = cleanText(raw, 1000);
    expect(text).toBe("abc d\n\nefg 😀\nh");
    expect(truncated).toBe(false);
  });

  it("caps UTF-8 bytes without splitting a character", () => {
    const { text, truncated } = capUtf8("ééééé", 5); // 2 bytes each
    expect(truncated).toBe(true);
    expect(text).toBe("éé");
    expect(Buffer.byteLength(capUtf8("😀😀😀", 7).text)).toBe(4);
  });

  it("counts words and code points", () => {
    expect(countWords(" one two\nthree ")).toBe(3);
    expect(countCharacters("a😀b")).toBe(3);
  });

  it("matches the plain regex definitions on random text full of edge cases", () => {
    // The reference: the obvious (slower) regex forms the fast versions must agree with.
    const reference = (raw: string) =>
      raw
        .replace(/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g, "")
        .replace(/\r\n?|\f|\v|\u2028|\u2029/g, "\n")
        .replace(/[\u0000-\u0008\u000B\u000E-\u001F\u007F-\u009F]/g, "")
        .replace(/[\t \u00A0\u1680\u2000-\u200A\u202F\u205F\u3000]+/g, " ")
        .replace(/ *\n */g, "\n")
        .replace(/\n{3,}/g, "\n\n")
        .trim();
    const alphabet = [
      "a",
      "b",
      " ",
      " ",
      "\t",
      "\n",
      "\r",
      "\u00A0",
      "\u3000",
      "\u2028",
      "\f",
      "\u0000",
      "\uD83D",
      "\uDE00",
      "😀",
      "\uFEFF",
      "\u200B",
      "é",
    ];
    let seed = 7;
    const next = () => (seed = (Math.imul(seed, 1664525) + 1013904223) >>> 0) / 2 ** 32;
    for (let i = 0; i < 3000; i++) {
      const raw = Array.from(
        { length: Math.floor(next() * 40) },
        () => alphabet[Math.floor(next() * alphabet.length)],
      ).join("");
      expect(cleanText(raw, 1 << 20).text, JSON.stringify(raw)).toBe(reference(raw));
      expect(countWords(raw), JSON.stringify(raw)).toBe([...raw.matchAll(/\S+/g)].length);
      expect(countCharacters(raw), JSON.stringify(raw)).toBe(
        raw.length - [...raw.matchAll(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g)].length,
      );
    }
  });
});

describe("sniff", () => {
  it("trusts the bytes over the declared type", async () => {
    const pdf = await makePdf({ pages: 1 });
    expect(sniff(pdf, "application/octet-stream")).toEqual({ kind: "pdf", detectedType: MIME.pdf });
    const exe = Buffer.concat([Buffer.from("MZ"), Buffer.alloc(100, 7)]);
    expect(sniff(exe, "application/pdf", "invoice.pdf")).toMatchObject({
      kind: "skip",
      detectedType: "application/x-msdownload",
      reason: "unsupported_type",
    });
    expect(sniff(makePng(), "application/pdf")).toMatchObject({ kind: "skip", detectedType: "image/png" });
    expect(sniff(await makeDocx({ paragraphs: ["x"] }), "application/octet-stream")).toMatchObject({ kind: "zip" });
  });

  it("classifies CFB containers without parsing them", () => {
    expect(sniff(makeEncryptedDocx(), MIME.docx)).toMatchObject({
      kind: "skip",
      detectedType: MIME.encryptedOoxml,
      reason: "encrypted",
    });
    // A legacy .doc: CFB header plus a directory entry named WordDocument (UTF-16LE).
    const doc = Buffer.concat([
      Buffer.from("d0cf11e0a1b11ae1", "hex"),
      Buffer.alloc(500),
      Buffer.from("WordDocument", "utf16le"),
    ]);
    expect(sniff(doc, MIME.doc)).toMatchObject({ kind: "skip", detectedType: MIME.doc, reason: "unsupported_type" });
  });

  it("routes text-like declared types, and sniffs generic ones", () => {
    expect(sniff(makeCsv([["a", "b"]], { encoding: "utf16le" }), "text/csv")).toEqual({
      kind: "text",
      detectedType: "text/csv",
    });
    expect(sniff(Buffer.from("<!DOCTYPE html><p>x"), "application/octet-stream")).toEqual({
      kind: "html",
      detectedType: "text/html",
    });
    expect(
      sniff(Buffer.from("root:x:0:0:root:/root:/bin/bash\n"), "application/octet-stream", "../../etc/passwd"),
    ).toEqual({ kind: "text", detectedType: "text/plain" });
    expect(sniff(Buffer.from([0, 1, 2, 3, 200, 201]), "application/octet-stream")).toMatchObject({
      kind: "skip",
      reason: "unsupported_type",
    });
    expect(sniff(Buffer.from("From: a@b\r\n\r\nhi"), "message/rfc822")).toEqual({
      kind: "rfc822",
      detectedType: "message/rfc822",
    });
  });
});

describe("decodeText", () => {
  it("uses the BOM, then the declared charset, then UTF-8, then detection; never keeps the BOM", () => {
    expect(decodeText(makeCsv([["Zoë", "Zürich"]], { encoding: "utf16le" }), null).text).toBe("Zoë,Zürich\r\n");
    expect(decodeText(Buffer.from("\uFEFFhello", "utf8"), "iso-8859-1").text).toBe("hello");
    expect(decodeText(Buffer.from([0x5a, 0xfc, 0x72, 0x69, 0x63, 0x68]), "iso-8859-1")).toMatchObject({
      text: "Zürich",
      source: "declared",
    });
    expect(decodeText(Buffer.from("Zürich", "utf8"), null)).toMatchObject({ text: "Zürich", source: "utf8" });
    expect(decodeText(Buffer.from("Zürich", "utf8"), "us-ascii").text).toBe("Zürich");
    expect(
      decodeText(Buffer.from('<meta charset="windows-1252"><p>caf\xe9', "latin1"), null, { html: true }).text,
    ).toContain("café");
  });
});

describe("planRoute", () => {
  const config = { ATTACHMENT_MEMORY_MAX_BYTES: 10, ATTACHMENT_TEMP_FILE_MAX_BYTES: 50 };
  it("plans memory, temp file or skip from the declared size", () => {
    expect(planRoute(0, config)).toEqual({ route: "skipped", reason: "empty" });
    expect(planRoute(10, config)).toEqual({ route: "memory" });
    expect(planRoute(11, config)).toEqual({ route: "temp_file" });
    expect(planRoute(50, config)).toEqual({ route: "temp_file" });
    expect(planRoute(51, config)).toEqual({ route: "skipped", reason: "too_large" });
  });
  it("hashes with SHA-256 as 64 lower-case hex", () => {
    expect(sha256Hex(Buffer.alloc(0))).toBe("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  });
});

describe("DOCX pre-flight", () => {
  it("derives the word-XML cap from the child's RSS cap, between 1 and 20 MB", () => {
    expect(docxXmlCap(512)).toBeGreaterThan(8 * 1024 * 1024);
    expect(docxXmlCap(512)).toBeLessThan(10 * 1024 * 1024);
    expect(docxXmlCap(4096)).toBe(20 * 1024 * 1024);
    expect(docxXmlCap(32)).toBe(1024 * 1024);
  });

  it("counts inflated word XML and stops at the cap, whatever the directory declares", async () => {
    const docx = await makeDocx({
      paragraphs: Array.from({ length: 50 }, (_, i) => `Paragraph ${i} with some words in it.`),
    });
    const ok = await preflightZip(docx);
    expect(ok).toMatchObject({ ok: true, detectedType: MIME.docx });
    const refused = await preflightZip(docx, { ...ZIP_LIMITS, maxXmlBytes: 2000 });
    expect(refused).toMatchObject({ ok: false, reason: "too_complex", detectedType: MIME.docx });
    expect(await preflightZip(docx.subarray(0, docx.length - 30))).toMatchObject({ ok: false, reason: "corrupt" });
  });
});

describe("PDF extractor (in process)", () => {
  it("stops reading pages once the text cap is full, and says so", async () => {
    const { extractPdf } = await import("../../src/extract/pdf.ts");
    const pdf = await makePdf({ pages: 120 });
    const full = await extractPdf(new Uint8Array(pdf), { maxPages: 500, maxTextBytes: 1024 * 1024, maxXmlBytes: 1 });
    expect(full).toMatchObject({ textTruncated: false, details: { pages: 120, pages_total: 120 } });
    expect(full.text).toContain("marmalade120.");
    const capped = await extractPdf(new Uint8Array(pdf), { maxPages: 500, maxTextBytes: 4000, maxXmlBytes: 1 });
    expect(capped).toMatchObject({
      textTruncated: true,
      details: { pages: 50, pages_total: 120, text_limit_reached: true },
    });
    expect(Buffer.byteLength(capped.text ?? "")).toBeLessThanOrEqual(4000);
    const paged = await extractPdf(new Uint8Array(pdf), { maxPages: 70, maxTextBytes: 1024 * 1024, maxXmlBytes: 1 });
    expect(paged).toMatchObject({
      textTruncated: true,
      details: { pages: 70, pages_total: 120, page_limit_reached: true },
    });
    expect(paged.text).toContain("marmalade70.");
    expect(paged.text).not.toContain("marmalade71.");
  }, 30_000);
});
