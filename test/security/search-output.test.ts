// `gmail-sync search` prints mail text on a terminal: a crafted subject must not forge result
// lines (newlines), drive the terminal (ESC) or reorder what the reader sees (bidi controls).
import { describe, expect, it } from "vitest";
import { printable } from "../../src/commands/printable.ts";

describe("printable", () => {
  it("turns line breaks and tabs into spaces, so one hit is one line", () => {
    const forged = "Invoice\n2026-01-01  ceo@example.com  Wire the money\r\n\tnow\u2028done";
    const out = printable(forged);
    expect(out).not.toMatch(/[\n\r\t\u2028]/);
    expect(out).toBe("Invoice 2026-01-01  ceo@example.com  Wire the money now done");
  });

  it("replaces terminal controls and bidi overrides with U+FFFD", () => {
    expect(printable("a\u001b[2Jb\u0007c\u009bd")).toBe("a\ufffd[2Jb\ufffdc\ufffdd");
    // "evil\u202Emoc.elgoog" would display as "evilgoogle.com".
    expect(printable("evil\u202emoc.elgoog@x")).toBe("evil\ufffdmoc.elgoog@x");
    for (const c of [
      "\u200e",
      "\u200f",
      "\u202a",
      "\u202b",
      "\u202c",
      "\u202d",
      "\u2066",
      "\u2067",
      "\u2068",
      "\u2069",
      "\u061c",
    ])
      expect(printable(`x${c}y`)).toBe("x\ufffdy");
  });

  it("leaves ordinary text of any script alone", () => {
    const text = "Grüße — 東京 — مرحبا — café ✓";
    expect(printable(text)).toBe(text);
  });
});
