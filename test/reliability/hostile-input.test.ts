// Hostile input through the emulator (raw MIME delivered with the control API, read back by the
// worker through the real Gmail client): malformed headers, RFC 2047 words in unknown charsets,
// invalid base64 bodies, 5,000 parts, 200 levels of nested multiparts, filenames with path
// separators, NUL and control characters, a 0-byte and a 60 MB attachment, a zip-bomb DOCX, a PDF
// that makes the parser loop, NUL bytes in bodies. Each message ends stored (every attachment row
// with text or a clear skipped_reason) or parked as a dead letter with a reason; the worker — a
// real `gmail-sync worker` child process — never crashes; the 60 MB part is never downloaded.
import { setTimeout as sleep } from "node:timers/promises";
import { type ChildProcess, spawn } from "node:child_process";
import { readdir } from "node:fs/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { makeLoopingPdf, makeZipBombDocx } from "@gmail-sync/emulator/generate";
import { cliPath } from "../helpers/cli.ts";
import {
  connectTestAccount,
  expectDbEqualsMailbox,
  type Harness,
  queuesIdle,
  startHarness,
  syncState,
  syncToMailbox,
  waitFor,
} from "../sync/harness.ts";

const EMAIL = "hostile@example.com";
let h: Harness;
let worker: ChildProcess;
let workerOutput = "";

