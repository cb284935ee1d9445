// parseGmailMessage over payload trees shaped as in the facts sheet §5 (real capture layout:
// root partId "", children "0", "1", grandchildren "1.0"; base64url bodies of the transfer-decoded
// bytes, CRLF kept; text/* converted to UTF-8 with the original charset header kept, as Gmail
// serves them — gmail-real-samples fact 1), then over the emulator's generated mailbox with an
// independent MIME parser (postal-mime over format=raw) as the oracle.
import { gmail } from "@googleapis/gmail";
import { OAuth2Client } from "google-auth-library";
import iconv from "iconv-lite";
import PostalMime from "postal-mime";
import { describe, expect, it } from "vitest";
import { startEmulator } from "@gmail-sync/emulator";
import { isGmailError } from "../../src/errors.ts";
import { decodeTextBytes, parseGmailMessage } from "../../src/gmail/parse-message.ts";
import type { GmailMessage } from "../../src/gmail/port.ts";
import { generatedSenderText } from "../helpers/sender-text.ts";

const b64 = (s: string | Buffer) => Buffer.from(s).toString("base64url");
const h = (name: string, value: string) => ({ name, value });

function multipartMessage(): GmailMessage {
  const html = "<html><body><p>Hello <b>HTML</b></p></body></html>";
  const text = "Bonjour d'horaire,\r\nsecond line\u0000\r\n";
  return {
    id: "18c2b0a1f0e0d0c0",
    threadId: "18c2b0a1f0e0d0c0",
    labelIds: ["INBOX", "UNREAD"],
    snippet: "Bonjour d&#39;horaire, second line",
    historyId: "5335794",
    internalDate: "1608279632000",
    sizeEstimate: 5286,
    payload: {
      partId: "",
      mimeType: "multipart/mixed",
      filename: "",
      headers: [
        h("From", "=?UTF-8?B?SsO8cmdlbiBNw7xsbGVy?= <jurgen@example.com>"),
        h("To", 'a@example.com, "Bee, B" <b@example.com>'),
        h("Cc", "Team: c@example.com, d@example.com;"),
        h("Subject", "=?ISO-8859-1?Q?Caf=E9?= au lait"),
        h("Message-ID", "<abc@mail.example.com>"),
        h("In-Reply-To", "<parent@mail.example.com>"),
      ],
      body: { size: 0 },
      parts: [
        {
          partId: "0",
          mimeType: "multipart/alternative",
          filename: "",
          headers: [h("Content-Type", "multipart/alternative; boundary=x")],
          body: { size: 0 },
          parts: [
            {
              partId: "0.0",
              mimeType: "text/plain",
              filename: "",
              headers: [h("Content-Type", 'text/plain; charset="iso-8859-1"')],
              body: { size: 30, data: b64(iconv.encode(text, "latin1")) },
            },
            {
              partId: "0.1",
              mimeType: "text/html",
              filename: "",
              headers: [h("Content-Type", "text/html; charset=UTF-8")],
              body: { size: html.length, data: b64(html) },
            },
          ],
        },
        {
          partId: "1",
          mimeType: "application/pdf",
          filename: "report.pdf",
          headers: [
            h("Content-Type", 'application/pdf; name="report.pdf"'),
            h("Content-Disposition", 'attachment; filename="report.pdf"'),
          ],
          body: { attachmentId: "ANGjdJ8abc", size: 123456 },
        },
        {
          partId: "2",
          mimeType: "image/png",
          filename: "",
          headers: [h("Content-Type", "image/png"), h("Content-ID", "<logo@x>"), h("Content-Disposition", "inline")],
          body: { size: 4, data: b64("\x89PNG") },
        },
      ],
    },
  };
}

