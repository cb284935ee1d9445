// The attachment kinds a generated mailbox carries, and how each becomes a MIME part. Binary
// fixtures (PDF, DOCX, PNG, hostile files) come in a few variants built once per process and kept
// base64-encoded, so a part costs a string splice; small text attachments are made per message so
// each holds that message's own searchable word.
import {
  makeCorruptPdf,
  makeCsv,
  makeDocx,
  makeEncryptedDocx,
  makeEncryptedPdf,
  makeEntityBombDocx,
  makeHtml,
  makeImageOnlyPdf,
  makeLoopingPdf,
  makePdf,
  makePng,
  makeZipBombDocx,
} from "./attachments.ts";
import { base64Lines, fileParams, formatAddress, formatDate, multipart, textPart, encodeWords } from "./mime.ts";
import type { Rng } from "./prng.ts";

export const NORMAL_KINDS = [
  "pdf",
  "pdf-as-octet-stream",
  "scanned-pdf",
  "owner-protected-pdf",
  "docx",
  "text",
  "csv",
  "csv-utf16",
  "html",
  "png",
  "inline-image",
  "forwarded-message",
  "calendar-invite",
] as const;
export const HOSTILE_KINDS = [
  "encrypted-pdf",
  "corrupt-pdf",
  "looping-pdf",
  "zip-bomb-docx",
  "entity-bomb-docx",
  "encrypted-docx",
  "exe-named-pdf",
  "empty-file",
  "path-traversal-name",
  "nul-bytes-text",
] as const;
export type AttachmentKind = (typeof NORMAL_KINDS)[number] | (typeof HOSTILE_KINDS)[number] | "large-csv";

/** Filenames of the kinds that always use the same one (tests map parts back to kinds by name). */
export const FIXED_FILENAMES = {
  "scanned-pdf": "scan-0001.pdf",
  "owner-protected-pdf": "statement-protected.pdf",
  text: "notes.txt",
  csv: "orders.csv",
  "csv-utf16": "export-utf16.csv",
  html: "newsletter.html",
  "forwarded-message": "forwarded.eml",
  "encrypted-pdf": "payslip-locked.pdf",
  "corrupt-pdf": "transfer-truncated.pdf",
  "looping-pdf": "ledger-recursive.pdf",
  "zip-bomb-docx": "huge-expansion.docx",
  "entity-bomb-docx": "laughs.docx",
  "encrypted-docx": "salaries-protected.docx",
  "exe-named-pdf": "invoice-urgent.pdf",
  "empty-file": "empty.txt",
  "path-traversal-name": "../../etc/passwd",
  "nul-bytes-text": "nul-bytes.txt",
  "calendar-invite": "invite.ics",
  "large-csv": "export-large.csv",
} as const satisfies Partial<Record<AttachmentKind, string>>;

/** Words found only inside each PDF/DOCX variant; the variant's filename carries the same word. */
export const PDF_KEYWORDS = ["aubergine", "brontosaur", "cardamom", "dulcimer", "escarpment", "fjordland"] as const;
const PDF_PAGES = [2, 3, 5, 8, 12, 40];
export const DOCX_KEYWORDS = ["gazpacho", "hornbill", "isthmus", "jacaranda"] as const;
const PNG_SIZES: readonly [number, number][] = [
  [64, 48],
  [320, 240],
  [120, 120],
  [640, 400],
];
export const LARGE_ATTACHMENT_BYTES = 60_000_000;

interface EncodedBody {
  base64: string;
  size: number;
}
const encoded = new Map<string, Promise<EncodedBody>>();

function encodeOnce(key: string, build: () => Promise<Buffer> | Buffer): Promise<EncodedBody> {
  let hit = encoded.get(key);
  if (!hit) {
    hit = Promise.resolve(build()).then((bytes) => ({ base64: base64Lines(bytes), size: bytes.length }));
    encoded.set(key, hit);
    hit.catch(() => encoded.delete(key));
  }
  return hit;
}

const REPORT_SENTENCES = [
  "Revenue in the northern region grew while logistics costs stayed flat.",
  "The committee reviewed the supplier contracts and flagged two for renewal.",
  "Headcount remained stable; two contractors were converted to staff.",
  "Customer satisfaction scores improved after the support rota changed.",
  "Capital expenditure was deferred to the next quarter pending approval.",
];

function pdfVariant(v: number): Promise<Buffer> {
  const keyword = PDF_KEYWORDS[v]!;
  return makePdf({
    pages: PDF_PAGES[v]!,
    title: `Report ${keyword}`,
    author: "Finance team",
    text: (page) =>
      `Section ${page}. ${REPORT_SENTENCES[page % REPORT_SENTENCES.length]} ` +
      `${REPORT_SENTENCES[(page + v) % REPORT_SENTENCES.length]} Keyword ${keyword} on page ${page}, ` +
      `marker ${keyword}page${page}.`,
  });
}

