// The mailbox generator: deterministic, well-threaded, labelled like Gmail, and every message is
// MIME that postal-mime parses into the attachments the generator meant to put there.
import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import PostalMime, { type Attachment, type Email } from "postal-mime";
import { PDFParse } from "pdf-parse";
import { beforeAll, describe, expect, it } from "vitest";
import {
  DOCX_KEYWORDS,
  FIXED_FILENAMES,
  GENERATED_USER_LABELS,
  HOSTILE_KINDS,
  NORMAL_KINDS,
  PDF_KEYWORDS,
  generateMailbox,
  generateMessage,
  type AttachmentKind,
  type GeneratedMessage,
} from "../../src/emulator/generate/index.ts";
import { quotedPrintable } from "../../src/emulator/generate/mime.ts";

const OWNER = "owner@example.com";
const SYSTEM_LABELS = new Set([
  "INBOX", "SENT", "UNREAD", "IMPORTANT", "STARRED", "SPAM", "TRASH",
  "CATEGORY_PERSONAL", "CATEGORY_UPDATES", "CATEGORY_PROMOTIONS", "CATEGORY_SOCIAL", "CATEGORY_FORUMS",
]);
const USER_LABELS = new Set(GENERATED_USER_LABELS.map((l) => l.id));

function kindOf(att: Attachment): AttachmentKind {
  const name = att.filename ?? "";
  for (const [kind, fixed] of Object.entries(FIXED_FILENAMES)) if (fixed === name) return kind as AttachmentKind;
  if (/^report-\w+\.pdf$/.test(name)) return att.mimeType === "application/octet-stream" ? "pdf-as-octet-stream" : "pdf";
  if (/^(minutes-\w+|Protokoll Überprüfung \w+)\.docx$/.test(name)) return "docx";
  if (/^photo-\d\.png$/.test(name)) return "png";
  if (/^chart-\d\.png$/.test(name) && att.contentId) return "inline-image";
  throw new Error(`unexpected attachment ${name} (${att.mimeType})`);
}

function magic(att: Attachment): string {
  return Buffer.from(att.content as ArrayBuffer).subarray(0, 4).toString("hex");
}

const header = (email: Email, key: string): string | undefined => email.headers.find((h) => h.key === key)?.value;
const sha = (messages: GeneratedMessage[]): string => {
  const h = createHash("sha256");
  for (const m of messages) h.update(m.raw).update(m.labelIds.join(",")).update(String(m.internalDate));
  return h.digest("hex");
};

