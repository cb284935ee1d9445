// Property tests for parseGmailMessage: whatever payload tree Gmail (or something pretending to be
// Gmail) hands us — any nesting, MIME types, headers, charsets, base64url or garbage bodies, and
// values of the wrong JSON type — the parser returns a ParsedMessage or throws ParseError, never
// another kind of error; and every text it returns can go into Postgres text columns (no NUL, no
// lone UTF-16 surrogate). The push decoder's property test lives in test/push/decode.test.ts.
import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { isGmailError } from "../../src/errors.ts";
import { ParseError } from "../../src/errors.ts";
import { type ParsedMessage, parseGmailMessage } from "../../src/gmail/parse-message.ts";
import type { GmailMessage } from "../../src/gmail/port.ts";

const SEED = 20261123;
const RUNS = 400;

// Strings that stress decoders: NUL and control characters, lone surrogates, RFC 2047 words with
// real, bogus and dangerous charsets, malformed encodings, very long tokens.
const nasty = fc.constantFrom(
  "",
  "\u0000",
  "a\u0000b",
  "\ud800",
  "x\udfffy",
  "\u0001\u0007\u001b[31m\u007f",
  "=?UTF-8?B?SsO8cmdlbg==?=",
  "=?utf-8?B?AAAA?=",
  "=?UTF-16?B?2D3eAA==?=",
  "=?UTF-16LE?B?ANg=?=",
  "=?x-no-such-charset?Q?caf=E9?=",
  "=?ISO-8859-1?Q?Caf=E9=00?=",
  "=?UTF-8?Q?=C3?=",
  "=?UTF-8?X?abc?=",
  "=?UTF-7?B?K0FHRUFZUS0=?=",
  "=?=?=?",
  '"unterminated <a@b',
  "Team: a@b.c, <d@e.f>;",
  "<<<>>>@@@,,,;;;",
  "a".repeat(5000),
);
const text = fc.oneof(
  fc.string({ unit: "binary", maxLength: 40 }),
  fc.string({ unit: "grapheme", maxLength: 40 }),
  nasty,
);

const headerNames = fc.constantFrom(
  "From",
  "To",
  "Cc",
  "Subject",
  "Message-ID",
  "In-Reply-To",
  "Content-Type",
  "Content-ID",
  "Content-Disposition",
  "X-Whatever",
  "from",
  "SUBJECT",
  "",
);
const contentTypeValue = fc.oneof(
  fc
    .tuple(
      fc.constantFrom(
        "text/plain",
        "text/html",
        "application/pdf",
        "image/png",
        "multipart/mixed",
        "TEXT/PLAIN",
        "",
        "garbage",
      ),
      fc.constantFrom(
        "",
        "; charset=utf-8",
        '; charset="iso-8859-1"',
        "; charset=utf-16",
        "; charset=utf-16le",
        "; charset=x-bogus",
        "; charset=",
        "; charset=utf-32",
        "; charset=shift_jis",
        "; charset=cp1252",
      ),
    )
    .map(([t, c]) => t + c),
  text,
);
const header = fc.oneof(
  { weight: 4, arbitrary: fc.record({ name: headerNames, value: fc.oneof(text, contentTypeValue) }) },
  {
    weight: 1,
    arbitrary: fc.record(
      { name: fc.oneof(headerNames, fc.constant(null)), value: fc.oneof(text, fc.constant(null)) },
      { requiredKeys: [] },
    ),
  },
);

// Bodies: valid base64url of arbitrary bytes (including UTF-16 halves and NULs), standard base64
// with padding, and strings that are not base64 at all.
const bodyData = fc.oneof(
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString("base64url")),
  fc.uint8Array({ maxLength: 200 }).map((b) => Buffer.from(b).toString("base64")),
  fc.string({ maxLength: 60 }).map((s) => Buffer.from(s, "utf8").toString("base64url")),
  fc.constantFrom(
    "Zm9v\u0000YmFy",
    "!!!not base64!!!",
    "=",
    "A",
    "____",
    Buffer.from([0xd8, 0x00, 0x00, 0x00]).toString("base64url"),
    Buffer.from("<html><body>\u0000<p>hi</p><script>x</script>", "utf8").toString("base64url"),
  ),
  text,
);
const mimeType = fc.oneof(
  fc.constantFrom(
    "text/plain",
    "text/html",
    "multipart/alternative",
    "multipart/mixed",
    "multipart/related",
    "message/rfc822",
    "application/pdf",
    "application/octet-stream",
    "image/png",
  ),
  text,
);
const body = fc.record(
  {
    size: fc.oneof(fc.nat(), fc.constantFrom(-1, Number.NaN, Number.POSITIVE_INFINITY, 2 ** 60)),
    data: bodyData,
    attachmentId: fc.oneof(fc.constantFrom("ANGjdJ8", ""), text),
  },
  { requiredKeys: [] },
);