function docxVariant(v: number): Promise<Buffer> {
  const keyword = DOCX_KEYWORDS[v]!;
  return makeDocx({
    paragraphs: Array.from(
      { length: 3 + v * 3 },
      (_, i) => `${REPORT_SENTENCES[(i + v) % REPORT_SENTENCES.length]} (${keyword} ${i + 1})`,
    ),
    table: [
      ["Item", "Owner", "Due"],
      [`${keyword} milestone`, "Ana", "2024-03-01"],
      ["Budget sign-off", "Jonas", "2024-03-15"],
    ],
    footnote: `Source: internal ${keyword} tracker.`,
  });
}

function largeCsv(): Buffer {
  const rows: string[][] = [["id", "date", "account", "amount", "memo"]];
  for (let i = 0; i < 20_000; i++)
    rows.push([
      String(i),
      "2024-01-15",
      `ACC-${(i * 7919) % 100_000}`,
      (((i * 37) % 10_000) / 100).toFixed(2),
      "bulk export row",
    ]);
  const block = makeCsv(rows);
  const out = Buffer.alloc(LARGE_ATTACHMENT_BYTES);
  for (let at = 0; at < out.length; at += block.length) block.copy(out, at);
  return out;
}

/** Builds (once per process) every binary body the kinds need. */
async function fixtures(kinds: ReadonlySet<AttachmentKind>): Promise<Map<string, EncodedBody>> {
  const wanted: [string, () => Promise<Buffer> | Buffer][] = [];
  const want = (key: string, build: () => Promise<Buffer> | Buffer): void => void wanted.push([key, build]);
  if (kinds.has("pdf") || kinds.has("pdf-as-octet-stream"))
    for (const v of PDF_KEYWORDS.keys()) want(`pdf:${v}`, () => pdfVariant(v));
  if (kinds.has("docx")) for (const v of DOCX_KEYWORDS.keys()) want(`docx:${v}`, () => docxVariant(v));
  if (kinds.has("png") || kinds.has("inline-image"))
    for (const [v, [w, h]] of PNG_SIZES.entries())
      want(`png:${v}`, () => makePng({ width: w, height: h, seed: v + 1 }));
  if (kinds.has("scanned-pdf")) want("scanned-pdf", makeImageOnlyPdf);
  if (kinds.has("owner-protected-pdf")) want("owner-protected-pdf", () => makeEncryptedPdf({ ownerOnly: true }));
  if (kinds.has("encrypted-pdf")) want("encrypted-pdf", () => makeEncryptedPdf());
  if (kinds.has("corrupt-pdf")) want("corrupt-pdf", makeCorruptPdf);
  if (kinds.has("looping-pdf")) want("looping-pdf", makeLoopingPdf);
  if (kinds.has("zip-bomb-docx")) want("zip-bomb-docx", () => makeZipBombDocx());
  if (kinds.has("entity-bomb-docx")) want("entity-bomb-docx", makeEntityBombDocx);
  if (kinds.has("encrypted-docx")) want("encrypted-docx", makeEncryptedDocx);
  if (kinds.has("exe-named-pdf"))
    want("exe-named-pdf", () =>
      Buffer.concat([Buffer.from("MZ\x90\x00\x03\x00\x00\x00", "latin1"), Buffer.alloc(2040, 0x90)]),
    );
  if (kinds.has("large-csv")) want("large-csv", largeCsv);
  const bodies = await Promise.all(wanted.map(([key, build]) => encodeOnce(key, build)));
  return new Map(wanted.map(([key], i) => [key, bodies[i]!]));
}

export interface PartContext {
  rng: Rng;
  /** Distinct per message; appears only in the attachment's text, never in the message body. */
  attachmentWord: string;
  /** Unique per message, for boundaries and Content-IDs. */
  uid: string;
  time: number;
  senderName: string;
  senderEmail: string;
}

export interface RenderedAttachment {
  /** A complete MIME part (headers, blank line, body). */
  part: string;
  /** Inline image: goes in multipart/related next to the HTML that references contentId. */
  contentId: string | null;
}

const CONTENT_TYPES: Record<string, string> = {
  pdf: "application/pdf",
  docx: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
  png: "image/png",
};

function binaryPart(
  mimeType: string,
  filename: string,
  body: EncodedBody,
  disposition = "attachment",
  extra = "",
): string {
  const params = fileParams(filename);
  return (
    `Content-Type: ${mimeType}; ${params.name}\r\nContent-Disposition: ${disposition}; ${params.filename}\r\n` +
    `Content-Transfer-Encoding: base64\r\n${extra}\r\n${body.base64}`
  );
}