describe("generateMailbox (300 messages)", () => {
  let messages: GeneratedMessage[];
  let parsed: Email[];

  beforeAll(async () => {
    messages = await generateMailbox({ seed: 42, count: 300, email: OWNER });
    parsed = await Promise.all(messages.map((m) => PostalMime.parse(m.raw)));
  });

  it("is deterministic: same seed → same bytes, labels and dates; another seed differs", async () => {
    expect(messages).toHaveLength(300);
    const again = await generateMailbox({ seed: 42, count: 300, email: OWNER });
    expect(sha(again)).toBe(sha(messages));
    expect(sha(await generateMailbox({ seed: 43, count: 300, email: OWNER }))).not.toBe(sha(messages));
  });

  it("is deterministic across processes (no hidden clock or cache state)", async () => {
    const script = `import { generateMailbox } from "./src/emulator/generate/index.ts";
      import { createHash } from "node:crypto";
      const h = createHash("sha256");
      for (const m of await generateMailbox({ seed: 42, count: 300, email: "${OWNER}" }))
        h.update(m.raw).update(m.labelIds.join(",")).update(String(m.internalDate));
      console.log(h.digest("hex"));`;
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], { cwd: process.cwd(), encoding: "utf8", timeout: 30_000 });
    expect(child.stderr.replace(/.*ExperimentalWarning.*\n?|.*--trace-warnings.*\n?/g, "")).toBe("");
    expect(child.stdout.trim()).toBe(sha(messages));
  });

  it("is oldest first over about two years, with Date headers matching internalDate", () => {
    for (let i = 1; i < messages.length; i++) expect(messages[i]!.internalDate).toBeGreaterThanOrEqual(messages[i - 1]!.internalDate);
    const span = messages.at(-1)!.internalDate - messages[0]!.internalDate;
    expect(span).toBeGreaterThan(500 * 86_400_000);
    expect(span).toBeLessThan(760 * 86_400_000);
    parsed.forEach((email, i) => expect(Date.parse(email.date!)).toBe(messages[i]!.internalDate));
  });

  it("threads: replies point at earlier Message-IDs, carry References and Re: subjects, 1–8 per thread", () => {
    const byId = new Map<string, number>();
    const root = new Map<string, string>(); // message id → thread root id
    let replies = 0;
    parsed.forEach((email, i) => {
      const id = email.messageId!;
      expect(id).toBe(`<42-${i}@generator.gmail-sync.test>`);
      if (email.inReplyTo) {
        replies++;
        const parentIndex = byId.get(email.inReplyTo);
        expect(parentIndex, `In-Reply-To of ${id}`).toBeDefined();
        expect(parentIndex!).toBeLessThan(i);
        const refs = header(email, "references")!.split(/\s+/);
        expect(refs.at(-1)).toBe(email.inReplyTo);
        for (const ref of refs) expect(byId.has(ref)).toBe(true);
        const rootId = refs[0]!;
        expect(root.get(email.inReplyTo)).toBe(rootId);
        expect(email.subject).toBe(`Re: ${parsed[byId.get(rootId)!]!.subject}`);
        root.set(id, rootId);
      } else {
        expect(email.subject).not.toMatch(/^Re: /);
        root.set(id, id);
      }
      byId.set(id, i);
    });
    const sizes = new Map<string, number>();
    for (const r of root.values()) sizes.set(r, (sizes.get(r) ?? 0) + 1);
    expect(Math.max(...sizes.values())).toBeLessThanOrEqual(8);
    expect(Math.max(...sizes.values())).toBeGreaterThanOrEqual(4);
    expect(replies).toBeGreaterThan(50);
  });

  it("labels like Gmail: SENT exactly for the owner's messages, system and user labels all used", () => {
    const seen = new Set<string>();
    parsed.forEach((email, i) => {
      const labels = messages[i]!.labelIds;
      for (const l of labels) {
        expect(SYSTEM_LABELS.has(l) || USER_LABELS.has(l), l).toBe(true);
        seen.add(l);
      }
      expect(new Set(labels).size).toBe(labels.length);
      expect(labels.includes("SENT")).toBe(email.from?.address === OWNER);
      if (labels.includes("SENT") || labels.includes("SPAM")) expect(labels).not.toContain("INBOX");
    });
    for (const l of ["INBOX", "SENT", "UNREAD", "IMPORTANT", "STARRED", "CATEGORY_PERSONAL", "CATEGORY_UPDATES", "CATEGORY_PROMOTIONS"]) {
      expect(seen.has(l), l).toBe(true);
    }
    expect([...seen].filter((l) => USER_LABELS.has(l)).length).toBeGreaterThanOrEqual(3);
  });

  it("has text and HTML bodies, RFC 2047 non-ASCII subjects and names, and a searchable word per message", () => {
    const raw = messages.map((m) => m.raw.toString("latin1"));
    expect(raw.every((r) => /^[\x09\x0a\x0d\x20-\x7e]*$/.test(r))).toBe(true); // 7-bit on the wire
    expect(raw.some((r) => /^Subject: =\?UTF-8\?B\?/m.test(r))).toBe(true);
    for (const cte of ["7bit", "quoted-printable", "base64"]) {
      expect(raw.some((r) => r.includes(`Content-Type: text/plain; charset="UTF-8"\r\nContent-Transfer-Encoding: ${cte}\r\n`)), cte).toBe(true);
    }
    expect(raw.some((r) => /^From: =\?UTF-8\?B\?/m.test(r))).toBe(true);
    expect(parsed.some((e) => /[^\x00-\x7f]/.test(e.subject ?? ""))).toBe(true);
    expect(parsed.some((e) => /[^\x00-\x7f]/.test(e.from?.name ?? ""))).toBe(true);
    const words = parsed.map((email) => {
      expect(email.text).toBeTruthy();
      expect(email.html).toContain("<p>");
      const word = /The reference word for this one is (\w+)\./.exec(email.text!)?.[1];
      expect(word).toBeTruthy();
      return word!;
    });
    expect(new Set(words).size).toBe(words.length);
  });

  it("carries every attachment kind, each with the bytes its kind promises, on 15–25% of messages", () => {
    const found = new Map<AttachmentKind, number>();
    let withAttachments = 0;
    parsed.forEach((email) => {
      if (email.attachments.length > 0) withAttachments++;
      for (const att of email.attachments) {
        const kind = kindOf(att);
        found.set(kind, (found.get(kind) ?? 0) + 1);
        const m = magic(att);
        if (kind === "exe-named-pdf") expect(m).toBe("4d5a9000");
        else if (kind === "encrypted-docx") expect(m).toBe("d0cf11e0");
        else if (kind.endsWith("pdf") || kind === "pdf-as-octet-stream") expect(m).toBe("25504446");
        else if (kind.endsWith("docx")) expect(m).toBe("504b0304");
        else if (kind === "png" || kind === "inline-image") expect(m).toBe("89504e47");
        else if (kind === "csv-utf16") expect(m.slice(0, 4)).toBe("fffe");
        if (kind === "inline-image") {
          expect(att.disposition).toBe("inline");
          expect(email.html).toContain(`cid:${att.contentId!.replace(/[<>]/g, "")}`);
        }
        if (kind === "empty-file") expect((att.content as ArrayBuffer).byteLength).toBe(0);
        if (kind === "nul-bytes-text") expect(Buffer.from(att.content as ArrayBuffer).includes(0)).toBe(true);
        if (kind === "forwarded-message") {
          expect(att.mimeType).toBe("message/rfc822");
          expect(Buffer.from(att.content as ArrayBuffer).toString()).toMatch(/^MIME-Version: 1\.0\r?\nDate: /);
        }
      }
    });
    for (const kind of [...NORMAL_KINDS, ...HOSTILE_KINDS]) expect(found.get(kind), kind).toBeGreaterThan(0);
    for (const kind of HOSTILE_KINDS) expect(found.get(kind), kind).toBe(1);
    expect(found.has("large-csv")).toBe(false);
    expect(withAttachments / messages.length).toBeGreaterThanOrEqual(0.15);
    expect(withAttachments / messages.length).toBeLessThanOrEqual(0.25);
  });

  it("puts words only in attachments: a text attachment's word is not in its message body, a PDF's keyword is in its text", async () => {
    const text = parsed.find((e) => e.attachments.some((a) => a.filename === FIXED_FILENAMES.text))!;
    const notes = Buffer.from(text.attachments.find((a) => a.filename === FIXED_FILENAMES.text)!.content as ArrayBuffer).toString();
    const word = /Code word: (\w+)/.exec(notes)![1]!;
    expect(text.text).not.toContain(word);
    expect(text.html).not.toContain(word);

    const pdfMail = parsed.find((e) => e.attachments.some((a) => /^report-/.test(a.filename ?? "")))!;
    const pdf = pdfMail.attachments.find((a) => /^report-/.test(a.filename ?? ""))!;
    const keyword = /^report-(\w+)\.pdf$/.exec(pdf.filename!)![1]!;
    expect(PDF_KEYWORDS).toContain(keyword);
    const parser = new PDFParse({ data: new Uint8Array(pdf.content as ArrayBuffer), isEvalSupported: false });
    const { text: pdfText } = await parser.getText();
    await parser.destroy();
    expect(pdfText).toContain(`${keyword}page1`);
    expect(pdfMail.text).not.toContain(keyword);
    expect(DOCX_KEYWORDS.length).toBeGreaterThan(0);
  });
});