interface PartShape {
  partId?: string;
  mimeType?: string;
  filename?: string;
  headers?: Array<{ name?: string | null; value?: string | null }>;
  body?: Record<string, unknown>;
  parts?: PartShape[];
}

// Well-typed trees of any shape (Gmail's schema), up to 6 levels, up to 5 children per node.
const { part } = fc.letrec<{ part: PartShape }>((tie) => ({
  part: fc.record(
    {
      partId: fc.oneof(fc.constantFrom("", "0", "1", "1.0", "0.1.2"), text),
      mimeType,
      filename: fc.oneof(
        fc.constant(""),
        fc.constantFrom("report.pdf", "../../etc/passwd", "a/b\\c.txt", "nul\u0000.txt", "=?UTF-8?B?w6kuZG9jeA==?="),
        text,
      ),
      headers: fc.array(header, { maxLength: 6 }),
      body,
      parts: fc.array(tie("part"), { maxLength: 5, depthIdentifier: "tree" }),
    },
    { requiredKeys: [] },
  ),
}));

const gmailId = fc.oneof(fc.stringMatching(/^[0-9a-f]{16}$/), text);
const message: fc.Arbitrary<GmailMessage> = fc.record(
  {
    id: gmailId,
    threadId: gmailId,
    labelIds: fc.array(fc.oneof(fc.constantFrom("INBOX", "UNREAD", "Label_1"), text), { maxLength: 4 }),
    snippet: text,
    historyId: fc.oneof(fc.bigInt({ min: 0n, max: 2n ** 64n - 1n }).map(String), text),
    internalDate: fc.oneof(fc.integer({ min: -1, max: 2 ** 45 }).map(String), text),
    sizeEstimate: fc.oneof(fc.nat(), fc.constant(Number.NaN)),
    payload: part,
  },
  { requiredKeys: ["id", "threadId"] },
) as fc.Arbitrary<GmailMessage>;

// Values of any JSON type anywhere in the tree: what a buggy proxy or hostile server might send.
const anyJson = fc.jsonValue({ maxDepth: 4 });
const { loosePart } = fc.letrec<{ loosePart: unknown }>((tie) => ({
  loosePart: fc.oneof(
    { depthSize: "small", withCrossShrink: true },
    anyJson,
    fc.record(
      {
        partId: fc.oneof(text, anyJson),
        mimeType: fc.oneof(mimeType, anyJson),
        filename: fc.oneof(text, anyJson),
        headers: fc.oneof(fc.array(fc.oneof(header, anyJson), { maxLength: 4 }), anyJson),
        body: fc.oneof(
          body,
          anyJson,
          fc.record({ data: anyJson, size: anyJson, attachmentId: anyJson }, { requiredKeys: [] }),
        ),
        parts: fc.oneof(fc.array(tie("loosePart"), { maxLength: 4, depthIdentifier: "loose" }), anyJson),
      },
      { requiredKeys: [] },
    ),
  ),
}));
const looseMessage = fc.oneof(
  anyJson,
  fc.record(
    {
      id: fc.oneof(gmailId, anyJson),
      threadId: fc.oneof(gmailId, anyJson),
      labelIds: fc.oneof(fc.array(fc.oneof(text, anyJson), { maxLength: 3 }), anyJson),
      snippet: fc.oneof(text, anyJson),
      historyId: fc.oneof(text, anyJson),
      internalDate: fc.oneof(text, anyJson),
      sizeEstimate: anyJson,
      payload: loosePart,
    },
    { requiredKeys: [] },
  ),
);

// A string Postgres text accepts and that round-trips through UTF-8 unchanged.
function assertStorable(where: string, s: string | null): void {
  if (s === null) return;
  expect(typeof s, where).toBe("string");
  expect(s.includes("\u0000"), `${where} has a NUL byte`).toBe(false);
  expect(s.isWellFormed(), `${where} has a lone surrogate: ${JSON.stringify(s.slice(0, 80))}`).toBe(true);
}