describe("parseGmailMessage", () => {
  it("maps ids, dates, labels, decoded headers and addresses", () => {
    const p = parseGmailMessage(multipartMessage());
    expect(p.gmailId).toBe("18c2b0a1f0e0d0c0");
    expect(p.threadId).toBe("18c2b0a1f0e0d0c0");
    expect(p.historyId).toBe("5335794");
    expect(p.internalDate?.toISOString()).toBe("2020-12-18T08:20:32.000Z");
    expect(p.labelIds).toEqual(["INBOX", "UNREAD"]);
    expect(p.fromAddress).toBe("Jürgen Müller <jurgen@example.com>");
    expect(p.toAddresses).toEqual(["a@example.com", "Bee, B <b@example.com>"]);
    expect(p.ccAddresses).toEqual(["c@example.com", "d@example.com"]);
    expect(p.subject).toBe("Café au lait");
    expect(p.messageIdHeader).toBe("<abc@mail.example.com>");
    expect(p.inReplyTo).toBe("<parent@mail.example.com>");
    expect(p.sizeEstimate).toBe(5286);
  });

  it("prefers text/plain, decodes its charset, normalises line ends and strips NUL", () => {
    const p = parseGmailMessage(multipartMessage());
    expect(p.bodyText).toBe("Bonjour d'horaire,\nsecond line\n");
    expect(p.bodyText).not.toContain("\u0000");
  });

  it("falls back to HTML rendered as text", () => {
    const m = multipartMessage();
    const alt = m.payload!.parts![0]!;
    alt.parts = [alt.parts![1]!];
    const p = parseGmailMessage(m);
    expect(p.bodyText).toContain("Hello HTML");
    expect(p.bodyText).not.toContain("<b>");
  });

  it("lists attachment parts and inline parts with a Content-ID", () => {
    const p = parseGmailMessage(multipartMessage());
    expect(p.attachments).toEqual([
      {
        partId: "1",
        filename: "report.pdf",
        mimeType: "application/pdf",
        charset: null,
        contentId: null,
        size: 123456,
        attachmentId: "ANGjdJ8abc",
        inlineData: null,
      },
      {
        partId: "2",
        filename: null,
        mimeType: "image/png",
        charset: null,
        contentId: "logo@x",
        size: 4,
        attachmentId: null,
        inlineData: b64("\x89PNG"),
      },
    ]);
  });

  it("handles a single-part message and a message without payload", () => {
    const single = parseGmailMessage({
      id: "a1",
      threadId: "a1",
      payload: {
        partId: "",
        mimeType: "text/plain",
        filename: "",
        headers: [h("Subject", "hi")],
        body: { size: 2, data: b64("hi") },
      },
    });
    expect(single.bodyText).toBe("hi");
    expect(single.attachments).toEqual([]);
    const bare = parseGmailMessage({ id: "a2", threadId: "a2" });
    expect(bare).toMatchObject({
      bodyText: null,
      subject: null,
      fromAddress: null,
      toAddresses: [],
      labelIds: [],
      internalDate: null,
      historyId: null,
    });
  });

  it("throws a permanent ParseError on structurally invalid input, nothing else", () => {
    for (const bad of [
      null,
      {},
      { id: "x" },
      { id: "x", threadId: "x", payload: "nope" },
      { id: "x", threadId: "x", labelIds: "INBOX" },
    ]) {
      let thrown: unknown;
      try {
        parseGmailMessage(bad as unknown as GmailMessage);
      } catch (e) {
        thrown = e;
      }
      expect(isGmailError(thrown, "permanent"), JSON.stringify(bad)).toBe(true);
    }
  });

  it("reads text bodies as the UTF-8 Gmail serves, whatever charset the part declares (no double decoding)", () => {
    // Gmail converts text/* body.data to UTF-8 and keeps the declared charset (windows-1252 rules
    // for iso-8859-1): decoding those bytes as the declared charset again gives mojibake.
    const cases: Array<[string, string]> = [
      ["iso-8859-1", "Café – 10 € “quoted”"],
      ["windows-1252", "Preis: 12,50 € … ‘Grüße’"],
      ["iso-2022-jp", "会議の議事録をお送りします。"],
      ["shift_jis", "よろしくお願いいたします"],
      ["gbk", "请查收附件中的报告"],
      ["koi8-r", "Здравствуйте, коллеги!"],
    ];
    for (const [charset, text] of cases) {
      const p = parseGmailMessage({
        id: "c1",
        threadId: "c1",
        payload: {
          partId: "",
          mimeType: "text/plain",
          filename: "",
          headers: [h("Content-Type", `text/plain; charset="${charset}"`)],
          body: { size: 99, data: b64(Buffer.from(text, "utf8")) },
        },
      });
      expect(p.bodyText, charset).toBe(text);
    }
  });

  it("still decodes bytes that were passed through unconverted with their declared charset", () => {
    // iconv-lite cannot encode ISO-2022-JP: its bytes are written out (会議の議事録).
    const jis = Buffer.from("1b244232713544244e35443b764f3f1b2842", "hex");
    for (const [charset, text, bytes] of [
      ["iso-8859-1", "Café crème", iconv.encode("Café crème", "latin1")],
      ["iso-2022-jp", "会議の議事録", jis],
      ["koi8-r", "Здравствуйте", iconv.encode("Здравствуйте", "koi8-r")],
    ] as const) {
      const p = parseGmailMessage({
        id: "c2",
        threadId: "c2",
        payload: {
          partId: "",
          mimeType: "text/plain",
          filename: "",
          headers: [h("Content-Type", `text/plain; charset=${charset}`)],
          body: { size: 9, data: b64(bytes) },
        },
      });
      expect(p.bodyText, charset).toBe(text);
    }
  });

  it("gives the sender's text for UTF-8 mislabelled iso-8859-1 / windows-1252 / us-ascii, which Gmail serves as mojibake", () => {
    // Gmail converts by the label (windows-1252 rules), so UTF-8 bytes arrive as their windows-1252
    // reading: "Don’t" as "Donâ€™t" (emulator/src/charset.ts, the recorded iso-8859-1 sample).
    const text = "Don’t miss this week’s offers » Café – 9 € ✓\r\nsecond line\r\n";
    const mojibake = Buffer.from(new TextDecoder("windows-1252").decode(Buffer.from(text, "utf8")), "utf8");
    const single = (contentType: string, data: Buffer): GmailMessage => ({
      id: "m1",
      threadId: "m1",
      payload: {
        partId: "",
        mimeType: contentType.split(";")[0],
        filename: "",
        headers: [h("Content-Type", contentType)],
        body: { size: 99, data: b64(data) },
      },
    });
    for (const label of ["iso-8859-1", '"ISO-8859-1"', "windows-1252", "us-ascii"]) {
      expect(parseGmailMessage(single(`text/plain; charset=${label}`, mojibake)).bodyText, label).toBe(
        text.replace(/\r\n/g, "\n"),
      );
    }
    // HTML-only: repaired before html-to-text.
    const html = Buffer.from(
      new TextDecoder("windows-1252").decode(Buffer.from("<p>Café opening hours – Monday</p>", "utf8")),
      "utf8",
    );
    expect(parseGmailMessage(single("text/html; charset=iso-8859-1", html)).bodyText).toBe(
      "Café opening hours – Monday",
    );
    // A body served by reference (attachments.get: the raw UTF-8 bytes) reads as the sender's text too.
    expect(decodeTextBytes(Buffer.from(text, "utf8"), "iso-8859-1")).toBe(text.replace(/\r\n/g, "\n"));
    // Real Latin-1 text served converted, and mojibake under a label Gmail does not read as windows-1252, stay as served.
    for (const [label, served] of [
      ["iso-8859-1", "Ã la carte, naïve, Grüße"],
      ["koi8-r", "cafÃ©"],
      ["utf-8", "cafÃ©"],
    ] as const) {
      expect(
        parseGmailMessage(single(`text/plain; charset=${label}`, Buffer.from(served, "utf8"))).bodyText,
        label,
      ).toBe(served);
    }
  });

  it("an attached message is one attachment: its body and attachments are never the outer message's", () => {
    const inner = {
      partId: "1.0",
      mimeType: "multipart/mixed",
      filename: "",
      headers: [
        h("From", "Inner <inner@example.com>"),
        h("Subject", "Original"),
        h("Content-Type", "multipart/mixed; boundary=i"),
      ],
      body: { size: 0 },
      parts: [
        {
          partId: "1.0.0",
          mimeType: "text/plain",
          filename: "",
          headers: [h("Content-Type", "text/plain; charset=UTF-8")],
          body: { size: 14, data: b64("Inner body text") },
        },
        {
          partId: "1.0.1",
          mimeType: "application/pdf",
          filename: "inner.pdf",
          headers: [h("Content-Type", "application/pdf")],
          body: { attachmentId: "ANGjdJinner", size: 900 },
        },
      ],
    };
    const outer = (rfc822: Record<string, unknown>): GmailMessage => ({
      id: "f1",
      threadId: "f1",
      payload: {
        partId: "",
        mimeType: "multipart/mixed",
        filename: "",
        headers: [h("Subject", "Fwd: Original")],
        body: { size: 0 },
        parts: [
          {
            partId: "0",
            mimeType: "text/html",
            filename: "",
            headers: [h("Content-Type", "text/html; charset=UTF-8")],
            body: { size: 20, data: b64("<p>See below</p>") },
          },
          rfc822,
        ],
      },
    });
    const expanded = parseGmailMessage(
      outer({
        partId: "1",
        mimeType: "message/rfc822",
        filename: "Original.eml",
        headers: [h("Content-Type", "message/rfc822")],
        body: { attachmentId: "ANGjdJeml", size: 2000 },
        parts: [inner],
      }),
    );
    expect(expanded.bodyText).toBe("See below"); // the HTML-only outer body, not the forwarded text
    expect(expanded.attachments).toHaveLength(1);
    expect(expanded.attachments[0]).toMatchObject({
      partId: "1",
      mimeType: "message/rfc822",
      filename: "Original.eml",
      attachmentId: "ANGjdJeml",
    });
    // The same message with the rfc822 part served as a leaf (no parts).
    const opaque = parseGmailMessage(
      outer({
        partId: "1",
        mimeType: "message/rfc822",
        filename: "",
        headers: [h("Content-Type", "message/rfc822")],
        body: { attachmentId: "ANGjdJeml", size: 2000 },
      }),
    );
    expect(opaque.bodyText).toBe("See below");
    expect(opaque.attachments.map((a) => a.partId)).toEqual(["1"]);
    // Expanded without an attachmentId: the forwarded message is rebuilt from its parts.
    const rebuilt = parseGmailMessage(
      outer({
        partId: "1",
        mimeType: "message/rfc822",
        filename: "",
        headers: [h("Content-Type", "message/rfc822")],
        body: { size: 2000 },
        parts: [inner],
      }),
    );
    expect(rebuilt.attachments).toHaveLength(1);
    const eml = Buffer.from(rebuilt.attachments[0]!.inlineData ?? "", "base64url").toString("utf8");
    expect(eml).toContain("Subject: Original");
    expect(eml).toContain("Inner body text");
  });

  it("a nameless text body served by reference is the body (bodyRef), not an attachment", () => {
    const p = parseGmailMessage({
      id: "b1",
      threadId: "b1",
      payload: {
        partId: "",
        mimeType: "multipart/mixed",
        filename: "",
        headers: [],
        body: { size: 0 },
        parts: [
          {
            partId: "0",
            mimeType: "text/html",
            filename: "",
            headers: [h("Content-Type", "text/html; charset=windows-1252")],
            body: { attachmentId: "ANGjdJbig", size: 3_000_000 },
          },
          {
            partId: "1",
            mimeType: "text/plain",
            filename: "notes.txt",
            headers: [h("Content-Type", "text/plain"), h("Content-Disposition", "attachment; filename=notes.txt")],
            body: { attachmentId: "ANGjdJtxt", size: 10 },
          },
        ],
      },
    });
    expect(p.bodyText).toBeNull();
    expect(p.bodyRef).toEqual({ partId: "0", attachmentId: "ANGjdJbig", charset: "windows-1252", html: true });
    expect(p.attachments.map((a) => a.partId)).toEqual(["1"]);
  });

  it("an unknown charset falls back to UTF-8 instead of throwing", () => {
    const p = parseGmailMessage({
      id: "a3",
      threadId: "a3",
      payload: {
        partId: "",
        mimeType: "text/plain",
        filename: "",
        headers: [h("Content-Type", "text/plain; charset=x-klingon")],
        body: { size: 5, data: b64("héllo") },
      },
    });
    expect(p.bodyText).toBe("héllo");
  });
});

