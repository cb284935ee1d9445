// Attached messages (message/rfc822) as Gmail serves them: expanded, the rfc822 part keeping
// body.attachmentId (attachments.get gives the whole .eml) and carrying one child, the attached
// message's root "<id>.0" with its headers, whose parts follow ("<id>.0.0"…), each inner
// attachment with its own attachmentId (gmail-real-samples/messages_get_rfc822_expanded_evidence.txt:
// no recording exists; the form is the one independent clients' fixtures model). --rfc822-opaque
// (rfc822Expanded: false) keeps the leaf form. Either way the message has ONE attachment, the .eml.
import type { gmail_v1 } from "@googleapis/gmail";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { FORWARD_NOTE } from "../src/generate/index.ts";
import { startEmulator, type Emulator } from "../src/server.ts";
import { clientFor } from "./helpers.ts";
import { loadSample, samplesPresent, shapeDiff, shapeOf } from "./sample-shape.ts";

const ALICE = "alice@example.com";
let emu: Emulator;
let api: gmail_v1.Gmail;

beforeAll(async () => {
  emu = await startEmulator({ seed: 12, accounts: [ALICE], addedNotFoundRate: 0 });
  ({ api } = await clientFor(emu));
});
afterAll(async () => {
  await emu.close();
});

const PDF = Buffer.concat([Buffer.from("%PDF-1.4\n"), Buffer.alloc(3000, 0x41), Buffer.from("\n%%EOF\n")]);

/** The attached original: multipart/mixed [alternative [plain (iso-8859-1), html], menu.pdf]. */
const INNER = Buffer.from(
  [
    "From: Bob <bob@example.org>",
    "To: Carol <carol@example.net>",
    "Subject: Lunch",
    "Date: Tue, 01 Oct 2024 09:00:00 +0000",
    "Message-ID: <lunch-1@example.org>",
    "MIME-Version: 1.0",
    'Content-Type: multipart/mixed; boundary="in-mix"',
    "",
    "--in-mix",
    'Content-Type: multipart/alternative; boundary="in-alt"',
    "",
    "--in-alt",
    "Content-Type: text/plain; charset=iso-8859-1",
    "Content-Transfer-Encoding: quoted-printable",
    "",
    "Caf=E9 at one? innerword",
    "--in-alt",
    "Content-Type: text/html; charset=utf-8",
    "",
    "<p>Café at one? innerword</p>",
    "--in-alt--",
    "--in-mix",
    'Content-Type: application/pdf; name="menu.pdf"',
    'Content-Disposition: attachment; filename="menu.pdf"',
    "Content-Transfer-Encoding: base64",
    "",
    PDF.toString("base64"),
    "--in-mix--",
    "",
  ].join("\r\n"),
);

/** The forwarding message: an HTML-only note and the original attached (named or not). */
function forward(named: boolean, inner: Buffer = INNER, n = Math.random().toString(36).slice(2)): Buffer {
  const rfcHead = named
    ? 'Content-Type: message/rfc822; name="Lunch.eml"\r\nContent-Disposition: attachment; filename="Lunch.eml"'
    : "Content-Type: message/rfc822\r\nContent-Disposition: attachment";
  return Buffer.concat([
    Buffer.from(
      `From: Carol <carol@example.net>\r\nTo: ${ALICE}\r\nSubject: Fwd: Lunch\r\nMessage-ID: <fwd-${n}@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary="out-${n}"\r\n\r\n` +
        `--out-${n}\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<div>See the attached message. outerword</div>\r\n--out-${n}\r\n${rfcHead}\r\n\r\n`,
    ),
    inner,
    Buffer.from(`\r\n--out-${n}--\r\n`),
  ]);
}

function byPartId(
  p: gmail_v1.Schema$MessagePart,
  out = new Map<string, gmail_v1.Schema$MessagePart>(),
): Map<string, gmail_v1.Schema$MessagePart> {
  out.set(p.partId as string, p);
  for (const c of p.parts ?? []) byPartId(c, out);
  return out;
}

/** A recorded message (some recordings wrap Gmail's body in {method, endpoint, response, …}). */
function recordedMessage(name: string): gmail_v1.Schema$Message {
  const body = loadSample(name)?.body as Record<string, unknown>;
  return (body && "response" in body ? body.response : body) as gmail_v1.Schema$Message;
}

async function attachment(messageId: string, part: gmail_v1.Schema$MessagePart | undefined): Promise<Buffer> {
  const att = (
    await api.users.messages.attachments.get({ userId: "me", messageId, id: part?.body?.attachmentId as string })
  ).data;
  const bytes = Buffer.from(att.data as string, "base64url");
  expect(att.size).toBe(bytes.length);
  expect(att.size).toBe(part?.body?.size);
  return bytes;
}

