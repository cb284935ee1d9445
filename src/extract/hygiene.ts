// Output hygiene for extracted text, applied in the child before the text crosses IPC: Postgres
// rejects NUL bytes and lone UTF-16 surrogates in text columns, and search wants tidy whitespace.

// Lone high surrogate (not followed by a low one) or lone low surrogate (not preceded by a high one).
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g;
// C0 controls except \t \n \r, DEL, and C1 controls: never meaningful in stored text.
const CONTROL = /[\u0000-\u0008\u000B\u000E-\u001F\u007F-\u009F]/g;

export interface CleanText {
  text: string;
  /** True when the text was cut at maxBytes (UTF-8). */
  truncated: boolean;
}

// Whitespace other than \n that collapses to one space. The text of a 500-page PDF is ~2 MB of
// mostly single spaces and newlines, so the patterns below match only what actually changes (runs,
// exotic spaces, spaces around a newline): replacing every single space with itself cost ~45 ms
// of that document's ~1.2 s extraction (measured in process, before and after).
const EXOTIC_SPACES = "\\t\\u00A0\\u1680\\u2000-\\u200A\\u202F\\u205F\\u3000";
const SPACE = `[ ${EXOTIC_SPACES}]`;
const SPACE_RUN = new RegExp(`(?:[${EXOTIC_SPACES}]| (?=${SPACE}))${SPACE}*`, "g");
const SPACES_AROUND_NEWLINE = / +\n *|\n +/g;

/** Removes NUL/control characters and lone surrogates, normalizes whitespace, caps UTF-8 bytes. */
export function cleanText(raw: string, maxBytes: number): CleanText {
  const text = raw
    .replace(LONE_SURROGATE, "")
    .replace(/\r\n?|\f|\v|\u2028|\u2029/g, "\n")
    .replace(CONTROL, "")
    // Non-breaking and other exotic spaces become plain spaces, then runs collapse.
    .replace(SPACE_RUN, " ")
    .replace(SPACES_AROUND_NEWLINE, "\n")
    .replace(/\n{3,}/g, "\n\n")
    .trim();
  return capUtf8(text, maxBytes);
}

/** Cuts text to at most maxBytes of UTF-8 without splitting a character. */
export function capUtf8(text: string, maxBytes: number): CleanText {
  // Fast path: each UTF-16 unit is at most 3 UTF-8 bytes.
  if (text.length * 3 <= maxBytes || Buffer.byteLength(text, "utf8") <= maxBytes) return { text, truncated: false };
  const bytes = Buffer.from(text, "utf8");
  let end = maxBytes;
  // Back up to the start of a UTF-8 sequence (continuation bytes are 10xxxxxx).
  while (end > 0 && ((bytes[end] ?? 0) & 0xc0) === 0x80) end--;
  return { text: bytes.subarray(0, end).toString("utf8").trimEnd(), truncated: true };
}

// Counted with a loop over char codes, not a regex iterator: one match object per word cost ~27 ms
// for a 500-page PDF's text. A word is a run of anything but what \s matches.
function isSpace(c: number): boolean {
  if (c <= 32) return c === 32 || (c >= 9 && c <= 13);
  if (c < 0xa0) return false;
  return (
    c === 0xa0 ||
    c === 0x1680 ||
    (c >= 0x2000 && c <= 0x200a) ||
    c === 0x2028 ||
    c === 0x2029 ||
    c === 0x202f ||
    c === 0x205f ||
    c === 0x3000 ||
    c === 0xfeff
  );
}

export function countWords(text: string): number {
  let n = 0;
  let inWord = false;
  for (let i = 0; i < text.length; i++) {
    const space = isSpace(text.charCodeAt(i));
    if (!space && !inWord) n++;
    inWord = !space;
  }
  return n;
}

/** Unicode code points, not UTF-16 units. */
export function countCharacters(text: string): number {
  let pairs = 0;
  for (const _ of text.matchAll(/[\uD800-\uDBFF][\uDC00-\uDFFF]/g)) pairs++;
  return text.length - pairs;
}

/**
 * Whether pages read so far already fill the text cap, so reading more would only be thrown away.
 * Raw text only shrinks in cleaning: the cleaned size is checked only once the raw one could fill
 * the cap. Shared by the PDF engines (pdfium.ts, pdf.ts).
 */
export function textCapReached(texts: readonly string[], rawLength: number, maxBytes: number): boolean {
  return rawLength > maxBytes && Buffer.byteLength(cleanText(texts.join("\n\n"), maxBytes + 1).text) > maxBytes;
}
