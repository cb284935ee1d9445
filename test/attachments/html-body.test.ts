// Issue 16, "nothing heavy in the worker's process": HTML mail bodies. A 4 M-character body used to
// block the worker ~0.9 s and add ~316 MB (html-to-text's DOM, in the worker); 20,000 nested
// <div>s threw and kept the message out of the archive. Now short bodies convert here (depth
// capped, a linear tag strip if html-to-text still throws), long ones in an extraction child with
// the input capped, and both messages end stored.
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { monitorEventLoopDelay } from "node:perf_hooks";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createAttachmentPipeline } from "../../src/attachments/pipeline.ts";
import type { AttachmentPipeline } from "../../src/attachments/types.ts";
import { loadConfig } from "../../src/config.ts";
import { upsertMessages } from "../../src/db/messages.ts";
import { HTML_BODY_INLINE_MAX_CHARS, stripTags } from "../../src/extract/html.ts";
import { bodyHtmlToText, parseGmailMessage } from "../../src/gmail/parse-message.ts";
import type { GmailMessage, GmailPort } from "../../src/gmail/port.ts";
import { prepareMessage } from "../../src/sync/prepare-message.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";

let root: string;
let pipeline: AttachmentPipeline;
let t: TestDatabase;
let accountId: number;

const MB = 1024 * 1024;

function htmlMessage(id: string, html: string): GmailMessage {
  return {
    id,
    threadId: id,
    historyId: "100",
    internalDate: String(Date.now()),
    labelIds: ["INBOX"],
    payload: {
      partId: "",
      mimeType: "text/html",
      filename: "",
      headers: [
        { name: "Subject", value: `html ${id}` },
        { name: "Content-Type", value: "text/html; charset=UTF-8" },
      ],
      body: { size: Buffer.byteLength(html), data: Buffer.from(html).toString("base64url") },
    },
  } as GmailMessage;
}

/** A newsletter of about `chars` characters: paragraphs, links, a table and a script. */
function newsletter(chars: number): string {
  const parts = ["<html><head><style>.x{color:red}</style><script>var scriptpayload=1</script></head><body>"];
  let n = parts[0]!.length;
  for (let i = 0; n < chars; i++) {
    const p = `<p>Paragraph ${i} of the long newsletter, <a href="https://example.com/${i}">link ${i}</a>, <b>bold</b> words.</p><table><tr><td>cell ${i}</td></tr></table>\n`;
    parts.push(p);
    n += p.length;
  }
  parts.push("<p>final words of the body</p></body></html>");
  return parts.join("");
}

function nestedDivs(depth: number): string {
  return `<html><body>${"<div>".repeat(depth)}deepest text here${"</div>".repeat(depth)}<p>after the nesting</p></body></html>`;
}

const noGmail = {} as GmailPort;

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "gs-html-body-"));
  pipeline = await createAttachmentPipeline(
    loadConfig({ ATTACHMENT_TEMP_DIR: path.join(root, "attachments"), EXTRACT_POOL_SIZE: "1" }),
    { log: pino({ level: "silent" }), findReusable: async () => null },
  );
  t = await createTestDatabase();
  accountId = (
    await t.db.insertInto("accounts").values({ email: "html@example.com" }).returning("id").executeTakeFirstOrThrow()
  ).id;
}, 30_000);

afterAll(async () => {
  await pipeline?.close();
  await t?.drop();
  await rm(root, { recursive: true, force: true });
});

async function storedBody(gmailId: string): Promise<string | null> {
  const row = await t.db
    .selectFrom("messages")
    .select("body_text")
    .where("account_id", "=", accountId)
    .where("gmail_id", "=", gmailId)
    .executeTakeFirstOrThrow();
  return row.body_text;
}

describe("HTML mail bodies", () => {
  it("the parser converts short bodies itself and hands long ones over unconverted", () => {
    const short = parseGmailMessage(htmlMessage("s1", "<p>Hello <b>HTML</b> <a href='https://x.test/'>link</a></p>"));
    expect(short.bodyText).toBe("Hello HTML link [https://x.test/]");
    expect(short.bodyHtml).toBeUndefined();
    const longHtml = newsletter(HTML_BODY_INLINE_MAX_CHARS + 1000);
    const long = parseGmailMessage(htmlMessage("l1", longHtml));
    expect(long.bodyText).toBeNull();
    expect(long.bodyHtml).toBe(longHtml);
  });

  it("deep nesting below the inline threshold neither throws nor loses the text after it", () => {
    const html = nestedDivs(10_000);
    expect(html.length).toBeLessThanOrEqual(HTML_BODY_INLINE_MAX_CHARS);
    const text = bodyHtmlToText(html);
    expect(text).toContain("after the nesting");
  });

  it("stripTags is linear and reads what html-to-text would", () => {
    expect(
      stripTags(
        "<p>a&amp;b &#233;t&#xE9;</p><script>evil()</script><style>x{}</style><!-- c --><div>next</div><SCRIPT>more</SCRIPT>z",
      ),
    ).toBe("\na&b été\n\nnext\nz");
    // Unclosed script tags by the thousand: indexOf-based, so this is milliseconds, not minutes.
    const hostile = "<script>".repeat(200_000);
    const started = performance.now();
    expect(stripTags(hostile)).toBe("");
    expect(performance.now() - started).toBeLessThan(2000);
  });

  it("a 4 M-character body: converted in a child, the worker stays responsive and small, the message is stored", async () => {
    const html = newsletter(4 * MB);
    const msg = htmlMessage("big-html", html);
    // Warm the child first (html-to-text loaded) so the measurement is of this body alone.
    await pipeline.htmlBodyText(newsletter(HTML_BODY_INLINE_MAX_CHARS + 10));
    (globalThis as { gc?: () => void }).gc?.();
    const rssBefore = process.memoryUsage.rss();
    let rssPeak = rssBefore;
    const sampler = setInterval(() => {
      rssPeak = Math.max(rssPeak, process.memoryUsage.rss());
    }, 5);
    const delay = monitorEventLoopDelay({ resolution: 10 });
    delay.enable();
    const prepared = await prepareMessage({ gmail: noGmail, pipeline }, msg);
    delay.disable();
    clearInterval(sampler);
    if (!("record" in prepared)) throw new Error(`not prepared: ${JSON.stringify(prepared.failure)}`);
    const body = prepared.record.bodyText ?? "";
    expect(body).toContain("Paragraph 1 of the long newsletter");
    expect(body).not.toContain("scriptpayload");
    expect(Buffer.byteLength(body)).toBeLessThanOrEqual(MB);
    // The old in-process conversion blocked ~0.9 s and added ~316 MB.
    expect(delay.max / 1e6, "longest event-loop stall (ms)").toBeLessThan(500);
    expect((rssPeak - rssBefore) / MB, "worker RSS growth (MB)").toBeLessThan(120);

    await upsertMessages(t.db, accountId, [prepared.record]);
    expect(await storedBody("big-html")).toContain("Paragraph 1 of the long newsletter");
  }, 60_000);

  it("20,000 nested <div>s: the message is stored with the text around the nesting", async () => {
    const msg = htmlMessage("nested-divs", nestedDivs(20_000));
    const prepared = await prepareMessage({ gmail: noGmail, pipeline }, msg);
    if (!("record" in prepared)) throw new Error(`not prepared: ${JSON.stringify(prepared.failure)}`);
    expect(prepared.record.bodyText).toContain("after the nesting");
    await upsertMessages(t.db, accountId, [prepared.record]);
    expect(await storedBody("nested-divs")).toContain("after the nesting");
  }, 60_000);
});