function assertStorableMessage(p: ParsedMessage): void {
  for (const k of [
    "gmailId",
    "threadId",
    "historyId",
    "fromAddress",
    "subject",
    "messageIdHeader",
    "inReplyTo",
    "snippet",
    "bodyText",
  ] as const)
    assertStorable(k, p[k]);
  for (const [i, a] of p.toAddresses.entries()) assertStorable(`toAddresses[${i}]`, a);
  for (const [i, a] of p.ccAddresses.entries()) assertStorable(`ccAddresses[${i}]`, a);
  for (const [i, l] of p.labelIds.entries()) assertStorable(`labelIds[${i}]`, l);
  for (const [i, a] of p.attachments.entries()) {
    for (const k of ["partId", "filename", "mimeType", "charset", "contentId", "attachmentId"] as const)
      assertStorable(`attachments[${i}].${k}`, a[k]);
    expect(Number.isFinite(a.size), `attachments[${i}].size`).toBe(true);
    // inlineData is base64url handed to the attachment pipeline, never stored as text.
    expect(a.inlineData === null || typeof a.inlineData === "string").toBe(true);
  }
  if (p.internalDate !== null) expect(Number.isNaN(p.internalDate.getTime())).toBe(false);
}

/** Runs the parser; returns the result, or null when it threw the one allowed error. */
function parseOrParseError(msg: unknown): ParsedMessage | null {
  try {
    return parseGmailMessage(msg as GmailMessage);
  } catch (err) {
    if (err instanceof ParseError && isGmailError(err, "permanent")) return null;
    throw new Error(`parseGmailMessage threw ${(err as Error)?.name}: ${(err as Error)?.message}`, { cause: err });
  }
}

describe("parseGmailMessage (property)", () => {
  it("any well-typed payload tree → a storable ParsedMessage or a ParseError", () => {
    fc.assert(
      fc.property(message, (msg) => {
        const p = parseOrParseError(msg);
        if (p !== null) assertStorableMessage(p);
      }),
      { seed: SEED, numRuns: RUNS },
    );
  });

  it("values of the wrong JSON type anywhere → a storable ParsedMessage or a ParseError, never another throw", () => {
    fc.assert(
      fc.property(looseMessage, (msg) => {
        const p = parseOrParseError(msg);
        if (p !== null) assertStorableMessage(p);
      }),
      { seed: SEED + 1, numRuns: RUNS },
    );
  });

  it("a well-formed message keeps its attachments: every leaf with a filename is listed once", () => {
    fc.assert(
      fc.property(
        fc.array(fc.record({ filename: fc.string({ minLength: 1, maxLength: 20 }), size: fc.nat(10_000) }), {
          minLength: 1,
          maxLength: 8,
        }),
        (files) => {
          const msg: GmailMessage = {
            id: "18c2b0a1f0e0d0c0",
            threadId: "18c2b0a1f0e0d0c0",
            payload: {
              partId: "",
              mimeType: "multipart/mixed",
              parts: [
                {
                  partId: "0",
                  mimeType: "text/plain",
                  filename: "",
                  body: { size: 2, data: Buffer.from("hi").toString("base64url") },
                },
                ...files.map((f, i) => ({
                  partId: String(i + 1),
                  mimeType: "application/octet-stream",
                  filename: f.filename,
                  body: { size: f.size, attachmentId: `att${i}` },
                })),
              ],
            },
          };
          const p = parseOrParseError(msg);
          expect(p).not.toBeNull();
          expect(p?.bodyText).toBe("hi");
          expect(p?.attachments.map((a) => a.partId)).toEqual(files.map((_, i) => String(i + 1)));
        },
      ),
      { seed: SEED + 2, numRuns: 100 },
    );
  });

  it("a pathologically deep tree (10,000 levels) → a result or a ParseError, not a stack overflow", () => {
    let leaf: PartShape = { partId: "x", mimeType: "text/plain", body: { size: 1, data: "YQ" } };
    for (let i = 0; i < 10_000; i++) leaf = { partId: String(i), mimeType: "multipart/mixed", parts: [leaf] };
    const p = parseOrParseError({
      id: "18c2b0a1f0e0d0c0",
      threadId: "18c2b0a1f0e0d0c0",
      payload: leaf,
    } as GmailMessage);
    if (p !== null) assertStorableMessage(p);
  });
});
