// Entry point of an extraction child process (forked by pool.ts under the same Node). It handles
// one request at a time and answers every request: a parser that throws becomes a skip. What it
// cannot answer (hang, memory blow-up, crash) the parent handles by killing and replacing it.
import { readFile } from "node:fs/promises";
import { countCharacters, countWords } from "./hygiene.ts";
import type { ChildMessage, ExtractOutcome, ExtractRequest, ParentMessage } from "./protocol.ts";

// Each extractor is imported on first use: pdf.js alone costs ~200 ms and ~80 MB to load.
const extractors = {
  pdfium: () => import("./pdfium.ts"),
  pdf: () => import("./pdf.ts"),
  ocr: () => import("./ocr.ts"),
  zip: () => import("./docx.ts"),
  text: () => import("./text.ts"),
  html: () => import("./html.ts"),
  rfc822: () => import("./rfc822.ts"),
};

let current: { id: number; request: ExtractRequest } | null = null;

function send(message: ChildMessage): void {
  process.send?.(message);
}

function failure(request: ExtractRequest, err: unknown): ExtractOutcome {
  return {
    text: null,
    textTruncated: false,
    detectedType: request.detectedType,
    extractor: request.kind,
    extractorVersion: null,
    skippedReason: "corrupt",
    details: { reason: `${(err as Error)?.name ?? "Error"}: ${String((err as Error)?.message ?? err).slice(0, 200)}` },
  };
}

async function run(request: ExtractRequest): Promise<ExtractOutcome> {
  const bytes =
    request.source.type === "bytes" ? request.source.bytes : new Uint8Array(await readFile(request.source.path));
  switch (request.kind) {
    case "pdf":
      if (request.pdfEngine === "pdf-parse") return (await extractors.pdf()).extractPdf(bytes, request.limits);
      return (await extractors.pdfium()).extractPdfium(bytes, request.limits);
    case "ocr-image":
    case "ocr-pdf": {
      if (!request.ocr) throw new Error("OCR request without OCR options");
      const ocr = await extractors.ocr();
      return request.kind === "ocr-image"
        ? ocr.extractImage(bytes, request.detectedType, request.limits, request.ocr)
        : ocr.extractPdfOcr(bytes, request.limits, request.ocr);
    }
    case "zip":
      return (await extractors.zip()).extractZip(bytes, request.limits);
    case "text":
      return (await extractors.text()).extractText(bytes, request.charset, request.detectedType, request.limits);
    case "html":
      return (await extractors.html()).extractHtml(bytes, request.charset, request.limits, request.htmlStyle);
    case "rfc822":
      return (await extractors.rfc822()).extractRfc822(bytes, request.limits);
  }
}

process.on("message", (message: ParentMessage) => {
  if (message.type === "exit") {
    // Recycled or shutting down: nothing to flush, and a parser's leftover timer must not keep us.
    process.exit(0);
  }
  const { id, request } = message;
  current = { id, request };
  let threw = false;
  run(request)
    .catch((err: unknown) => {
      threw = true;
      return failure(request, err);
    })
    .then((outcome) => {
      // Counted here, where the text was made, so the parent does not walk megabytes of text again.
      if (outcome.text !== null) {
        outcome.details.words ??= countWords(outcome.text);
        outcome.details.characters ??= countCharacters(outcome.text);
      }
      current = null;
      // A WebAssembly parser that threw (an abort, an allocation failure) may have left its memory
      // in any state: the parent replaces this child rather than hand it another file.
      const wasm = (request.kind === "pdf" && request.pdfEngine !== "pdf-parse") || request.kind.startsWith("ocr");
      const recycle = threw && wasm;
      send({ type: "result", id, outcome, rssMb: process.memoryUsage.rss() / (1024 * 1024), recycle });
    });
});

// A parser's stray async error (pdf.js fake worker, a stream callback) lands here: answer the job
// in flight as corrupt, then exit so the parent replaces a process whose state is unknown.
function fatal(err: unknown): void {
  if (current !== null) {
    const { id, request } = current;
    current = null;
    send({ type: "result", id, outcome: failure(request, err) });
  }
  process.exitCode = 1;
  setImmediate(() => process.exit(1));
}
process.on("uncaughtException", fatal);
process.on("unhandledRejection", fatal);
// The parent went away: nothing left to answer.
process.on("disconnect", () => process.exit(0));

send({ type: "ready", pid: process.pid });
