// `gmail-sync extract FILE... [--json]`: runs local files through the same attachment pipeline
// the worker uses (route plan, checksum, isolated extraction, limits) and prints what would be
// stored. Exit 0 even when files are skipped; 1 when a file cannot be read at all.
import { readFile, stat } from "node:fs/promises";
import path from "node:path";
import type { Command } from "commander";
import { createExtractionApp } from "../app.ts";
import type { AttachmentResult } from "../attachments/types.ts";
import { loadConfig } from "../config.ts";
import { stderrLogger } from "./cli-app.ts";

// What a mail client would declare for a file with this extension.
const BY_EXTENSION: Record<string, string> = {
  ".pdf": "application/pdf",
  ".docx": "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  ".doc": "application/msword",
  ".xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
  ".pptx": "application/vnd.openxmlformats-officedocument.presentationml.presentation",
  ".txt": "text/plain",
  ".text": "text/plain",
  ".log": "text/plain",
  ".csv": "text/csv",
  ".tsv": "text/tab-separated-values",
  ".md": "text/markdown",
  ".ics": "text/calendar",
  ".html": "text/html",
  ".htm": "text/html",
  ".eml": "message/rfc822",
  ".png": "image/png",
  ".jpg": "image/jpeg",
  ".jpeg": "image/jpeg",
  ".gif": "image/gif",
  ".zip": "application/zip",
};

export function declaredTypeFor(file: string): string {
  return BY_EXTENSION[path.extname(file).toLowerCase()] ?? "application/octet-stream";
}

export interface ExtractLine {
  file: string;
  size: number;
  checksum: string | null;
  detected_type: string | null;
  route: string;
  skipped_reason: string | null;
  text: string | null;
  text_truncated: boolean;
  metadata: Record<string, unknown>;
}

function line(file: string, r: AttachmentResult): ExtractLine {
  return {
    file,
    size: r.size,
    checksum: r.checksum,
    detected_type: r.detectedType,
    route: r.route,
    skipped_reason: r.skippedReason,
    text: r.text,
    text_truncated: r.textTruncated,
    metadata: r.metadata,
  };
}

function summary(l: ExtractLine): string {
  const outcome = l.skipped_reason
    ? `skipped: ${l.skipped_reason}`
    : `${l.metadata.words ?? 0} words${l.text_truncated ? " (truncated)" : ""}`;
  const head = `${l.file}  ${l.size} B  ${l.detected_type ?? "?"}  ${l.route}  ${outcome}`;
  const preview = l.text ? `\n    ${l.text.slice(0, 200).replace(/\s+/g, " ")}` : "";
  return head + preview;
}

export function registerExtractCommand(program: Command): void {
  program
    .command("extract")
    .description("run local files through the attachment pipeline and print what the worker would store")
    .argument("<files...>", "files to extract")
    .option(
      "--json",
      "print one JSON object per file and line: {file, size, checksum, detected_type, route, skipped_reason, text, metadata}",
    )
    .action(async (files: string[], opts: { json?: boolean }) => {
      const config = loadConfig();
      // Logs go to stderr: stdout carries only results.
      const app = await createExtractionApp(config, { log: stderrLogger(config.LOG_LEVEL) });
      const { pipeline } = app;
      const failures: string[] = [];
      const results: Array<ExtractLine | null | undefined> = new Array(files.length);
      let printed = 0;
      const flush = () => {
        while (printed < files.length && results[printed] !== undefined) {
          const l = results[printed++];
          if (l) process.stdout.write(`${opts.json ? JSON.stringify(l) : summary(l)}\n`);
        }
      };
      // Bounded concurrency: enough to keep every extraction child busy, few bytes held at once.
      let next = 0;
      const worker = async () => {
        while (next < files.length) {
          const i = next++;
          const file = files[i] as string;
          try {
            const st = await stat(file);
            if (!st.isFile()) throw new Error("not a regular file");
            const result = await pipeline.process(
              {
                partId: String(i + 1),
                filename: path.basename(file),
                mimeType: declaredTypeFor(file),
                charset: null,
                contentId: null,
                size: st.size,
                attachmentId: null,
                inlineData: null,
              },
              () => readFile(file),
            );
            results[i] = line(file, result);
          } catch (err) {
            failures.push(`${file}: ${(err as Error).message}`);
            results[i] = null;
          }
          flush();
        }
      };
      try {
        await Promise.all(Array.from({ length: Math.min(files.length, config.EXTRACT_POOL_SIZE * 2) }, worker));
      } finally {
        await app.close();
      }
      if (failures.length > 0) throw new Error(`could not read ${failures.length} file(s): ${failures.join("; ")}`);
    });
}