export type RenderAttachment = (kind: AttachmentKind, ctx: PartContext) => RenderedAttachment;

/** Prepares the fixtures `kinds` need (once per process), then renders parts synchronously. */
export async function attachmentRenderer(kinds: Iterable<AttachmentKind>): Promise<RenderAttachment> {
  const bodies = await fixtures(new Set(kinds));
  const body = (key: string): EncodedBody => {
    const hit = bodies.get(key);
    if (!hit) throw new Error(`fixture ${key} was not prepared`);
    return hit;
  };
  return (kind, ctx) => {
    const { rng, attachmentWord: word } = ctx;
    const plain = (part: string): RenderedAttachment => ({ part, contentId: null });
    switch (kind) {
      case "pdf":
      case "pdf-as-octet-stream": {
        const v = rng.int(0, PDF_KEYWORDS.length - 1);
        const type = kind === "pdf" ? CONTENT_TYPES.pdf! : "application/octet-stream";
        return plain(binaryPart(type, `report-${PDF_KEYWORDS[v]}.pdf`, body(`pdf:${v}`)));
      }
      case "docx": {
        const v = rng.int(0, DOCX_KEYWORDS.length - 1);
        const name = v === 1 ? `Protokoll Überprüfung ${DOCX_KEYWORDS[v]}.docx` : `minutes-${DOCX_KEYWORDS[v]}.docx`;
        return plain(binaryPart(CONTENT_TYPES.docx!, name, body(`docx:${v}`)));
      }
      case "png": {
        const v = rng.int(0, PNG_SIZES.length - 1);
        return plain(binaryPart(CONTENT_TYPES.png!, `photo-${v + 1}.png`, body(`png:${v}`)));
      }
      case "inline-image": {
        const v = rng.int(0, PNG_SIZES.length - 1);
        const contentId = `ii_${ctx.uid}@generator.gmail-sync.test`;
        return {
          part: binaryPart(
            CONTENT_TYPES.png!,
            `chart-${v + 1}.png`,
            body(`png:${v}`),
            "inline",
            `Content-ID: <${contentId}>\r\nX-Attachment-Id: ii_${ctx.uid}\r\n`,
          ),
          contentId,
        };
      }
      case "scanned-pdf":
        return plain(binaryPart(CONTENT_TYPES.pdf!, FIXED_FILENAMES["scanned-pdf"], body("scanned-pdf")));
      case "owner-protected-pdf":
        return plain(
          binaryPart(CONTENT_TYPES.pdf!, FIXED_FILENAMES["owner-protected-pdf"], body("owner-protected-pdf")),
        );
      case "encrypted-pdf":
        return plain(binaryPart(CONTENT_TYPES.pdf!, FIXED_FILENAMES["encrypted-pdf"], body("encrypted-pdf")));
      case "corrupt-pdf":
        return plain(binaryPart(CONTENT_TYPES.pdf!, FIXED_FILENAMES["corrupt-pdf"], body("corrupt-pdf")));
      case "looping-pdf":
        return plain(binaryPart(CONTENT_TYPES.pdf!, FIXED_FILENAMES["looping-pdf"], body("looping-pdf")));
      case "zip-bomb-docx":
        return plain(binaryPart(CONTENT_TYPES.docx!, FIXED_FILENAMES["zip-bomb-docx"], body("zip-bomb-docx")));
      case "entity-bomb-docx":
        return plain(binaryPart(CONTENT_TYPES.docx!, FIXED_FILENAMES["entity-bomb-docx"], body("entity-bomb-docx")));
      case "encrypted-docx":
        return plain(binaryPart(CONTENT_TYPES.docx!, FIXED_FILENAMES["encrypted-docx"], body("encrypted-docx")));
      case "exe-named-pdf":
        return plain(binaryPart(CONTENT_TYPES.pdf!, FIXED_FILENAMES["exe-named-pdf"], body("exe-named-pdf")));
      case "large-csv":
        return plain(binaryPart("text/csv", FIXED_FILENAMES["large-csv"], body("large-csv")));
      case "text": {
        const text = `Meeting notes\r\n\r\nAction items: confirm the venue, send the slides.\r\nCode word: ${word}\r\n`;
        return plain(attachmentText("text/plain", FIXED_FILENAMES.text, text));
      }
      case "csv": {
        const csv = makeCsv([
          ["date", "description", "amount"],
          ["2024-02-01", `Order ${word}`, "12.50"],
          ["2024-02-03", 'Café, "special" blend', "4.20"],
        ]);
        return plain(
          binaryPart('text/csv; charset="UTF-8"', FIXED_FILENAMES.csv, { base64: base64Lines(csv), size: csv.length }),
        );
      }
      case "csv-utf16": {
        const csv = makeCsv(
          [
            ["名前", "都市", "note"],
            ["Zoë", "Zürich", word],
            ["太郎", "東京", "ok"],
          ],
          { encoding: "utf16le" },
        );
        return plain(
          binaryPart('text/csv; charset="UTF-16"', FIXED_FILENAMES["csv-utf16"], {
            base64: base64Lines(csv),
            size: csv.length,
          }),
        );
      }
      case "html": {
        const html = makeHtml({
          title: "Newsletter",
          paragraphs: ["This week in the project.", `Featured: ${word}.`],
          withScript: rng.chance(0.5),
        });
        return plain(
          binaryPart('text/html; charset="UTF-8"', FIXED_FILENAMES.html, {
            base64: base64Lines(html),
            size: html.length,
          }),
        );
      }
      case "calendar-invite": {
        const start = new Date(ctx.time + 7 * 86_400_000).toISOString().replace(/[-:]|\.\d+/g, "");
        const ics = [
          "BEGIN:VCALENDAR",
          "VERSION:2.0",
          "PRODID:-//gmail-sync//generator//EN",
          "METHOD:REQUEST",
          "BEGIN:VEVENT",
          `UID:${ctx.uid}@generator.gmail-sync.test`,
          `DTSTAMP:${start}`,
          `DTSTART:${start}`,
          `SUMMARY:Planning session ${word}`,
          "LOCATION:Room Ølstykke",
          "END:VEVENT",
          "END:VCALENDAR",
          "",
        ].join("\r\n");
        const bytes = Buffer.from(ics, "utf8");
        return plain(
          binaryPart('text/calendar; charset="UTF-8"; method=REQUEST', FIXED_FILENAMES["calendar-invite"], {
            base64: base64Lines(bytes),
            size: bytes.length,
          }),
        );
      }
      case "empty-file":
        return plain(binaryPart("text/plain", FIXED_FILENAMES["empty-file"], { base64: "", size: 0 }));
      case "path-traversal-name": {
        const bytes = Buffer.from(`root:x:0:0:not really:/root:/bin/false\nmarker ${word}\n`);
        return plain(
          binaryPart("text/plain", FIXED_FILENAMES["path-traversal-name"], {
            base64: base64Lines(bytes),
            size: bytes.length,
          }),
        );
      }
      case "nul-bytes-text": {
        const bytes = Buffer.from(`before\0the\0nul bytes ${word}\0\0after\n`, "latin1");
        return plain(
          binaryPart("text/plain", FIXED_FILENAMES["nul-bytes-text"], {
            base64: base64Lines(bytes),
            size: bytes.length,
          }),
        );
      }
      case "forwarded-message": {
        const inner = forwardedMessage(ctx);
        return plain(
          `Content-Type: message/rfc822; name="${FIXED_FILENAMES["forwarded-message"]}"\r\nContent-Disposition: attachment; filename="${FIXED_FILENAMES["forwarded-message"]}"\r\n\r\n${inner}`,
        );
      }
    }
  };
}

