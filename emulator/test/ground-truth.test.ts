// The control API's ground truth for bodies (GET …/mailbox?bodies=true): each message's own
// text/plain body as its sender wrote it, decoded by the declared charset — UTF-8 mislabelled
// iso-8859-1 as the UTF-8 it is, not the mojibake Gmail serves; null without one; a forwarded
// message's text never stands for the outer body.
import iconv from "iconv-lite";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../src/server.ts";

let emu: Emulator;
const EMAIL = "truth@example.com";

beforeAll(async () => {
  emu = await startEmulator({ seed: 61, accounts: [EMAIL] });
});
afterAll(async () => {
  await emu.close();
});

it("gives the sender's text/plain body decoded by its charset (mislabelled UTF-8 as UTF-8), null for HTML-only, the outer body for a forward", async () => {
  const latin = Buffer.concat([
    Buffer.from(
      'From: a@example.com\r\nTo: truth@example.com\r\nSubject: x\r\nContent-Type: text/plain; charset="windows-1252"\r\nContent-Transfer-Encoding: 8bit\r\n\r\n',
    ),
    iconv.encode("Caf\u00e9 \u20ac 12,50 \u201cquoted\u201d\r\n", "windows-1252"),
  ]);
  const html = Buffer.from(
    "From: a@example.com\r\nSubject: h\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>only html</p>\r\n",
  );
  const forward = Buffer.from(
    [
      "From: b@example.com",
      "Subject: Fwd",
      'Content-Type: multipart/mixed; boundary="b1"',
      "",
      "--b1",
      "Content-Type: text/plain; charset=utf-8",
      "",
      "See the forwarded message.",
      "--b1",
      "Content-Type: message/rfc822",
      "",
      "From: c@example.com",
      "Subject: Original",
      "Content-Type: text/plain; charset=utf-8",
      "",
      "Inner text.",
      "--b1--",
      "",
    ].join("\r\n"),
  );
  const mislabelled = Buffer.concat([
    Buffer.from(
      "From: a@example.com\r\nSubject: m\r\nContent-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
    ),
    Buffer.from("Don\u2019t miss Caf\u00e9 \u2013 9 \u20ac \u2713\r\n", "utf8"),
  ]);
  const ids = [];
  for (const raw of [latin, html, forward, mislabelled]) ids.push((await emu.control.deliver(EMAIL, { raw })).id);
  const box = await emu.control.mailbox(EMAIL, { bodies: true });
  const text = (id: string) => box.messages.find((m) => m.id === id)?.bodyText;
  expect(text(ids[0] as string)?.trim()).toBe("Caf\u00e9 \u20ac 12,50 \u201cquoted\u201d");
  expect(text(ids[1] as string)).toBeNull();
  expect(text(ids[2] as string)?.trim()).toBe("See the forwarded message.");
  expect(text(ids[3] as string)?.trim()).toBe("Don\u2019t miss Caf\u00e9 \u2013 9 \u20ac \u2713");
  expect((await emu.control.mailbox(EMAIL)).messages[0]).not.toHaveProperty("bodyText");
});