describe("parseGmailMessage over the emulator's messages", () => {
  it("agrees with postal-mime on format=raw: subject, sender, body text, attachment count", async () => {
    const email = "parse@example.com";
    const emu = await startEmulator({ accounts: [email], messages: 40, seed: 11 });
    try {
      const auth = new OAuth2Client({
        clientId: emu.clientId,
        clientSecret: emu.clientSecret,
        endpoints: { oauth2TokenUrl: emu.tokenUrl },
      });
      auth.setCredentials({ refresh_token: await emu.control.issueRefreshToken(email) });
      const api = gmail({ version: "v1", auth, rootUrl: emu.gmailRootUrl, retry: false });
      const norm = (v: string | null | undefined) =>
        (v ?? "")
          .replace(/\r\n/g, "\n")
          .replace(/\u0000/g, "")
          .trim();
      const ids = (await emu.control.mailbox(email)).messages.map((m) => m.id);
      expect(ids.length).toBe(40);
      let withAttachments = 0;
      for (const id of ids) {
        const full = (await api.users.messages.get({ userId: "me", id, format: "full" })).data;
        const raw = (await api.users.messages.get({ userId: "me", id, format: "raw" })).data.raw ?? "";
        const oracle = await PostalMime.parse(Buffer.from(raw, "base64url"));
        const p = parseGmailMessage(full);
        expect(norm(p.subject), id).toBe(norm(oracle.subject));
        // postal-mime reads mislabelled mail by its label; the sender's text has the sentences back.
        if (oracle.text !== undefined) expect(norm(p.bodyText), id).toBe(norm(generatedSenderText(oracle.text).text));
        else if (oracle.html !== undefined) expect(norm(p.bodyText).length, id).toBeGreaterThan(0);
        expect(p.fromAddress ?? "", id).toContain(oracle.from?.address ?? "");
        expect(p.attachments.length, id).toBe(oracle.attachments.length);
        if (p.attachments.length > 0) withAttachments++;
      }
      expect(withAttachments).toBeGreaterThan(0); // the corpus exercised attachment parts
    } finally {
      await emu.close();
    }
  });
});
