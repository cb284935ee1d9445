// Charsets as Gmail serves them: text/* body.data converted to UTF-8 by the declared charset with
// the WHATWG rules (iso-8859-1 read as windows-1252), the part's Content-Type kept verbatim and
// body.size the original byte count (gmail-real-samples/messages_get_full_iso8859_html_converted.json,
// charset_conversion_evidence.txt); a mislabelled body is converted by its label (mojibake, as the
// recording shows); attachments stay bytes. charsetConversion: false serves the bytes as sent.
import type { gmail_v1 } from "@googleapis/gmail";
import iconv from "iconv-lite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  encodeIso2022Jp,
  LEGACY_CHARSETS,
  legacyLabel,
  legacySentences,
  type LegacyCharset,
} from "../src/generate/index.ts";
import { decodeBody, parseMime, type MimeNode } from "../src/mime.ts";
import { startEmulator, type Emulator } from "../src/server.ts";
import { clientFor } from "./helpers.ts";
import { loadSample, sampleShape, samplesPresent, shapeDiff } from "./sample-shape.ts";

const ALICE = "alice@example.com";
let emu: Emulator;
let api: gmail_v1.Gmail;

beforeAll(async () => {
  emu = await startEmulator({ seed: 11, accounts: [ALICE], addedNotFoundRate: 0 });
  ({ api } = await clientFor(emu));
});
afterAll(async () => {
  await emu.close();
});

const windows1252 = new TextDecoder("windows-1252");

function qp(bytes: Buffer): string {
  let out = "";
  let col = 0;
  for (const b of bytes) {
    const piece =
      b === 0x0d || b === 0x0a
        ? String.fromCharCode(b)
        : b >= 33 && b <= 126 && b !== 61
          ? String.fromCharCode(b)
          : b === 32
            ? " "
            : `=${b.toString(16).toUpperCase().padStart(2, "0")}`;
    if (b === 0x0a) col = 0;
    else if (col + piece.length > 73) {
      out += "=\r\n";
      col = 0;
    }
    out += piece;
    if (b !== 0x0a && b !== 0x0d) col += piece.length;
  }
  return out;
}

/** A single-part message whose body is `bytes` under `contentType`, in the given transfer encoding. */
function singlePart(
  contentType: string,
  bytes: Buffer,
  cte: "quoted-printable" | "base64" | "7bit" | "8bit",
  subject = "charset test",
): Buffer {
  const body =
    cte === "base64"
      ? (bytes.toString("base64").match(/.{1,76}/g) ?? []).join("\r\n")
      : cte === "quoted-printable"
        ? qp(bytes)
        : bytes.toString("latin1");
  const head = `From: Sender <sender@example.net>\r\nTo: ${ALICE}\r\nSubject: ${subject}\r\nMessage-ID: <${Math.random().toString(36).slice(2)}@example.net>\r\nMIME-Version: 1.0\r\nContent-Type: ${contentType}\r\nContent-Transfer-Encoding: ${cte}\r\n\r\n`;
  // The body is exactly `bytes`: a line break is added only after base64 lines.
  return Buffer.concat([
    Buffer.from(head, "latin1"),
    Buffer.from(body, "latin1"),
    Buffer.from(cte === "base64" ? "\r\n" : ""),
  ]);
}

async function deliverAndGet(raw: Buffer): Promise<{ id: string; msg: gmail_v1.Schema$Message }> {
  const { id } = await emu.control.deliver(ALICE, { raw, labelIds: ["INBOX"] });
  return { id, msg: (await api.users.messages.get({ userId: "me", id })).data };
}

const served = (part: gmail_v1.Schema$MessagePart | undefined): Buffer =>
  Buffer.from(part?.body?.data ?? "", "base64url");
const header = (part: gmail_v1.Schema$MessagePart | undefined, name: string) =>
  part?.headers?.find((h) => h.name?.toLowerCase() === name.toLowerCase())?.value;

interface Case {
  name: string;
  charset: string;
  text: string;
  encode: (text: string) => Buffer;
  cte: "quoted-printable" | "base64" | "7bit";
}

