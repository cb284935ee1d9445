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
  FORWARD_NOTE,
  GENERATED_USER_LABELS,
  HOSTILE_KINDS,
  LARGE_BODY_BYTES,
  LEGACY_CHARSETS,
  NORMAL_KINDS,
  PDF_KEYWORDS,
  generateMailbox,
  generateMessage,
  legacyLabel,
  legacySentences,
  type AttachmentKind,
  type GeneratedMessage,
} from "../src/generate/index.ts";
import { parseMime, decodeBody, type MimeNode } from "../src/mime.ts";
import { quotedPrintable } from "../src/generate/mime.ts";

const OWNER = "owner@example.com";
const SYSTEM_LABELS = new Set([
  "INBOX",
  "SENT",
  "DRAFT",
  "UNREAD",
  "IMPORTANT",
  "STARRED",
  "SPAM",
  "TRASH",
  "CATEGORY_PERSONAL",
  "CATEGORY_UPDATES",
  "CATEGORY_PROMOTIONS",
  "CATEGORY_SOCIAL",
  "CATEGORY_FORUMS",
]);
const USER_LABELS = new Set(GENERATED_USER_LABELS.map((l) => l.id));

function kindOf(att: Attachment): AttachmentKind {
  const name = att.filename ?? "";
  for (const [kind, fixed] of Object.entries(FIXED_FILENAMES)) if (fixed === name) return kind as AttachmentKind;
  if (/^report-\w+\.pdf$/.test(name))
    return att.mimeType === "application/octet-stream" ? "pdf-as-octet-stream" : "pdf";
  if (/^(minutes-\w+|Protokoll Überprüfung \w+)\.docx$/.test(name)) return "docx";
  if (/^photo-\d\.png$/.test(name)) return "png";
  if (/^chart-\d\.png$/.test(name) && att.contentId) return "inline-image";
  throw new Error(`unexpected attachment ${name} (${att.mimeType})`);
}

function magic(att: Attachment): string {
  return Buffer.from(att.content as ArrayBuffer)
    .subarray(0, 4)
    .toString("hex");
}