describe("attached messages, expanded (Gmail's default)", () => {
  it("the rfc822 part keeps its attachmentId and carries the original's tree from <id>.0, with the original's headers", async () => {
    const { id } = await emu.control.deliver(ALICE, { raw: forward(true), labelIds: ["INBOX"] });
    const msg = (await api.users.messages.get({ userId: "me", id })).data;
    const parts = byPartId(msg.payload as gmail_v1.Schema$MessagePart);
    expect([...parts.entries()].map(([pid, p]) => [pid, p.mimeType, p.filename])).toEqual([
      ["", "multipart/mixed", ""],
      ["0", "text/html", ""],
      ["1", "message/rfc822", "Lunch.eml"],
      ["1.0", "multipart/mixed", ""],
      ["1.0.0", "multipart/alternative", ""],
      ["1.0.0.0", "text/plain", ""],
      ["1.0.0.1", "text/html", ""],
      ["1.0.1", "application/pdf", "menu.pdf"],
    ]);
    const rfc = parts.get("1");
    expect(rfc?.body?.attachmentId).toMatch(/^ANGjdJ/);
    expect(rfc?.body?.data).toBeUndefined();
    expect(rfc?.body?.size).toBe(INNER.length);
    expect(rfc?.parts).toHaveLength(1);
    // The original's root carries the original's headers; multipart bodies are {size: 0}.
    const root = parts.get("1.0");
    expect(root?.headers?.find((h) => h.name === "Subject")?.value).toBe("Lunch");
    expect(root?.headers?.find((h) => h.name === "From")?.value).toBe("Bob <bob@example.org>");
    expect(root?.body).toEqual({ size: 0 });
    // Inner text is served like any body: inline and converted to UTF-8.
    expect(Buffer.from(parts.get("1.0.0.0")?.body?.data as string, "base64url").toString()).toBe(
      "Café at one? innerword",
    );
    expect(parts.get("1.0.0.0")?.body?.size).toBe(Buffer.byteLength("Caf\xe9 at one? innerword", "latin1"));
    // attachments.get: the rfc822 part is the whole .eml; an inner attachment is its own bytes.
    expect((await attachment(id, rfc)).equals(INNER)).toBe(true);
    expect((await attachment(id, parts.get("1.0.1"))).equals(PDF)).toBe(true);
    // The snippet is the forwarding note's, never the original's text.
    expect(msg.snippet).toBe("See the attached message. outerword");
  });

  it("ground truth: the .eml is the message's one attachment; the original's parts are not", async () => {
    const { id } = await emu.control.deliver(ALICE, { raw: forward(true), labelIds: ["INBOX"] });
    const truth = (await emu.control.mailbox(ALICE)).messages.find((m) => m.id === id);
    expect(truth?.attachments).toEqual([{ partId: "1", filename: "Lunch.eml", size: INNER.length }]);
    const listed = (await api.users.messages.list({ userId: "me", q: "has:attachment outerword" })).data.messages?.map(
      (m) => m.id,
    );
    expect(listed).toContain(id);
  });

  it('a nameless attached message: filename "", still an attachmentId and one attachment (filename null)', async () => {
    const { id } = await emu.control.deliver(ALICE, { raw: forward(false), labelIds: ["INBOX"] });
    const rfc = byPartId(
      (await api.users.messages.get({ userId: "me", id })).data.payload as gmail_v1.Schema$MessagePart,
    ).get("1");
    expect(rfc?.filename).toBe("");
    expect((await attachment(id, rfc)).equals(INNER)).toBe(true);
    expect(rfc?.parts?.[0]?.partId).toBe("1.0");
    expect((await emu.control.mailbox(ALICE)).messages.find((m) => m.id === id)?.attachments).toEqual([
      { partId: "1", filename: null, size: INNER.length },
    ]);
  });

  it("an attached message inside an attached message expands too, and its parts are reachable", async () => {
    const nested = forward(true, INNER, "nested");
    const { id } = await emu.control.deliver(ALICE, { raw: forward(true, nested), labelIds: ["INBOX"] });
    const parts = byPartId(
      (await api.users.messages.get({ userId: "me", id })).data.payload as gmail_v1.Schema$MessagePart,
    );
    expect(parts.get("1.0.1")?.mimeType).toBe("message/rfc822");
    expect(parts.get("1.0.1.0.1")?.filename).toBe("menu.pdf");
    expect((await attachment(id, parts.get("1.0.1"))).equals(INNER)).toBe(true);
    expect((await attachment(id, parts.get("1.0.1.0.1"))).equals(PDF)).toBe(true);
    expect(
      (await emu.control.mailbox(ALICE)).messages.find((m) => m.id === id)?.attachments.map((a) => a.partId),
    ).toEqual(["1"]);
  });

  it.skipIf(!samplesPresent)(
    "every part, inside the attached message too, has the recorded part shape (partId, mimeType, filename, headers, body)",
    async () => {
      const { id } = await emu.control.deliver(ALICE, { raw: forward(true), labelIds: ["INBOX"] });
      const msg = (await api.users.messages.get({ userId: "me", id })).data;
      const recorded = [
        "messages_get_full_multipart_mixed_attachments_2024-10.json",
        "messages_get_full_text_plain_with_headers.json",
        "messages_get_full_iso8859_html_converted.json",
      ]
        .map(recordedMessage)
        .flatMap((m) => [...byPartId(m.payload as gmail_v1.Schema$MessagePart).values()]);
      const withoutParts = (p: gmail_v1.Schema$MessagePart) =>
        Object.fromEntries(Object.entries(p).filter(([k]) => k !== "parts"));
      const shape = shapeOf(...recorded.map(withoutParts));
      for (const p of byPartId(msg.payload as gmail_v1.Schema$MessagePart).values())
        expect(shapeDiff(withoutParts(p), shape), p.partId as string).toEqual([]);
    },
  );
});