// Each text in the language of its charset; windows-1252 texts use bytes 0x80–0x9F (€ “ ” ’ – … ™ Œ).
const CASES: Case[] = [
  {
    name: "windows-1252 bytes labelled iso-8859-1",
    charset: "iso-8859-1",
    text: "Prix : 1 250 € – « très “bien” », l’Œuvre™…\r\nGrüße aus Zürich\r\n",
    encode: (t) => iconv.encode(t, "windows-1252"),
    cte: "quoted-printable",
  },
  {
    name: "windows-1252",
    charset: "windows-1252",
    text: "Die Rechnung über 99 € ist „bezahlt“ – danke!\r\n",
    encode: (t) => iconv.encode(t, "windows-1252"),
    cte: "base64",
  },
  {
    name: "ISO-2022-JP",
    charset: "ISO-2022-JP",
    text: "お世話になっております。\r\n来週の会議の資料です。ABC 123\r\n",
    encode: encodeIso2022Jp,
    cte: "7bit",
  },
  {
    name: "Shift_JIS",
    charset: "Shift_JIS",
    text: "見積書を添付しました。ご確認ください。\r\n",
    encode: (t) => iconv.encode(t, "shift_jis"),
    cte: "base64",
  },
  {
    name: "GB2312",
    charset: "gb2312",
    text: "您好，附件是本月的销售报告，请查收。\r\n",
    encode: (t) => iconv.encode(t, "gb2312"),
    cte: "base64",
  },
  {
    name: "KOI8-R",
    charset: "koi8-r",
    text: "Добрый день! Отчёт за прошлый месяц готов.\r\n",
    encode: (t) => iconv.encode(t, "koi8-r"),
    cte: "quoted-printable",
  },
];

