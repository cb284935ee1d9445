// Issue 16, "attachments a sender controls": a message's parts past ATTACHMENT_MAX_PER_MESSAGE get
// a row (too_many_parts) and no download; inline images (Content-ID) and declared types no
// extractor reads are not downloaded either (a row, no checksum) unless OCR is on; a filename
// naming a readable type is always fetched.
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makePdf, makePng } from "@gmail-sync/emulator/generate";
import { skipBeforeDownload } from "../../src/attachments/declared-type.ts";
import { createAttachmentPipeline } from "../../src/attachments/pipeline.ts";
import type { AttachmentPipeline, AttachmentRef } from "../../src/attachments/types.ts";
import { loadConfig } from "../../src/config.ts";
import type { GmailMessage, GmailPort } from "../../src/gmail/port.ts";
import { prepareMessage } from "../../src/sync/prepare-message.ts";

let root: string;
let pipeline: AttachmentPipeline;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "gs-parts-cap-"));
  pipeline = await createAttachmentPipeline(
    loadConfig({
      ATTACHMENT_TEMP_DIR: path.join(root, "attachments"),
      EXTRACT_POOL_SIZE: "1",
      ATTACHMENT_MAX_PER_MESSAGE: "3",
    }),
    { log: pino({ level: "silent" }), findReusable: async () => null },
  );
});

afterAll(async () => {
  await pipeline?.close();
  await rm(root, { recursive: true, force: true });
});

function part(i: number, mimeType: string, filename: string, extra: Record<string, unknown> = {}) {
  return {
    partId: String(i),
    mimeType,
    filename,
    headers: [{ name: "Content-Type", value: mimeType }, ...((extra.headers as unknown[]) ?? [])],
    body: { size: 100, attachmentId: `att-${i}` },
  };
}

describe("what a sender controls", () => {
  it("declared types: inline images and unreadable types are left out, readable names always fetched", () => {
    const ref = (mimeType: string, filename: string | null, contentId: string | null = null) => ({
      mimeType,
      filename,
      contentId,
    });
    expect(skipBeforeDownload(ref("image/png", null, "logo@x"), false)?.reason).toBe("inline_image");
    expect(skipBeforeDownload(ref("image/jpeg", "photo.jpg"), false)?.reason).toBe("unsupported_type");
    expect(skipBeforeDownload(ref("video/mp4", "clip.mp4"), false)?.reason).toBe("unsupported_type");
    expect(skipBeforeDownload(ref("application/x-msdownload", "setup.exe"), false)?.reason).toBe("unsupported_type");
    // A readable name wins over the declared type; generic and readable types are fetched.
    expect(skipBeforeDownload(ref("image/jpeg", "report.pdf"), false)).toBeNull();
    expect(skipBeforeDownload(ref("application/octet-stream", "scan.png"), false)).toBeNull();
    expect(skipBeforeDownload(ref("application/pdf", "a.pdf"), false)).toBeNull();
    expect(skipBeforeDownload(ref("text/plain", null, "cid@x"), false)).toBeNull();
    // OCR on: the images it reads are fetched, inline ones too; other images are not.
    expect(skipBeforeDownload(ref("image/png", null, "logo@x"), true)).toBeNull();
    expect(skipBeforeDownload(ref("image/jpg", "scan.jpg"), true)).toBeNull();
    expect(skipBeforeDownload(ref("image/svg+xml", "logo.svg"), true)?.reason).toBe("unsupported_type");
  });

  it("a 5,000-part message: the first N parts are processed, the rest get too_many_parts rows, no download", async () => {
    const parts = Array.from({ length: 5000 }, (_, i) => part(i + 1, "text/plain", `note-${i + 1}.txt`));
    const msg = {
      id: "many",
      threadId: "many",
      payload: {
        partId: "",
        mimeType: "multipart/mixed",
        headers: [{ name: "Subject", value: "many" }],
        parts: [
          {
            partId: "0",
            mimeType: "text/plain",
            headers: [],
            body: { size: 4, data: Buffer.from("body").toString("base64url") },
          },
          ...parts,
        ],
      },
    } as GmailMessage;
    let downloads = 0;
    const gmail = {
      async getAttachment(_m: string, attachmentId: string) {
        downloads++;
        return Buffer.from(`text of ${attachmentId}`);
      },
    } as GmailPort;
    const started = performance.now();
    const prepared = await prepareMessage({ gmail, pipeline }, msg);
    if (!("record" in prepared)) throw new Error("not prepared");
    const rows = prepared.record.attachments;
    expect(rows).toHaveLength(5000);
    expect(downloads).toBe(3);
    expect(rows.slice(0, 3).map((r) => r.text)).toEqual(["text of att-1", "text of att-2", "text of att-3"]);
    const rest = rows.slice(3);
    expect(
      rest.every((r) => r.skippedReason === "too_many_parts" && r.checksum === null && r.route === "skipped"),
    ).toBe(true);
    expect(rest[0]?.metadata.reason).toMatch(/only 3 are fetched/);
    expect(performance.now() - started).toBeLessThan(10_000);
  }, 30_000);

  it("inline images and declared images are rows without checksum; fetched only when their bytes could be read", async () => {
    let fetched = 0;
    const fetch = (bytes: Buffer) => async () => {
      fetched++;
      return bytes;
    };
    const png = makePng();
    const ref = (
      partId: string,
      mimeType: string,
      filename: string | null,
      contentId: string | null,
    ): AttachmentRef => ({
      partId,
      filename,
      mimeType,
      charset: null,
      contentId,
      size: png.length,
      attachmentId: "a",
      inlineData: null,
    });
    const inline = await pipeline.process(ref("1", "image/png", null, "logo@example.com"), fetch(png));
    expect(inline).toMatchObject({ skippedReason: "inline_image", checksum: null, route: "skipped", text: null });
    const photo = await pipeline.process(ref("2", "image/jpeg", "holiday.jpg", null), fetch(png));
    expect(photo).toMatchObject({ skippedReason: "unsupported_type", checksum: null, route: "skipped" });
    expect(photo.metadata.reason).toMatch(/not downloaded/);
    expect(fetched).toBe(0);
    // A PDF that claims to be an image but is named .pdf: fetched, sniffed, extracted.
    const pdf = await makePdf({ pages: 1 });
    const misdeclared = await pipeline.process(
      { ...ref("3", "image/jpeg", "scan.pdf", null), size: pdf.length },
      fetch(pdf),
    );
    expect(misdeclared).toMatchObject({ skippedReason: null, detectedType: "application/pdf" });
    expect(misdeclared.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(fetched).toBe(1);
  });
});
