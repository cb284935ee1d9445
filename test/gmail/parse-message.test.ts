// parseGmailMessage over payload trees shaped as in the facts sheet §5 (real capture layout:
// root partId "", children "0", "1", grandchildren "1.0"; base64url bodies of the transfer-decoded
// bytes, charset not converted, CRLF kept), then over the emulator's generated mailbox with an
// independent MIME parser (postal-mime over format=raw) as the oracle.
import { gmail } from "@googleapis/gmail";
import { OAuth2Client } from "google-auth-library";
import iconv from "iconv-lite";
import PostalMime from "postal-mime";
import { describe, expect, it } from "vitest";
import { startEmulator } from "../../src/emulator/server.ts";
import { isGmailError } from "../../src/errors.ts";
import { parseGmailMessage } from "../../src/gmail/parse-message.ts";
import type { GmailMessage } from "../../src/gmail/port.ts";

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
        h("To", "a@example.com, \"Bee, B\" <b@example.com>"),
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
            { partId: "0.0", mimeType: "text/plain", filename: "", headers: [h("Content-Type", 'text/plain; charset="iso-8859-1"')], body: { size: 30, data: b64(iconv.encode(text, "latin1")) } },
            { partId: "0.1", mimeType: "text/html", filename: "", headers: [h("Content-Type", "text/html; charset=UTF-8")], body: { size: html.length, data: b64(html) } },
          ],
        },
        {
          partId: "1",
          mimeType: "application/pdf",
          filename: "report.pdf",
          headers: [h("Content-Type", 'application/pdf; name="report.pdf"'), h("Content-Disposition", 'attachment; filename="report.pdf"')],
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
      { partId: "1", filename: "report.pdf", mimeType: "application/pdf", charset: null, contentId: null, size: 123456, attachmentId: "ANGjdJ8abc", inlineData: null },
      { partId: "2", filename: null, mimeType: "image/png", charset: null, contentId: "logo@x", size: 4, attachmentId: null, inlineData: b64("\x89PNG") },
    ]);
  });

  it("handles a single-part message and a message without payload", () => {
    const single = parseGmailMessage({
      id: "a1",
      threadId: "a1",
      payload: { partId: "", mimeType: "text/plain", filename: "", headers: [h("Subject", "hi")], body: { size: 2, data: b64("hi") } },
    });
    expect(single.bodyText).toBe("hi");
    expect(single.attachments).toEqual([]);
    const bare = parseGmailMessage({ id: "a2", threadId: "a2" });
    expect(bare).toMatchObject({ bodyText: null, subject: null, fromAddress: null, toAddresses: [], labelIds: [], internalDate: null, historyId: null });
  });

  it("throws a permanent ParseError on structurally invalid input, nothing else", () => {
    for (const bad of [null, {}, { id: "x" }, { id: "x", threadId: "x", payload: "nope" }, { id: "x", threadId: "x", labelIds: "INBOX" }]) {
      let thrown: unknown;
      try {
        parseGmailMessage(bad as unknown as GmailMessage);
      } catch (e) {
        thrown = e;
      }
      expect(isGmailError(thrown, "permanent"), JSON.stringify(bad)).toBe(true);
    }
  });

  it("an unknown charset falls back to UTF-8 instead of throwing", () => {
    const p = parseGmailMessage({
      id: "a3",
      threadId: "a3",
      payload: { partId: "", mimeType: "text/plain", filename: "", headers: [h("Content-Type", "text/plain; charset=x-klingon")], body: { size: 5, data: b64("héllo") } },
    });
    expect(p.bodyText).toBe("héllo");
  });
});

describe("parseGmailMessage over the emulator's messages", () => {
  it("agrees with postal-mime on format=raw: subject, sender, body text, attachment count", async () => {
    const email = "parse@example.com";
    const emu = await startEmulator({ accounts: [email], messages: 40, seed: 11 });
    try {
      const auth = new OAuth2Client({ clientId: emu.clientId, clientSecret: emu.clientSecret, endpoints: { oauth2TokenUrl: emu.tokenUrl } });
      auth.setCredentials({ refresh_token: await emu.control.issueRefreshToken(email) });
      const api = gmail({ version: "v1", auth, rootUrl: emu.gmailRootUrl, retry: false });
      const norm = (v: string | null | undefined) => (v ?? "").replace(/\r\n/g, "\n").replace(/\u0000/g, "").trim();
      const ids = (await emu.control.mailbox(email)).messages.map((m) => m.id);
      expect(ids.length).toBe(40);
      let withAttachments = 0;
      for (const id of ids) {
        const full = (await api.users.messages.get({ userId: "me", id, format: "full" })).data;
        const raw = (await api.users.messages.get({ userId: "me", id, format: "raw" })).data.raw ?? "";
        const oracle = await PostalMime.parse(Buffer.from(raw, "base64url"));
        const p = parseGmailMessage(full);
        expect(norm(p.subject), id).toBe(norm(oracle.subject));
        if (oracle.text !== undefined) expect(norm(p.bodyText), id).toBe(norm(oracle.text));
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