describe("charset conversion (charsetConversion on, Gmail's default)", () => {
  for (const c of CASES) {
    it(`${c.name}: body.data is the text in UTF-8, Content-Type keeps charset=, body.size is the original byte count`, async () => {
      const bytes = c.encode(c.text);
      expect(new TextDecoder(c.charset).decode(bytes)).toBe(c.text); // the fixture is what it claims
      const contentType = `text/plain; charset="${c.charset}"`;
      const { msg } = await deliverAndGet(singlePart(contentType, bytes, c.cte));
      const p = msg.payload;
      expect(served(p).toString("utf8")).toBe(c.text);
      expect(header(p, "Content-Type")).toBe(contentType);
      expect(p?.body?.size).toBe(bytes.length);
      // The snippet is made from the converted text.
      expect(msg.snippet).toBe(
        c.text.replace(/\s+/g, " ").trim().replace(/'/g, "&#39;").replace(/"/g, "&quot;").slice(0, 200),
      );
    });
  }

  it("a mislabelled body (UTF-8 bytes declared iso-8859-1) is converted by its label: windows-1252 mojibake, as Gmail served the recorded one", async () => {
    const text = "Don’t miss this week’s offers » Café\r\n";
    const bytes = Buffer.from(text, "utf8");
    const { msg } = await deliverAndGet(singlePart("text/html; charset=iso-8859-1", bytes, "quoted-printable"));
    const out = served(msg.payload).toString("utf8");
    expect(out).toBe(windows1252.decode(bytes));
    expect(out).toContain("Donâ€™t");
    expect(out).toContain("Â»");
    expect(msg.payload?.body?.size).toBe(bytes.length);
  });

  it("no charset, or one nobody knows: UTF-8 bytes pass, other bytes are read as windows-1252", async () => {
    const utf8 = Buffer.from("Zoë — ünïcode ✓\r\n", "utf8");
    expect(served((await deliverAndGet(singlePart("text/plain", utf8, "8bit"))).msg.payload).equals(utf8)).toBe(true);
    const latin = iconv.encode("Café € 5\r\n", "windows-1252");
    expect(
      served((await deliverAndGet(singlePart("text/plain", latin, "quoted-printable"))).msg.payload).toString(),
    ).toBe("Café € 5\r\n");
    expect(
      served(
        (await deliverAndGet(singlePart("text/plain; charset=x-unknown-8bit", latin, "base64"))).msg.payload,
      ).toString(),
    ).toBe("Café € 5\r\n");
    // Invalid bytes under a UTF-8 label become U+FFFD: body.data is always valid UTF-8.
    const bad = Buffer.from([0x61, 0xff, 0x62, 0x0d, 0x0a]);
    const out = served((await deliverAndGet(singlePart("text/plain; charset=utf-8", bad, "base64"))).msg.payload);
    expect(out.toString("utf8")).toBe("a\ufffdb\r\n");
  });

  it("converts every text part of a multipart message; an attachment (named) stays bytes in attachments.get", async () => {
    const russian = "Встреча переносится на среду.\r\n";
    const html = "<p>Встреча переносится на среду.</p>\r\n";
    const note = iconv.encode("Liste: Äpfel, Birnen – 3 €\r\n", "windows-1252");
    const raw = Buffer.concat([
      Buffer.from(
        `From: a@example.net\r\nTo: ${ALICE}\r\nSubject: mixed\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=m\r\n\r\n--m\r\nContent-Type: multipart/alternative; boundary=a\r\n\r\n--a\r\nContent-Type: text/plain; charset=KOI8-R\r\nContent-Transfer-Encoding: base64\r\n\r\n${iconv.encode(russian, "koi8-r").toString("base64")}\r\n--a\r\nContent-Type: text/html; charset=KOI8-R\r\nContent-Transfer-Encoding: base64\r\n\r\n${iconv.encode(html, "koi8-r").toString("base64")}\r\n--a--\r\n--m\r\nContent-Type: text/plain; charset=iso-8859-1; name="liste.txt"\r\nContent-Disposition: attachment; filename="liste.txt"\r\nContent-Transfer-Encoding: base64\r\n\r\n${note.toString("base64")}\r\n--m--\r\n`,
      ),
    ]);
    const { id, msg } = await deliverAndGet(raw);
    const [alt, attachment] = msg.payload?.parts ?? [];
    expect(served(alt?.parts?.[0]).toString()).toBe(russian);
    expect(served(alt?.parts?.[1]).toString()).toBe(html);
    expect(msg.snippet).toBe("Встреча переносится на среду.");
    expect(attachment?.body?.data).toBeUndefined();
    const att = (
      await api.users.messages.attachments.get({
        userId: "me",
        messageId: id,
        id: attachment?.body?.attachmentId as string,
      })
    ).data;
    expect(Buffer.from(att.data as string, "base64url").equals(note)).toBe(true);
    expect(att.size).toBe(note.length);
  });

  it("decodes iso-8859-1 encoded words in headers by windows-1252 rules too (the recording's Subject shows â€™)", async () => {
    const raw = singlePart(
      "text/plain; charset=utf-8",
      Buffer.from("x\r\n"),
      "7bit",
      "=?iso-8859-1?Q?Preis_=80_5_=96_l=92offre?= =?ISO-8859-1?B?4pyT?=",
    );
    const { msg } = await deliverAndGet(raw);
    expect(header(msg.payload, "Subject")).toBe(
      `Preis € 5 – l’offre${windows1252.decode(Buffer.from([0xe2, 0x9c, 0x93]))}`,
    );
  });

  it("charsetConversion false: body.data is the bytes as sent (the snippet is still text)", async () => {
    const bytes = iconv.encode("Счёт оплачен, спасибо.\r\n", "koi8-r");
    await emu.control.updateSettings({ charsetConversion: false });
    try {
      const { id, msg } = await deliverAndGet(singlePart("text/plain; charset=koi8-r", bytes, "quoted-printable"));
      expect(served(msg.payload).equals(bytes)).toBe(true);
      expect(msg.snippet).toBe("Счёт оплачен, спасибо.");
      // The same message, fetched again with the setting back on, is converted (the render cache follows settings).
      await emu.control.updateSettings({ charsetConversion: true });
      expect(served((await api.users.messages.get({ userId: "me", id })).data.payload).toString()).toBe(
        "Счёт оплачен, спасибо.\r\n",
      );
    } finally {
      await emu.control.updateSettings({ charsetConversion: true });
    }
  });
});

describe.skipIf(!samplesPresent)(
  "against the recorded iso-8859-1 message (gmail-real-samples/messages_get_full_iso8859_html_converted.json)",
  () => {
    it("serves the same body.data and body.size Gmail served, and the same shape", async () => {
      const rec = loadSample("messages_get_full_iso8859_html_converted.json")?.body as gmail_v1.Schema$Message;
      const recorded = Buffer.from(rec.payload?.body?.data as string, "base64url");
      // Gmail's UTF-8 is the windows-1252 reading of the original bytes: re-encoding gives back
      // exactly body.size bytes (a Latin-1 reading would have left C1 controls, not € and ™).
      const original = iconv.encode(recorded.toString("utf8"), "windows-1252");
      expect(original.length).toBe(rec.payload?.body?.size);
      // Sent through the emulator as the original was (QP, iso-8859-1), it comes back as Gmail's.
      const { msg } = await deliverAndGet(
        singlePart(header(rec.payload, "Content-Type") as string, original, "quoted-printable"),
      );
      expect(served(msg.payload).equals(recorded)).toBe(true);
      expect(msg.payload?.body?.size).toBe(rec.payload?.body?.size);
      expect(shapeDiff(msg, sampleShape("messages_get_full_iso8859_html_converted.json")!)).toEqual([]);
    });
  },
);

describe("generated legacy-charset mail, served", () => {
  let gen: Emulator;
  beforeAll(async () => {
    gen = await startEmulator({ seed: 42, messages: 300, accounts: [ALICE] });
  });
  afterAll(async () => {
    await gen.close();
  });

  function textLeaves(
    node: MimeNode,
    id: string,
    out: Array<{ id: string; node: MimeNode }> = [],
  ): Array<{ id: string; node: MimeNode }> {
    if (node.children.length > 0) {
      for (const [i, c] of node.children.entries()) textLeaves(c, id === "" ? String(i) : `${id}.${i}`, out);
    } else if (node.mimeType.startsWith("text/") && node.filename === "") out.push({ id, node });
    return out;
  }

  it("every variant: body.data decoded as UTF-8 is the text written (mislabelled: its windows-1252 reading), charset= kept, size = bytes", async () => {
    const { api: genApi } = await clientFor(gen);
    const truth = await gen.control.mailbox(ALICE);
    const seen = new Set<LegacyCharset>();
    for (const m of truth.messages) {
      const raw = Buffer.from(
        (await genApi.users.messages.get({ userId: "me", id: m.id, format: "raw" })).data.raw as string,
        "base64url",
      );
      const leaves = textLeaves(parseMime(raw), "");
      const legacy = leaves.filter((l) => (l.node.params.charset ?? "").toLowerCase() !== "utf-8");
      if (legacy.length === 0) continue;
      const full = (await genApi.users.messages.get({ userId: "me", id: m.id })).data;
      const byId = new Map<string, gmail_v1.Schema$MessagePart>();
      const walk = (p: gmail_v1.Schema$MessagePart) => {
        byId.set(p.partId as string, p);
        for (const c of p.parts ?? []) walk(c);
      };
      walk(full.payload as gmail_v1.Schema$MessagePart);
      for (const { id, node } of legacy) {
        const part = byId.get(id);
        const label = node.params.charset as string;
        const bytes = decodeBody(node);
        expect(header(part, "Content-Type")).toBe(
          node.headers.find((h) => h.name.toLowerCase() === "content-type")?.value,
        );
        expect(part?.body?.size).toBe(bytes.length);
        const text = served(part).toString("utf8");
        const variant = LEGACY_CHARSETS.find(
          (c) =>
            legacyLabel(c).toLowerCase() === label.toLowerCase() &&
            legacySentences(c).some((s) =>
              text.includes(c === "mislabelled-utf8" ? windows1252.decode(Buffer.from(s)) : s),
            ),
        );
        expect(variant, `${label} in ${m.id}: ${text.slice(0, 80)}`).toBeDefined();
        seen.add(variant as LegacyCharset);
        if (variant === "mislabelled-utf8") expect(text).toBe(windows1252.decode(bytes));
        else expect(text).toBe(new TextDecoder(label).decode(bytes));
      }
    }
    expect([...seen].sort()).toEqual([...LEGACY_CHARSETS].sort());
  });
});