describe("attached messages, opaque (rfc822Expanded: false)", () => {
  it("the rfc822 part is a leaf with an attachmentId; the ground truth is the same", async () => {
    const { id } = await emu.control.deliver(ALICE, { raw: forward(true), labelIds: ["INBOX"] });
    await emu.control.updateSettings({ rfc822Expanded: false });
    try {
      const msg = (await api.users.messages.get({ userId: "me", id })).data;
      const rfc = msg.payload?.parts?.[1];
      expect(rfc?.mimeType).toBe("message/rfc822");
      expect(rfc?.parts).toBeUndefined();
      expect((await attachment(id, rfc)).equals(INNER)).toBe(true);
      expect((await emu.control.mailbox(ALICE)).messages.find((m) => m.id === id)?.attachments).toEqual([
        { partId: "1", filename: "Lunch.eml", size: INNER.length },
      ]);
    } finally {
      await emu.control.updateSettings({ rfc822Expanded: true });
    }
    // Back on: the same message is served expanded again.
    expect((await api.users.messages.get({ userId: "me", id })).data.payload?.parts?.[1]?.parts).toHaveLength(1);
  });
});

describe("generated forwards, served", () => {
  let gen: Emulator;
  beforeAll(async () => {
    gen = await startEmulator({ seed: 42, messages: 300, accounts: [ALICE], addedNotFoundRate: 0 });
  });
  afterAll(async () => {
    await gen.close();
  });

  it("each forward has one rfc822 part, expanded, listed as its one attachment beside its own; some notes are HTML-only (the first text/plain is the original's)", async () => {
    const { api: genApi } = await clientFor(gen);
    const truth = await gen.control.mailbox(ALICE);
    let forwards = 0;
    let htmlOnly = 0;
    for (const m of truth.messages) {
      const msg = (await genApi.users.messages.get({ userId: "me", id: m.id })).data;
      const subject = msg.payload?.headers?.find((h) => h.name === "Subject")?.value ?? "";
      if (!subject.startsWith("Fwd: ")) continue;
      forwards++;
      const all = [...byPartId(msg.payload as gmail_v1.Schema$MessagePart).values()];
      const rfcs = all.filter(
        (p) =>
          p.mimeType === "message/rfc822" &&
          p.parts?.[0]?.headers?.find((h) => h.name === "Subject")?.value === subject.slice(5),
      );
      expect(rfcs).toHaveLength(1);
      const rfc = rfcs[0] as gmail_v1.Schema$MessagePart;
      expect(rfc.parts?.[0]?.partId).toBe(`${rfc.partId}.0`);
      const attachments = truth.messages.find((t) => t.id === m.id)?.attachments ?? [];
      expect(attachments.filter((a) => a.partId === rfc.partId)).toHaveLength(1);
      expect(attachments.some((a) => a.partId.startsWith(`${rfc.partId}.`))).toBe(false);
      const firstPlain = all.find((p) => p.mimeType === "text/plain" && !p.filename);
      if (firstPlain?.partId?.startsWith(`${rfc.partId}.`)) htmlOnly++;
      expect(msg.snippet).toContain(FORWARD_NOTE);
    }
    expect(forwards).toBeGreaterThan(3);
    expect(htmlOnly).toBeGreaterThan(0);
  });
});