const header = (email: Email, key: string): string | undefined => email.headers.find((h) => h.key === key)?.value;
const isDraft = (m: GeneratedMessage): boolean => m.labelIds.includes("DRAFT");
const isForward = (email: Email): boolean => /^Fwd: /.test(email.subject ?? "");
function leaves(node: MimeNode, out: MimeNode[] = []): MimeNode[] {
  if (node.children.length > 0) for (const c of node.children) leaves(c, out);
  else out.push(node);
  return out;
}
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
    const script = `import { generateMailbox } from "@gmail-sync/emulator/generate";
      import { createHash } from "node:crypto";
      const h = createHash("sha256");
      for (const m of await generateMailbox({ seed: 42, count: 300, email: "${OWNER}" }))
        h.update(m.raw).update(m.labelIds.join(",")).update(String(m.internalDate));
      console.log(h.digest("hex"));`;
    const child = spawnSync(process.execPath, ["--input-type=module", "-e", script], {
      cwd: process.cwd(),
      encoding: "utf8",
      timeout: 30_000,
    });
    expect(child.stderr.replace(/.*ExperimentalWarning.*\n?|.*--trace-warnings.*\n?/g, "")).toBe("");
    expect(child.stdout.trim()).toBe(sha(messages));
  });

  it("is oldest first over about two years, with Date headers matching internalDate", () => {
    for (let i = 1; i < messages.length; i++)
      expect(messages[i]!.internalDate).toBeGreaterThanOrEqual(messages[i - 1]!.internalDate);
    const span = messages.at(-1)!.internalDate - messages[0]!.internalDate;
    expect(span).toBeGreaterThan(500 * 86_400_000);
    expect(span).toBeLessThan(760 * 86_400_000);
    for (const [i, email] of parsed.entries()) expect(Date.parse(email.date!)).toBe(messages[i]!.internalDate);
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
        expect(email.subject ?? "").not.toMatch(/^Re: /);
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
      // A draft is the owner's too, but only DRAFT (gmail-real-samples/messages_get_metadata_draft.json).
      if (labels.includes("DRAFT")) {
        expect(labels).toEqual(["DRAFT"]);
        expect(email.from?.address).toBe(OWNER);
      } else expect(labels.includes("SENT")).toBe(email.from?.address === OWNER);
      if (labels.includes("SENT") || labels.includes("SPAM")) expect(labels).not.toContain("INBOX");
    });
    for (const l of [
      "INBOX",
      "SENT",
      "DRAFT",
      "UNREAD",
      "IMPORTANT",
      "STARRED",
      "CATEGORY_PERSONAL",
      "CATEGORY_UPDATES",
      "CATEGORY_PROMOTIONS",
    ]) {
      expect(seen.has(l), l).toBe(true);
    }
    expect([...seen].filter((l) => USER_LABELS.has(l)).length).toBeGreaterThanOrEqual(3);
  });

  it("has text and HTML bodies, RFC 2047 non-ASCII subjects and names, and a searchable word per message", () => {
    const raw = messages.map((m) => m.raw.toString("latin1"));
    expect(raw.every((r) => /^[\x09\x0a\x0d\x1b\x20-\x7e]*$/.test(r))).toBe(true); // 7-bit on the wire (ESC: ISO-2022-JP)
    expect(raw.some((r) => /^Subject: =\?UTF-8\?B\?/m.test(r))).toBe(true);
    for (const cte of ["7bit", "quoted-printable", "base64"]) {
      expect(
        raw.some((r) =>
          r.includes(`Content-Type: text/plain; charset="UTF-8"\r\nContent-Transfer-Encoding: ${cte}\r\n`),
        ),
        cte,
      ).toBe(true);
    }
    expect(raw.some((r) => /^From: =\?UTF-8\?B\?/m.test(r))).toBe(true);
    expect(parsed.some((e) => /[^\x00-\x7f]/.test(e.subject ?? ""))).toBe(true);
    expect(parsed.some((e) => /[^\x00-\x7f]/.test(e.from?.name ?? ""))).toBe(true);
    // Every message but an empty draft has its word; API drafts are text/plain only.
    const words = parsed.flatMap((email, i) => {
      const draft = isDraft(messages[i]!);
      if (!draft || /HTTPREST/.test(header(email, "received") ?? "")) expect(email.text?.trim() || !draft).toBeTruthy();
      if (!draft) expect(email.html).toContain("<p>");
      // An HTML-only forwarding note has its word in the HTML.
      const word = /The reference word for this one is (\w+)\./.exec(email.text ?? email.html ?? "")?.[1];
      if (draft && (email.text ?? "").trim() === "") return [];
      expect(word, email.subject).toBeTruthy();
      return [word!];
    });
    expect(new Set(words).size).toBe(words.length);
  });

  it("carries every attachment kind, each with the bytes its kind promises, on 15–25% of messages", () => {
    const found = new Map<AttachmentKind, number>();
    let withAttachments = 0;
    // A forward's own .eml is tested below; its other attachments count here.
    const own = (email: Email) =>
      email.attachments.filter(
        (a) =>
          !(isForward(email) && a.mimeType === "message/rfc822" && a.filename !== FIXED_FILENAMES["forwarded-message"]),
      );
    parsed.forEach((email) => {
      if (own(email).length > 0) withAttachments++;
      for (const att of own(email)) {
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
    const notes = Buffer.from(
      text.attachments.find((a) => a.filename === FIXED_FILENAMES.text)!.content as ArrayBuffer,
    ).toString();
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

describe("generateMailbox: what real mailboxes also hold (300 messages)", () => {
  let messages: GeneratedMessage[];
  let parsed: Email[];
  let trees: MimeNode[];

  beforeAll(async () => {
    messages = await generateMailbox({ seed: 42, count: 300, email: OWNER });
    parsed = await Promise.all(messages.map((m) => PostalMime.parse(m.raw)));
    trees = messages.map((m) => parseMime(m.raw));
  });

  it("legacy charsets: every variant on ~8% of incoming mail, text and HTML in the charset's language, 7-bit on the wire", () => {
    const byLabel = new Map<string, number>();
    trees.forEach((tree, i) => {
      const texts = leaves(tree).filter((n) => n.mimeType.startsWith("text/") && n.filename === "");
      const charsets = new Set(texts.map((n) => (n.params.charset ?? "").toLowerCase()));
      charsets.delete("utf-8");
      if (charsets.size === 0) return;
      expect(charsets.size, parsed[i]!.subject).toBe(1);
      const label = [...charsets][0]!;
      byLabel.set(label, (byLabel.get(label) ?? 0) + 1);
      expect(messages[i]!.labelIds).not.toContain("SENT");
      // Both parts in the charset, words from that charset's language, read by the label (as a
      // converting server does; a mislabelled body is checked as UTF-8 instead).
      expect(texts.map((n) => n.mimeType).sort()).toEqual(["text/html", "text/plain"]);
      const plain = texts.find((n) => n.mimeType === "text/plain")!;
      const bytes = decodeBody(plain);
      const variants = LEGACY_CHARSETS.filter((c) => legacyLabel(c).toLowerCase() === label);
      const ok = variants.some((c) => {
        const text = c === "mislabelled-utf8" ? bytes.toString("utf8") : new TextDecoder(label).decode(bytes);
        return (
          legacySentences(c).some((sentence) => text.includes(sentence)) &&
          text.includes("The reference word for this one is")
        );
      });
      expect(ok, `${label}: ${parsed[i]!.subject}`).toBe(true);
    });
    for (const c of LEGACY_CHARSETS) expect(byLabel.get(legacyLabel(c).toLowerCase()), c).toBeGreaterThan(0);
    const legacy = [...byLabel.values()].reduce((a, b) => a + b, 0);
    const incoming = messages.filter((m) => !m.labelIds.includes("SENT") && !isDraft(m)).length;
    expect(legacy / incoming).toBeGreaterThan(0.05);
    expect(legacy / incoming).toBeLessThan(0.13);
    // ISO-2022-JP travels as 7bit (its escape sequences), the others quoted-printable or base64.
    const raw = messages.map((m) => m.raw.toString("latin1"));
    expect(raw.some((r) => /charset=ISO-2022-JP\r\nContent-Transfer-Encoding: 7bit/.test(r))).toBe(true);
    expect(raw.some((r) => /charset=iso-8859-1\r\nContent-Transfer-Encoding: quoted-printable/.test(r))).toBe(true);
    expect(raw.some((r) => /charset=Shift_JIS\r\nContent-Transfer-Encoding: base64/.test(r))).toBe(true);
    // Subjects that fit the charset are encoded words in it, as such senders write them.
    expect(
      raw.some((r) => /^Subject: =\?(ISO-2022-JP|Shift_JIS|KOI8-R|iso-8859-1|Windows-1252|GB2312)\?B\?/m.test(r)),
    ).toBe(true);
  });

  it("forwards ~3% of messages as message/rfc822 attachments: named or not, some HTML-only notes, some originals with attachments", () => {
    const forwards = parsed.map((e, i) => [e, trees[i]!] as const).filter(([e]) => isForward(e));
    expect(forwards.length / messages.length).toBeGreaterThan(0.015);
    expect(forwards.length / messages.length).toBeLessThan(0.05);
    let named = 0;
    let htmlOnly = 0;
    let innerAttachments = 0;
    for (const [email, tree] of forwards) {
      const rfc = leaves(tree).filter(
        (n) => n.mimeType === "message/rfc822" && n.filename !== FIXED_FILENAMES["forwarded-message"],
      );
      expect(rfc).toHaveLength(1);
      const part = rfc[0]!;
      if (part.filename !== "") {
        named++;
        expect(part.filename).toBe(`${email.subject!.slice(5).replace(/[\\/:*?"<>|]/g, "_")}.eml`);
      }
      // The note comes first; an HTML-only note means the first text/plain leaf is the original's.
      const own = tree.children[0]!;
      if (own.mimeType === "text/html") htmlOnly++;
      else expect(own.mimeType).toBe("multipart/alternative");
      const inner = parseMime(decodeBody(part));
      expect(inner.headers.find((h) => h.name === "Subject")?.value).toBe(email.subject!.slice(5));
      if (leaves(inner).some((n) => n.filename !== "")) innerAttachments++;
      expect((email.html ?? email.text ?? "").includes(FORWARD_NOTE)).toBe(true);
    }
    expect(named).toBeGreaterThan(0);
    expect(named).toBeLessThan(forwards.length);
    expect(htmlOnly).toBeGreaterThan(0);
    expect(innerAttachments).toBeGreaterThan(0);
  });

  it("drafts: ~1.5%, DRAFT only, the owner's, replies inside a thread and new ones, some empty, some made through the API", () => {
    const drafts = messages.map((m, i) => [m, parsed[i]!] as const).filter(([m]) => isDraft(m));
    expect(drafts.length).toBeGreaterThanOrEqual(3);
    expect(drafts.length / messages.length).toBeLessThan(0.03);
    const ids = new Set(parsed.map((e) => e.messageId));
    let replies = 0;
    let empty = 0;
    let api = 0;
    for (const [m, email] of drafts) {
      expect(m.labelIds).toEqual(["DRAFT"]);
      expect(email.from?.address).toBe(OWNER);
      expect(header(email, "delivered-to")).toBeUndefined();
      if (email.inReplyTo) {
        replies++;
        expect(ids.has(email.inReplyTo)).toBe(true);
        expect(email.subject).toMatch(/^Re: /);
      }
      if ((email.text ?? "").trim() === "") {
        empty++;
        expect(email.html?.trim()).toBe('<div dir="ltr"><br></div>');
      }
      if (/gmailapi\.google\.com with HTTPREST/.test(header(email, "received") ?? "")) api++;
    }
    // Nothing replies to a draft.
    for (const email of parsed)
      if (email.inReplyTo) expect(drafts.some(([, d]) => d.messageId === email.inReplyTo)).toBe(false);
    expect(replies).toBeGreaterThan(0);
    expect(replies).toBeLessThan(drafts.length);
    expect(empty).toBeGreaterThan(0);
    expect(api).toBeGreaterThan(0);
  });

  it("a mailbox of 300 holds one body above the body-by-reference size, not an attachment", () => {
    const large = trees.flatMap((t) =>
      leaves(t).filter((n) => n.mimeType.startsWith("text/") && n.filename === "" && decodeBody(n).length > 1_000_000),
    );
    expect(large).toHaveLength(1);
    expect(decodeBody(large[0]!).length).toBeGreaterThanOrEqual(LARGE_BODY_BYTES);
    expect(large[0]!.mimeType).toBe("text/html");
    expect(large[0]!.disposition).toBeUndefined();
  });
});

describe("generateMailbox options", () => {
  it("attachments:false gives none; hostile:false keeps normal kinds only", async () => {
    const none = await generateMailbox({ seed: 5, count: 120, email: OWNER, attachments: false });
    for (const m of none) expect((await PostalMime.parse(m.raw)).attachments).toHaveLength(0);
    const tame = await generateMailbox({ seed: 5, count: 300, email: OWNER, hostile: false });
    const kinds = new Set<AttachmentKind>();
    for (const m of tame) {
      const email = await PostalMime.parse(m.raw);
      for (const a of email.attachments)
        if (
          !(isForward(email) && a.mimeType === "message/rfc822" && a.filename !== FIXED_FILENAMES["forwarded-message"])
        )
          kinds.add(kindOf(a));
    }
    for (const kind of HOSTILE_KINDS) expect(kinds.has(kind), kind).toBe(false);
    expect(kinds.size).toBe(NORMAL_KINDS.length);
  });

  it("large:true adds one 60 MB attachment", async () => {
    const box = await generateMailbox({
      seed: 9,
      count: 4,
      email: OWNER,
      attachments: true,
      hostile: false,
      large: true,
    });
    const big = box.filter((m) => m.raw.length > 60_000_000);
    expect(big).toHaveLength(1);
    const raw = big[0]!.raw.toString("latin1");
    const at = raw.indexOf(`filename="${FIXED_FILENAMES["large-csv"]}"`);
    expect(at).toBeGreaterThan(0);
    const body = raw.slice(raw.indexOf("\r\n\r\n", at) + 4, raw.indexOf("\r\n--", at));
    expect(Buffer.from(body, "base64").length).toBe(60_000_000);
  });

  it("legacyCharsets, forwarded, drafts and largeBodies off: none of each; no forwards without attachments", async () => {
    const plain = await generateMailbox({
      seed: 42,
      count: 300,
      email: OWNER,
      legacyCharsets: false,
      forwarded: false,
      drafts: false,
      largeBodies: false,
    });
    for (const m of plain) {
      const r = m.raw.toString("latin1");
      expect(r).not.toMatch(/charset=(?!"UTF-)/);
      expect(r).not.toMatch(/^Subject: Fwd: /m);
      expect(m.labelIds).not.toContain("DRAFT");
      expect(m.raw.length).toBeLessThan(1_000_000 + 700_000); // the zip bomb is the largest left
    }
    expect(
      plain.some((m) =>
        parseMime(m.raw).children.some((c) =>
          leaves(c).some((n) => n.mimeType === "text/html" && decodeBody(n).length > 1_000_000),
        ),
      ),
    ).toBe(false);
    const bare = await generateMailbox({ seed: 42, count: 300, email: OWNER, attachments: false });
    for (const m of bare) expect(leaves(parseMime(m.raw)).some((n) => n.mimeType === "message/rfc822")).toBe(false);
    // Switching one feature off leaves the others where they were.
    const withAll = await generateMailbox({ seed: 42, count: 300, email: OWNER });
    const noDrafts = await generateMailbox({ seed: 42, count: 300, email: OWNER, drafts: false });
    const fwd = (box: GeneratedMessage[]) =>
      box.map((m, i) => (/^Subject: Fwd: /m.test(m.raw.toString("latin1")) ? i : -1)).filter((i) => i >= 0);
    expect(fwd(noDrafts)).toEqual(fwd(withAll));
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
      const withOne = await PostalMime.parse(
        (await generateMessage({ seed, email: OWNER, date, attachments: true })).raw,
      );
      expect(withOne.attachments).toHaveLength(1);
      kindOf(withOne.attachments[0]!);
      const without = await PostalMime.parse(
        (await generateMessage({ seed, email: OWNER, date, attachments: false })).raw,
      );
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
    const samples = [
      "Hello = world ",
      `Zoë Müller: ${"ünïcode ".repeat(30)}`,
      "a".repeat(200),
      "tab at end\t",
      "=".repeat(40),
    ];
    for (const sample of samples) {
      const text = `${sample}\r\nsecond line é\r\n`;
      const qp = quotedPrintable(text);
      for (const line of qp.split("\r\n")) expect(line.length).toBeLessThanOrEqual(76);
      expect(qp).not.toMatch(/[ \t]\r\n/); // no trailing whitespace survives
      const email = await PostalMime.parse(
        `Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${qp}`,
      );
      expect(email.text!.replace(/\r?\n/g, "\r\n")).toBe(text);
    }
  });
});