describe("generateMailbox options", () => {
  it("attachments:false gives none; hostile:false keeps normal kinds only", async () => {
    const none = await generateMailbox({ seed: 5, count: 120, email: OWNER, attachments: false });
    for (const m of none) expect((await PostalMime.parse(m.raw)).attachments).toHaveLength(0);
    const tame = await generateMailbox({ seed: 5, count: 300, email: OWNER, hostile: false });
    const kinds = new Set<AttachmentKind>();
    for (const m of tame) for (const a of (await PostalMime.parse(m.raw)).attachments) kinds.add(kindOf(a));
    for (const kind of HOSTILE_KINDS) expect(kinds.has(kind), kind).toBe(false);
    expect(kinds.size).toBe(NORMAL_KINDS.length);
  });

  it("large:true adds one 60 MB attachment", async () => {
    const box = await generateMailbox({ seed: 9, count: 4, email: OWNER, attachments: true, hostile: false, large: true });
    const big = box.filter((m) => m.raw.length > 60_000_000);
    expect(big).toHaveLength(1);
    const raw = big[0]!.raw.toString("latin1");
    const at = raw.indexOf(`filename="${FIXED_FILENAMES["large-csv"]}"`);
    expect(at).toBeGreaterThan(0);
    const body = raw.slice(raw.indexOf("\r\n\r\n", at) + 4, raw.indexOf("\r\n--", at));
    expect(Buffer.from(body, "base64").length).toBe(60_000_000);
  });

  it("count 0 is an empty mailbox; startDate moves it", async () => {
    expect(await generateMailbox({ seed: 1, count: 0, email: OWNER })).toEqual([]);
    const start = Date.UTC(2020, 5, 1);
    const box = await generateMailbox({ seed: 1, count: 20, email: OWNER, startDate: start, attachments: false });
    expect(box[0]!.internalDate).toBeGreaterThanOrEqual(start);
  });
});