function attachmentText(mimeType: string, filename: string, text: string): string {
  const params = fileParams(filename);
  const bytes = Buffer.from(text, "utf8");
  return (
    `Content-Type: ${mimeType}; charset="UTF-8"; ${params.name}\r\nContent-Disposition: attachment; ${params.filename}\r\n` +
    `Content-Transfer-Encoding: base64\r\n\r\n${base64Lines(bytes)}`
  );
}

/** A small complete message (7-bit, so it nests without re-encoding), forwarded as an attachment. */
function forwardedMessage(ctx: PartContext): string {
  const date = ctx.time - 86_400_000;
  const boundary = `----=_Inner_${ctx.uid}`;
  const body = multipart("mixed", boundary, [
    textPart("text/plain", `Your booking is confirmed.\nThe forwarded code word is ${ctx.attachmentWord}.\n`),
    attachmentText("text/plain", "inner-notes.txt", "Inner attachment: packing list for the trip.\r\n"),
  ]);
  return (
    `MIME-Version: 1.0\r\nDate: ${formatDate(date, 0)}\r\nMessage-ID: <fwd-${ctx.uid}@generator.gmail-sync.test>\r\n` +
    `Subject: ${encodeWords("Original: Reisebericht")}\r\nFrom: ${formatAddress("Reisebüro Müller", "reisen@example.net")}\r\n` +
    `To: ${formatAddress(ctx.senderName, ctx.senderEmail)}\r\n${body}\r\n`
  );
}
