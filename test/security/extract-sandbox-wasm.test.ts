// Issue 16: the WebAssembly parsers (PDFium, tesseract) run inside the same sandbox as every
// extraction child (child-spawn.ts: scrubbed environment, --permission with a read allow-list, no
// code generation from strings, sockets refused by no-network.ts). They need no extra permission
// flag, and OCR succeeds there with every socket refused: the core WebAssembly and the language
// data come from node_modules, nothing is downloaded.
import { readFileSync } from "node:fs";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makePdf } from "@gmail-sync/emulator/generate";
import { childSpawnSpec } from "../../src/extract/child-spawn.ts";
import { ocrLanguageDirs } from "../../src/extract/ocr-languages.ts";
import { createExtractPool, type ExtractPool } from "../../src/extract/pool.ts";
import type { ExtractRequest } from "../../src/extract/protocol.ts";
import { encodePng, renderTextPage } from "../attachments/fixtures/text-images.ts";

const limits = { maxPages: 500, maxTextBytes: 1024 * 1024, maxXmlBytes: 1024 * 1024 };
const ocr = { languages: ["eng"], maxPages: 2, dpi: 300, maxPixels: 40_000_000 };
let pool: ExtractPool;

beforeAll(() => {
  pool = createExtractPool({
    size: 1,
    rssLimitMb: 768,
    timeoutMs: 60_000,
    recycleAfter: 100,
    readDirs: ocrLanguageDirs(["eng"]),
    log: pino({ level: "silent" }),
  });
});
afterAll(async () => {
  await pool?.close();
});

function request(kind: ExtractRequest["kind"], bytes: Uint8Array, detectedType: string): ExtractRequest {
  return {
    kind,
    source: { type: "bytes", bytes },
    declaredType: detectedType,
    charset: null,
    detectedType,
    limits,
    ocr,
  };
}

describe("WebAssembly parsers in the extraction sandbox", () => {
  it("the children start with the sandbox flags and no permission for WASI, workers or the network", () => {
    const spec = childSpawnSpec({ rssLimitMb: 512, readDirs: ocrLanguageDirs(["eng"]) });
    expect(spec.execArgv).toContain("--permission");
    expect(spec.execArgv).toContain("--disallow-code-generation-from-strings");
    for (const flag of [
      "--allow-wasi",
      "--allow-worker",
      "--allow-child-process",
      "--allow-addons",
      "--allow-fs-write",
    ])
      expect(
        spec.execArgv.some((a) => a.startsWith(flag)),
        flag,
      ).toBe(false);
    expect(spec.execArgv.some((a) => a.startsWith("--allow-fs-read=") && a.includes("@tesseract.js-data"))).toBe(true);
  });

  it("PDFium compiles and extracts inside the sandbox", async () => {
    const r = await pool.run(request("pdf", await makePdf({ pages: 2 }), "application/pdf"));
    expect(r).toMatchObject({ skippedReason: null, extractor: "pdfium" });
    expect(r.text).toContain("marmalade2.");
  }, 30_000);

  it("OCR reads an image with every socket refused: nothing is fetched at run time", async () => {
    const png = encodePng(await renderTextPage(["Offline recognition of the lighthouse ledger"], 200));
    const r = await pool.run(request("ocr-image", png, "image/png"));
    expect(r).toMatchObject({ skippedReason: null, extractor: "tesseract" });
    expect(r.text?.toLowerCase()).toContain("lighthouse ledger");
  }, 60_000);

  it("the OCR adapter has no network path and the language data is the installed package's", () => {
    const source = readFileSync(new URL("../../src/extract/ocr.ts", import.meta.url), "utf8");
    expect(source).toMatch(/fetch: refuseNetwork/);
    expect(source).toMatch(/writeCache: refuseNetwork/);
    expect(ocrLanguageDirs(["eng"])[0]).toMatch(/node_modules\/@tesseract\.js-data\/eng\/4\.0\.0_best_int$/);
    expect(() => ocrLanguageDirs(["xx_not_installed"])).toThrow(/not installed/);
  });
});
