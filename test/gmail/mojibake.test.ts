// repairMislabelledUtf8: Gmail serves UTF-8 bytes declared iso-8859-1 / windows-1252 / us-ascii as
// their windows-1252 reading (emulator/src/charset.ts, gmail-real-samples fact 1); the repair gives
// the sender's text back, and leaves real Western text, other charsets and clean text alone.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { legacySentences } from "@gmail-sync/emulator/generate";
import { readAsWindows1252, repairMislabelledUtf8 } from "../../src/gmail/mojibake.ts";

const windows1252 = new TextDecoder("windows-1252");
/** What Gmail serves for `text` sent as UTF-8 under a windows-1252-family label. */
const served = (text: string) => windows1252.decode(Buffer.from(text, "utf8"));

describe("repairMislabelledUtf8", () => {
  it("repairs every sentence the emulator sends mislabelled, under each label Gmail reads as windows-1252", () => {
    for (const label of [
      "iso-8859-1",
      "ISO-8859-1",
      '"iso-8859-1"',
      "latin1",
      "windows-1252",
      "cp1252",
      "us-ascii",
      "ascii",
    ]) {
      for (const sentence of legacySentences("mislabelled-utf8")) {
        const text = `Hello,\r\n\r\n${sentence}\r\n\r\nThe team\r\n`;
        expect(served(text), "the input really is mojibake").not.toBe(text);
        expect(repairMislabelledUtf8(served(text), label), `${label}: ${sentence}`).toBe(text);
      }
    }
  });

  it("repairs the recorded shape and characters that go through windows-1252's undefined bytes, CJK and emoji", () => {
    expect(repairMislabelledUtf8("Stakeholdersâ€™ review", "iso-8859-1")).toBe("Stakeholders’ review");
    // Á is C3 81, Ý is C3 9D: 0x81 and 0x9D are undefined in windows-1252 and read as U+0081, U+009D.
    for (const text of [
      "ÁRPÁD ÝMIR Ðóra",
      "会議は十時からです。",
      "Ship it 🚀 today",
      "Zoë — ünïcode ✓",
      "Grüße aus Köln, 12 €",
    ]) {
      expect(repairMislabelledUtf8(served(text), "iso-8859-1"), text).toBe(text);
    }
  });

  it("property: any text without Latin-1 supplement characters or C1 controls comes back from its mojibake", () => {
    const text = fc
      .string({ unit: "grapheme", minLength: 1, maxLength: 60 })
      .filter((s) => /[^\u0000-\u007f]/u.test(s) && !/[\u0080-\u00ff]/u.test(s));
    fc.assert(fc.property(text, (s) => repairMislabelledUtf8(served(s), "windows-1252") === s));
  });

  it("leaves real Latin-1 / windows-1252 text alone, including words with Ã and Â", () => {
    const genuine = [
      ...legacySentences("iso-8859-1"),
      "Ã la carte",
      "NÃO ENVIAR, SÃO PAULO",
      "Â bientôt !",
      "naïve café, Grüße, Œuvre",
      "Größe: 5 m² · Preis ± 3 €",
      // Mentions mojibake next to real accents: the bytes as a whole are not UTF-8.
      "Le nom s'affiche « JosÃ© » au lieu de « José ».",
      // A UTF-8 reading would hold a C1 control (Â… is C2 85 → U+0085): real text has none.
      "Â… suite",
    ];
    for (const text of genuine) {
      expect(repairMislabelledUtf8(text, "iso-8859-1"), text).toBe(text);
      expect(repairMislabelledUtf8(text, "windows-1252"), text).toBe(text);
    }
  });

  it("decided: text whose only non-ASCII characters are mojibake pairs is repaired (indistinguishable from a mislabelled body)", () => {
    expect(repairMislabelledUtf8("Your name shows as JosÃ© in the list", "iso-8859-1")).toBe(
      "Your name shows as José in the list",
    );
  });

  it("leaves text alone under other labels, outside windows-1252, already repaired, or plain ASCII", () => {
    const mojibake = served("Café – Monday");
    for (const label of [null, undefined, "", "utf-8", "iso-8859-15", "iso-8859-2", "koi8-r", "shift_jis", "x-unknown"])
      expect(repairMislabelledUtf8(mojibake, label), String(label)).toBe(mojibake);
    // ✓ is not in windows-1252, so this is not one windows-1252 reading of some bytes.
    expect(repairMislabelledUtf8(`${mojibake} ✓`, "iso-8859-1")).toBe(`${mojibake} ✓`);
    expect(repairMislabelledUtf8("Café – Monday", "iso-8859-1")).toBe("Café – Monday");
    expect(repairMislabelledUtf8("plain ASCII text\r\n", "us-ascii")).toBe("plain ASCII text\r\n");
  });

  it("readAsWindows1252 follows the WHATWG label table", () => {
    for (const label of [
      "iso-8859-1",
      "ISO_8859-1",
      "latin1",
      "l1",
      "us-ascii",
      "ANSI_X3.4-1968",
      "windows-1252",
      "x-cp1252",
    ])
      expect(readAsWindows1252(label), label).toBe(true);
    for (const label of ["utf-8", "iso-8859-15", "windows-1250", "gb2312", "", null, "nonsense"])
      expect(readAsWindows1252(label), String(label)).toBe(false);
  });
});
