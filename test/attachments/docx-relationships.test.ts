// Issue 16: the DOCX pre-flight reads the package's relationships the way mammoth does, so a main
// document part moved outside word/ (with a decoy word/document.xml beside it) is counted against
// the inflation cap instead of slipping past it to mammoth.
import JSZip from "jszip";
import pino from "pino";
import { describe, expect, it } from "vitest";
import { makeDocx } from "@gmail-sync/emulator/generate";
import { createExtractPool } from "../../src/extract/pool.ts";
import { MIME } from "../../src/extract/sniff.ts";
import {
  parseRelationships,
  preflightZip,
  relationshipsPart,
  resolvePart,
  ZIP_LIMITS,
} from "../../src/extract/zip-preflight.ts";

const OFFICE_DOCUMENT = "http://schemas.openxmlformats.org/officeDocument/2006/relationships/officeDocument";

/** A real DOCX whose main part is moved to `mainPath` (relationships rewritten), optionally padded and with a decoy word/document.xml. */
async function movedMainDocx(opts: { mainPath: string; padding?: number; decoy?: boolean; strictNamespace?: boolean }) {
  const zip = await JSZip.loadAsync(
    await makeDocx({ paragraphs: ["Moved main part holds quetzalcoatl."], footnote: "Footnote kept" }),
  );
  let document = await zip.file("word/document.xml")!.async("string");
  if (opts.padding) {
    // Paragraphs of varied text: compresses ~5:1, so neither the ratio check nor the declared sizes refuse it.
    const filler = Array.from(
      { length: Math.ceil(opts.padding / 60) },
      (_, i) => `<w:p><w:r><w:t>filler ${i} ${(i * 2654435761) % 1000003} text</w:t></w:r></w:p>`,
    ).join("");
    document = document.replace("</w:body>", `${filler}</w:body>`);
  }
  const rels = await zip.file("word/_rels/document.xml.rels")!.async("string");
  zip.remove("word/document.xml");
  zip.remove("word/_rels/document.xml.rels");
  zip.file(opts.mainPath, document);
  // The main part's relationships, retargeted from its new folder back to word/'s parts.
  const dir = opts.mainPath.includes("/") ? opts.mainPath.slice(0, opts.mainPath.lastIndexOf("/")) : "";
  const up = dir === "" ? "word/" : `${"../".repeat(dir.split("/").length)}word/`;
  zip.file(
    relationshipsPart(opts.mainPath),
    rels.replace(/Target="(?!http)([^"]+)"/g, (_m, t: string) => `Target="${t.startsWith("/") ? t : up + t}"`),
  );
  if (opts.decoy)
    zip.file("word/document.xml", document.slice(0, 600).replace(/<w:body>[\s\S]*/, "<w:body/></w:document>"));
  const type = opts.strictNamespace
    ? "http://purl.oclc.org/ooxml/officeDocument/relationships/officeDocument"
    : OFFICE_DOCUMENT;
  zip.file(
    "_rels/.rels",
    `<?xml version="1.0" encoding="UTF-8" standalone="yes"?>\n<Relationships xmlns="http://schemas.openxmlformats.org/package/2006/relationships"><Relationship Id="rId1" Type='${type}' Target="/${opts.mainPath}"/></Relationships>`,
  );
  return zip.generateAsync({ type: "nodebuffer", compression: "DEFLATE" });
}

describe("DOCX pre-flight follows the relationships to the main document part", () => {
  it("parses relationships and resolves targets the way mammoth joins paths", () => {
    const rels = parseRelationships(
      `<Relationships><Relationship Id="a" Target="evil/doc.xml" Type="${OFFICE_DOCUMENT}"/>` +
        `<pr:Relationship Type='x/hyperlink' Target='https://example.com/?a=1&amp;b=2' TargetMode='External'/></Relationships>`,
    );
    expect(rels).toEqual([
      { type: OFFICE_DOCUMENT, target: "evil/doc.xml", external: false },
      { type: "x/hyperlink", target: "https://example.com/?a=1&b=2", external: true },
    ]);
    expect(resolvePart("", "/evil/doc.xml")).toBe("evil/doc.xml");
    expect(resolvePart("deep/er", "../../word/styles.xml")).toBe("word/styles.xml");
    expect(relationshipsPart("evil/doc.xml")).toBe("evil/_rels/doc.xml.rels");
    expect(relationshipsPart("doc.xml")).toBe("_rels/doc.xml.rels");
  });

  it("counts a main part moved outside word/ (with a decoy word/document.xml) against the cap", async () => {
    const docx = await movedMainDocx({ mainPath: "evil/payload.xml", padding: 400_000, decoy: true });
    const capped = await preflightZip(docx, { ...ZIP_LIMITS, maxXmlBytes: 200_000 });
    expect(capped).toMatchObject({ ok: false, reason: "too_complex", detectedType: MIME.docx });
    if (!capped.ok) expect(capped.detail).toMatch(/inflates past 200000 bytes/);
    const roomy = await preflightZip(docx, { ...ZIP_LIMITS, maxXmlBytes: 5_000_000 });
    expect(roomy).toMatchObject({ ok: true, mainPart: "evil/payload.xml" });
    if (roomy.ok) expect(roomy.xmlBytes).toBeGreaterThan(400_000);
  });

  it("finds a main part named by a strict-namespace relationship at the package root", async () => {
    const docx = await movedMainDocx({ mainPath: "main.xml", strictNamespace: true });
    expect(await preflightZip(docx)).toMatchObject({ ok: true, detectedType: MIME.docx, mainPart: "main.xml" });
  });

  it("mammoth reads the moved part, in a child, after the pre-flight counted it", async () => {
    const pool = createExtractPool({
      size: 1,
      rssLimitMb: 512,
      timeoutMs: 30_000,
      recycleAfter: 10,
      log: pino({ level: "silent" }),
    });
    try {
      const docx = await movedMainDocx({ mainPath: "evil/payload.xml", decoy: true });
      const limits = { maxPages: 500, maxTextBytes: 1024 * 1024, maxXmlBytes: 9 * 1024 * 1024 };
      const request = (maxXmlBytes: number) => ({
        kind: "zip" as const,
        source: { type: "bytes" as const, bytes: docx },
        declaredType: MIME.docx,
        charset: null,
        detectedType: MIME.zip,
        limits: { ...limits, maxXmlBytes },
      });
      const ok = await pool.run(request(limits.maxXmlBytes));
      expect(ok).toMatchObject({ skippedReason: null, detectedType: MIME.docx });
      expect(ok.text).toContain("quetzalcoatl");
      // The same file under a cap below the moved part's size: refused before mammoth runs.
      const refused = await pool.run(request(1500));
      expect(refused).toMatchObject({ skippedReason: "too_complex", text: null });
    } finally {
      await pool.close();
    }
  }, 30_000);
});