beforeAll(async () => {
  h = await startHarness({
    emulator: { accounts: [EMAIL], messages: 0, seed: 66 },
    env: { INCLUDE_SPAM_TRASH: "true", EXTRACT_TIMEOUT_MS: "1000", EXTRACT_POOL_SIZE: "1" },
  });
  worker = spawn(process.execPath, [cliPath, "worker", "--concurrency", "2"], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...h.env, LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  worker.stdout?.on("data", (d) => (workerOutput += d));
  worker.stderr?.on("data", (d) => (workerOutput += d));
});
afterAll(async () => {
  if (worker && worker.exitCode === null && worker.signalCode === null) {
    const exited = new Promise((r) => worker.once("exit", r));
    worker.kill("SIGTERM");
    await Promise.race([exited, sleep(10_000, undefined, { ref: false })]);
    if (worker.exitCode === null) worker.kill("SIGKILL");
  }
  await h?.close();
});

// ---- MIME builders (CRLF, by hand: the point is to write what no library would) ----------------
const CRLF = "\r\n";
let seq = 0;
function envelope(subject: string, extra: string[] = []): string[] {
  seq++;
  return [
    `From: Mallory <mallory@example.net>`,
    `To: ${EMAIL}`,
    `Subject: ${subject}`,
    `Message-ID: <hostile-${seq}@example.net>`,
    `Date: Mon, 23 Nov 2026 10:00:${String(seq % 60).padStart(2, "0")} +0000`,
    "MIME-Version: 1.0",
    ...extra,
  ];
}
function b64lines(bytes: Buffer): string {
  return bytes.toString("base64").replace(/.{76}/g, `$&${CRLF}`);
}
function attachmentPart(filenameHeader: string, type: string, bytes: Buffer): string {
  return [
    `Content-Type: ${type}`,
    `Content-Disposition: attachment; ${filenameHeader}`,
    "Content-Transfer-Encoding: base64",
    "",
    b64lines(bytes),
  ].join(CRLF);
}
function multipart(
  headers: string[],
  parts: string[],
  boundary = `b${seq}x${Math.random().toString(36).slice(2)}`,
): Buffer {
  const lines = [...headers, `Content-Type: multipart/mixed; boundary="${boundary}"`, ""];
  for (const p of parts) lines.push(`--${boundary}`, p);
  lines.push(`--${boundary}--`, "");
  return Buffer.from(lines.join(CRLF), "latin1");
}
const textPart = (s: string) => ["Content-Type: text/plain; charset=utf-8", "", s].join(CRLF);

interface Case {
  name: string;
  raw: Buffer;
  /** What its attachments must end as (filename → skipped_reason, or "text" for extracted text). */
  expectAttachments?: Record<string, RegExp>;
  check?: (row: { subject: string | null; body_text: string | null; from_address: string | null }) => void;
}

async function hostileCases(): Promise<Case[]> {
  const cases: Case[] = [];
  cases.push({
    name: "malformed headers",
    raw: Buffer.from(
      [
        'From: <<<@@@>>>, "unterminated <x@y',
        `To: ${EMAIL}`,
        "Subject: broken \u0007 header",
        "This line has no colon at all",
        ": empty name",
        `X-Long: ${"A".repeat(100_000)}`,
        "Content-Type: text/plain; charset=",
        "Content-Type: text/html; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable-ish",
        "",
        "body after broken headers",
      ].join(CRLF),
      "latin1",
    ),
  });
  cases.push({
    name: "RFC 2047 with bad charsets",
    raw: Buffer.from(
      [
        ...envelope("=?x-no-such-charset?B?SGVsbG8=?= =?UTF-8?Q?=FF=FE?= =?utf-16?B?2D0=?= =?UTF-8?X?bogus?="),
        "Cc: =?koi8-bogus?Q?=E9t=E9?= <cc@example.net>",
        "Content-Type: text/plain; charset=x-unknown-charset",
        "",
        "plain body in an unknown charset \xe9\xff",
      ].join(CRLF),
      "latin1",
    ),
    check: (r) => expect(r.subject).toBeTruthy(),
  });
  cases.push({
    name: "invalid base64 bodies",
    raw: multipart(envelope("invalid base64"), [
      [
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: base64",
        "",
        "!!!! this is *** not base64 ~~~~ ====",
      ].join(CRLF),
      [
        "Content-Type: application/pdf",
        "Content-Disposition: attachment; filename=garbage.pdf",
        "Content-Transfer-Encoding: base64",
        "",
        "%%%%&&&&****====\u0000\u0001",
      ].join(CRLF),
    ]),
  });
  {
    const parts = [textPart("first of five thousand")];
    for (let i = 1; i < 5000; i++) parts.push(textPart(`part ${i}`));
    cases.push({
      name: "5,000 parts",
      raw: multipart(envelope("five thousand parts"), parts),
      check: (r) => expect(r.body_text).toContain("first of five thousand"),
    });
  }
  {
    // 200 levels of multipart/mixed, a text part and a small attachment at the bottom.
    let inner = [
      'Content-Type: multipart/mixed; boundary="L200"',
      "",
      "--L200",
      textPart("at the bottom"),
      "--L200",
      attachmentPart("filename=deep.txt", "text/plain", Buffer.from("deep")),
      "--L200--",
      "",
    ].join(CRLF);
    for (let level = 199; level >= 1; level--)
      inner = [
        `Content-Type: multipart/mixed; boundary="L${level}"`,
        "",
        `--L${level}`,
        inner,
        `--L${level}--`,
        "",
      ].join(CRLF);
    cases.push({
      name: "200 nested multiparts",
      raw: Buffer.from([...envelope("deeply nested"), inner].join(CRLF), "latin1"),
    });
  }
  cases.push({
    name: "filenames with path separators, NUL and control characters",
    raw: multipart(envelope("path traversal"), [
      textPart("see attached"),
      attachmentPart('filename="../../../../etc/passwd"', "text/plain", Buffer.from("root:x:0:0\n")),
      attachmentPart('filename="..\\\\..\\\\windows\\\\system32\\\\evil.txt"', "text/plain", Buffer.from("windows\n")),
      attachmentPart('filename="/abs/olute.txt"', "text/plain", Buffer.from("absolute\n")),
      attachmentPart('filename="nul\u0000byte\u0007bell\u001b[31m.txt"', "text/plain", Buffer.from("control\n")),
      attachmentPart("filename*=UTF-8''%00evil%2F..%2F..%2Fx%0D%0A.txt", "text/plain", Buffer.from("rfc2231\n")),
    ]),
  });
  cases.push({
    name: "0-byte attachment",
    raw: multipart(envelope("empty attachment"), [
      textPart("an empty file"),
      attachmentPart('filename="empty.bin"', "application/octet-stream", Buffer.alloc(0)),
    ]),
    expectAttachments: { "empty.bin": /^empty$/ },
  });
  cases.push({
    name: "zip-bomb DOCX",
    raw: multipart(envelope("zip bomb"), [
      textPart("open me"),
      attachmentPart(
        'filename="bomb.docx"',
        "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        await makeZipBombDocx(),
      ),
    ]),
    expectAttachments: { "bomb.docx": /^too_complex$/ },
  });
  cases.push({
    name: "looping PDF",
    raw: multipart(envelope("looping pdf"), [
      textPart("a pdf"),
      attachmentPart('filename="loop.pdf"', "application/pdf", await makeLoopingPdf()),
    ]),
    expectAttachments: { "loop.pdf": /^(timeout|too_complex)$/ },
  });
  cases.push({
    name: "NUL bytes in bodies",
    raw: multipart(envelope("nul \u0000 bytes"), [
      "Content-Type: text/plain; charset=utf-8\r\n\r\nbefore\u0000after\u0000",
      "Content-Type: text/html; charset=utf-8\r\n\r\n<p>html\u0000nul</p>",
      attachmentPart('filename="nul.txt"', "text/plain", Buffer.from("text\u0000with\u0000nuls")),
    ]),
    check: (r) => {
      expect(r.body_text).toContain("before");
      expect(r.body_text).not.toContain("\u0000");
    },
  });
  return cases;
}

function requestsOf(stats: { requests: Record<string, Record<string, number>> }, method: string): number {
  let n = 0;
  for (const [name, byStatus] of Object.entries(stats.requests))
    if (name.includes(method)) for (const c of Object.values(byStatus)) n += c;
  return n;
}

function expectWorkerAlive(): void {
  expect(worker.exitCode, `worker exited:\n${workerOutput.slice(-3000)}`).toBeNull();
  expect(worker.signalCode).toBeNull();
}

let accountId: number;

it("a 60 MB attachment is skipped as too_large and never downloaded", { timeout: 60_000 }, async () => {
  const big = Buffer.alloc(60_000_000, "0123456789abcdef");
  const raw = multipart(envelope("sixty megabytes"), [
    textPart("a big one"),
    attachmentPart('filename="huge.bin"', "application/octet-stream", big),
  ]);
  const { id } = await h.emulator.control.deliver(EMAIL, { raw: raw.toString("base64url") });
  accountId = await connectTestAccount(h, EMAIL);
  await h.app.enqueueBackfill(accountId, { reason: "connect" });
  await waitFor(
    "backfill",
    async () => (await syncState(h, accountId)).backfill_phase === "done" && (await queuesIdle(h)),
    45_000,
  );
  const rows = await attachmentRows(id);
  expect(rows).toHaveLength(1);
  expect(rows[0]).toMatchObject({
    filename: "huge.bin",
    skipped_reason: "too_large",
    checksum: null,
    extracted_text: null,
  });
  expect(Number(rows[0]?.size_bytes)).toBeGreaterThanOrEqual(60_000_000);
  expect(requestsOf(await h.emulator.control.stats(), "attachments.get"), "messages.attachments.get calls").toBe(0);
  expectWorkerAlive();
});

it("every hostile message ends stored with clear attachment outcomes or as a dead letter; the worker survives", {
  timeout: 90_000,
}, async () => {
  const cases = await hostileCases();
  const ids = new Map<string, Case>();
  for (const c of cases) ids.set((await h.emulator.control.deliver(EMAIL, { raw: c.raw.toString("base64url") })).id, c);
  await syncToMailbox(h, accountId, EMAIL);
  await waitFor("queues idle", () => queuesIdle(h), 30_000);
  expectWorkerAlive();

  const dead = await h.app.db
    .selectFrom("dead_letters")
    .selectAll()
    .where("account_id", "=", accountId)
    .where("resolved_at", "is", null)
    .execute();
  for (const d of dead) {
    // A parked message says why; none may still be blocking the cursor.
    expect(d.parked_at, `dead letter ${d.gmail_id} parked`).not.toBeNull();
    expect(d.reason).toMatch(/\S/);
  }
  const deadIds = new Set(dead.map((d) => d.gmail_id));

  for (const [id, c] of ids) {
    if (deadIds.has(id)) continue;
    const msg = await h.app.db
      .selectFrom("messages")
      .select(["subject", "body_text", "from_address", "deleted_at"])
      .where("account_id", "=", accountId)
      .where("gmail_id", "=", id)
      .executeTakeFirst();
    expect(msg, `${c.name}: stored or dead-lettered`).toBeDefined();
    expect(msg?.deleted_at).toBeNull();
    if (msg) c.check?.(msg);
    for (const a of await attachmentRows(id)) {
      // Either text came out of it or it says why not.
      expect(
        a.extracted_text !== null || a.skipped_reason !== null,
        `${c.name}: attachment ${a.part_id} (${JSON.stringify(a.filename)}) has text or a skipped_reason`,
      ).toBe(true);
      expect(a.filename ?? "", `${c.name}: filename stored without NUL`).not.toContain("\u0000");
    }
    // The looping PDF: the wall-clock cap normally stops it, the RSS cap may win on a loaded machine.
    for (const [filename, reason] of Object.entries(c.expectAttachments ?? {})) {
      const row = (await attachmentRows(id)).find((a) => a.filename === filename);
      expect(row?.skipped_reason ?? "(none)", `${c.name}: ${filename}`).toMatch(reason);
    }
  }
  // These must have been stored, not parked: they are hostile, not broken.
  for (const [id, c] of ids)
    if (["5,000 parts", "NUL bytes in bodies", "zip-bomb DOCX", "looping PDF", "0-byte attachment"].includes(c.name))
      expect(deadIds.has(id), c.name).toBe(false);

  // The database equals the mailbox (dead-lettered ones would show as missing), no failed or stuck
  // job, no temp file; path-like filenames never became paths.
  if (dead.length === 0) await expectDbEqualsMailbox(h, accountId, EMAIL);
  for (const q of [h.app.queues.backfill, h.app.queues.incremental]) {
    const counts = await q.getJobCounts("failed", "active", "waiting", "delayed");
    expect(counts, q.name).toEqual({ failed: 0, active: 0, waiting: 0, delayed: 0 });
  }
  expect(await readdir(h.app.config.ATTACHMENT_TEMP_DIR).catch((): string[] => [])).toEqual([]);
  expectWorkerAlive();
});

function attachmentRows(gmailId: string) {
  return h.app.db
    .selectFrom("attachments")
    .innerJoin("messages", "messages.id", "attachments.message_id")
    .select([
      "attachments.part_id",
      "attachments.filename",
      "attachments.skipped_reason",
      "attachments.checksum",
      "attachments.extracted_text",
      "attachments.size_bytes",
    ])
    .where("messages.account_id", "=", accountId)
    .where("messages.gmail_id", "=", gmailId)
    .execute();
}
