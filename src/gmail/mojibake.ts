// Undoes the one charset mistake Gmail bakes into body.data: UTF-8 bytes sent under a label it
// reads as windows-1252 (iso-8859-1, latin1, us-ascii, windows-1252…: the WHATWG table). Gmail
// trusts the label when it converts text/* to UTF-8 (emulator/src/charset.ts and its evidence; the
// recorded "Stakeholdersâ€™" is one), so "café" arrives as "cafÃ©". WHATWG's windows-1252 maps every
// byte to one character (0x81, 0x8D… to the C1 controls), so the served text can be turned back
// into the sender's bytes exactly, and those bytes read as UTF-8.
//
// Hand-written because no well-kept JavaScript library does this (ftfy is Python; npm's
// fix-latin1-to-utf8 is little used), and the whole repair is a reverse lookup plus Node's UTF-8
// validator.
// Deliberately narrow, so that legitimate Western text is never touched:
// - only for labels read as windows-1252, and only when every character of the text is in
//   windows-1252 (anything else means the text is not one windows-1252 reading of bytes);
// - the bytes must be valid UTF-8 as a whole. Real Latin-1 text almost never is: "Ã la carte",
//   "naïve" or "Grüße" put a lead byte before ASCII or a lone high byte. A body mixing real
//   Latin-1 with mojibake is therefore left alone rather than half repaired;
// - the result must hold no C1 control: real text has none, so one means the bytes were not text.
// ftfy's "the repair must be less suspicious" needs no separate check here: its signal, a UTF-8 lead
// byte's character (Â…ô) followed by a continuation byte's (€, ™, ©, »…), occurs at least once per
// multi-byte sequence in the input and each sequence becomes one character, so a whole-text UTF-8
// repair always has fewer such pairs than the input. The signal serves as the cheap first test.
// The one thing it cannot tell apart is text whose only non-ASCII characters are such pairs, e.g. a
// Latin-1 note quoting "JosÃ©" and nothing else accented: that is repaired too, as ftfy would,
// because mislabelled UTF-8 is far commoner in mail than a sender writing mojibake on purpose.
import { isUtf8 } from "node:buffer";
import { TextDecoder } from "node:util";

const windows1252 = new TextDecoder("windows-1252");

/** windows-1252's byte for each of its 256 characters, read off the WHATWG decoder Gmail's conversion matches. */
const BYTE_OF = new Map<number, number>();
const ALL_BYTES = windows1252.decode(Uint8Array.from({ length: 256 }, (_, i) => i));
for (let b = 0; b < 256; b++) BYTE_OF.set(ALL_BYTES.charCodeAt(b), b);

const regexClass = (s: string) => [...s].map((c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, "0")}`).join("");
/** A UTF-8 lead byte (0xC2–0xF4) then a continuation byte (0x80–0xBF), both read as windows-1252. */
const MOJIBAKE_PAIR = new RegExp(
  `[${regexClass(ALL_BYTES.slice(0xc2, 0xf5))}][${regexClass(ALL_BYTES.slice(0x80, 0xc0))}]`,
);
const C1_CONTROL = /[\u0080-\u009f]/;

/**
 * Whether Gmail reads text under this charset label as windows-1252 (WHATWG label table). Not
 * cached: labels come from mail, so a cache keyed on them would grow with whatever senders write.
 */
export function readAsWindows1252(charset: string | null | undefined): boolean {
  const label = (charset ?? "").trim().replace(/^"|"$/g, "");
  if (label === "") return false;
  try {
    return new TextDecoder(label).encoding === "windows-1252";
  } catch {
    return false;
  }
}

/** The bytes whose windows-1252 reading is `text`, or null when a character is not in windows-1252. */
function windows1252Bytes(text: string): Buffer | null {
  const out = Buffer.allocUnsafe(text.length);
  for (let i = 0; i < text.length; i++) {
    const b = BYTE_OF.get(text.charCodeAt(i));
    if (b === undefined) return null;
    out[i] = b;
  }
  return out;
}

/**
 * The sender's text when `served` is UTF-8 that Gmail read as the declared windows-1252-family
 * `charset`; otherwise `served` itself (the same string, so callers can tell nothing changed).
 */
export function repairMislabelledUtf8(served: string, charset: string | null | undefined): string {
  // No lead-then-continuation pair means no multi-byte UTF-8 sequence: nothing was mislabelled
  // (and ordinary Latin-1 bodies skip the byte copy).
  if (!readAsWindows1252(charset) || !MOJIBAKE_PAIR.test(served)) return served;
  const bytes = windows1252Bytes(served);
  if (bytes === null || !isUtf8(bytes)) return served;
  const repaired = bytes.toString("utf8");
  return C1_CONTROL.test(repaired) ? served : repaired;
}
