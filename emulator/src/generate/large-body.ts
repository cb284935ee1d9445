// A very large HTML body (a catalogue newsletter), above the size at which Gmail serves a body by
// reference (body.attachmentId, no data): src/state.ts bodyByReferenceBytes. Built and
// quoted-printable encoded once per process, then spliced into each message that carries it.
import { quotedPrintableBytes } from "./mime.ts";

/** Decoded size of the large body: above the 1,000,000-byte default threshold. */
export const LARGE_BODY_BYTES = 1_200_000;

let cached: { qp: string; size: number } | undefined;

function catalogue(): Buffer {
  const rows: string[] = [];
  const head = `<html><head><meta charset="utf-8"><title>Spring catalogue</title></head>\r\n<body>\r\n<h1>Spring catalogue</h1>\r\n<table>\r\n`;
  const tail = `</table>\r\n<p>You receive this newsletter because you subscribed.</p>\r\n</body></html>\r\n`;
  let size = head.length + tail.length;
  for (let i = 0; size < LARGE_BODY_BYTES; i++) {
    const row = `<tr><td>SKU-${String(i).padStart(6, "0")}</td><td>Item ${(i * 7919) % 100_003}</td><td>${((i * 37) % 10_000) / 100} EUR</td></tr>\r\n`;
    rows.push(row);
    size += row.length;
  }
  return Buffer.from(head + rows.join("") + tail, "latin1");
}

/** The large HTML part (headers, blank line, quoted-printable body). */
export function largeHtmlPart(): string {
  if (!cached) {
    const bytes = catalogue();
    cached = { qp: quotedPrintableBytes(bytes), size: bytes.length };
  }
  return `Content-Type: text/html; charset="UTF-8"\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n${cached.qp}`;
}
