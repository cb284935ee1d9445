// The structural MIME splitter behind format=full: line ends, nesting, encodings, parameters.
import { describe, expect, it } from "vitest";
import { decodeBody, decodeWords, parseMime, parseStructuredHeader } from "../src/mime.ts";

const lf = [
  "From: =?ISO-8859-1?Q?Andr=E9?= Pirard <pirard@example.net>",
  "Subject: =?UTF-8?B?w6ljaGFudGlsbG9u?= =?UTF-8?B?IGZpbmFs?=",
  "Received: from a",
  "\tby b",
  'Content-Type: multipart/mixed; boundary="outer"',
  "",
  "preamble to ignore",
  "--outer",
  "Content-Type: multipart/alternative; boundary=inner",
  "",
  "--inner",
  "Content-Type: text/plain; charset=iso-8859-1",
  "Content-Transfer-Encoding: quoted-printable",
  "",
  "caf=E9 soft=",
  "break",
  "--inner",
  "Content-Type: text/html",
  "",
  "<p>hi</p>",
  "--inner--",
  "--outer",
  "Content-Type: application/octet-stream",
  "Content-Disposition: attachment; filename*0*=utf-8''r%C3%A9sum; filename*1*=%C3%A9.bin",
  "Content-Transfer-Encoding: base64",
  "",
  "AAEC",
  "/w==",
  "--outer",
  "Content-Type: text/plain",
  "",
  "no closing delimiter follows",
].join("\n");

describe("parseMime", () => {
  it("splits an LF-only message into Gmail's tree with decoded headers and bodies", () => {
    const root = parseMime(Buffer.from(lf, "latin1"));
    expect(root.mimeType).toBe("multipart/mixed");
    expect(root.headers.map((h) => h.name)).toEqual(["From", "Subject", "Received", "Content-Type"]);
    expect(root.headers[0]?.value).toBe("André Pirard <pirard@example.net>");
    expect(root.headers[1]?.value).toBe("échantillon final");
    expect(root.headers[2]?.value).toBe("from a\tby b");
    expect(root.children.map((c) => c.mimeType)).toEqual([
      "multipart/alternative",
      "application/octet-stream",
      "text/plain",
    ]);
    const [plain, html] = root.children[0]?.children ?? [];
    expect(decodeBody(plain!).toString("latin1")).toBe("café softbreak");
    expect(decodeBody(html!).toString()).toBe("<p>hi</p>");
    const bin = root.children[1]!;
    expect(bin.filename).toBe("résumé.bin");
    expect([...decodeBody(bin)]).toEqual([0, 1, 2, 255]);
    expect(decodeBody(root.children[2]!).toString()).toBe("no closing delimiter follows");
  });

  it("keeps CRLF bodies byte-exact and defaults to text/plain", () => {
    const root = parseMime(Buffer.from("Subject: x\r\n\r\nline one\r\nline two\r\n"));
    expect(root.mimeType).toBe("text/plain");
    expect(decodeBody(root).toString()).toBe("line one\r\nline two\r\n");
  });

  it("bounds multipart nesting", () => {
    let raw = "Content-Type: text/plain\r\n\r\nleaf";
    for (let i = 0; i < 200; i++)
      raw = `Content-Type: multipart/mixed; boundary=b${i}\r\n\r\n--b${i}\r\n${raw}\r\n--b${i}--\r\n`;
    let node = parseMime(Buffer.from(raw));
    let depth = 0;
    while (node.children[0]) {
      node = node.children[0];
      depth++;
    }
    expect(depth).toBe(64);
    expect(node.mimeType).toBe("application/octet-stream");
  });

  it("parses structured headers and leaves malformed encoded words alone", () => {
    expect(parseStructuredHeader('Text/HTML; Charset="utf-8"; name="a \\"b\\".html"')).toEqual({
      value: "text/html",
      params: { charset: "utf-8", name: 'a "b".html' },
    });
    expect(decodeWords("=?utf-8?B?###?= plain")).toBe("=?utf-8?B?###?= plain");
  });
});