describe("generateMessage", () => {
  const date = Date.UTC(2026, 0, 2, 3, 4, 5);

  it("is one deterministic incoming message for a seed", async () => {
    const a = await generateMessage({ seed: 77, email: OWNER, date });
    const b = await generateMessage({ seed: 77, email: OWNER, date });
    expect(a.raw.equals(b.raw)).toBe(true);
    expect(a.internalDate).toBe(date);
    expect(a.labelIds).toEqual(expect.arrayContaining(["INBOX", "UNREAD"]));
    const email = await PostalMime.parse(a.raw);
    expect(email.to?.[0]?.address).toBe(OWNER);
    expect(email.messageId).toBe("<77-live@generator.gmail-sync.test>");
    expect(Date.parse(email.date!)).toBe(date);
    const c = await generateMessage({ seed: 78, email: OWNER, date });
    expect(c.raw.equals(a.raw)).toBe(false);
  });

  it("attachments: true always attaches one, false never", async () => {
    for (let seed = 0; seed < 12; seed++) {
      const withOne = await PostalMime.parse((await generateMessage({ seed, email: OWNER, date, attachments: true })).raw);
      expect(withOne.attachments).toHaveLength(1);
      kindOf(withOne.attachments[0]!);
      const without = await PostalMime.parse((await generateMessage({ seed, email: OWNER, date, attachments: false })).raw);
      expect(without.attachments).toHaveLength(0);
    }
  });

  it("defaults its date to now", async () => {
    const before = Date.now();
    const m = await generateMessage({ seed: 1, email: OWNER });
    expect(m.internalDate).toBeGreaterThanOrEqual(Math.floor(before / 1000) * 1000);
    expect(m.internalDate).toBeLessThanOrEqual(Date.now());
  });
});

describe("quoted-printable bodies", () => {
  it("round-trip through postal-mime with lines of at most 76 characters", async () => {
    const samples = ["Hello = world ", `Zoë Müller: ${"ünïcode ".repeat(30)}`, "a".repeat(200), "tab at end\t", "=".repeat(40)];
    for (const sample of samples) {
      const text = `${sample}\r\nsecond line é\r\n`;
      const qp = quotedPrintable(text);
      for (const line of qp.split("\r\n")) expect(line.length).toBeLessThanOrEqual(76);
      expect(qp).not.toMatch(/[ \t]\r\n/); // no trailing whitespace survives
      const email = await PostalMime.parse(`Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${qp}`);
      expect(email.text!.replace(/\r?\n/g, "\r\n")).toBe(text);
    }
  });
});
