// Mislabelled mail end to end: UTF-8 bytes declared iso-8859-1, windows-1252 or us-ascii, which
// Gmail (and the emulator, emulator/src/charset.ts) serves as windows-1252 mojibake. The mirror must
// hold the sender's text: in the body served inline (plain and HTML-only), in a body served by
// reference (attachments.get gives the raw bytes), through backfill and incremental sync alike —
// while genuine Latin-1 text stays as written. The opposite mislabel (windows-1252 bytes declared
// UTF-8) is served with U+FFFD and cannot be recovered: the mirror holds what Gmail serves. Then
// the demo's verdict over a generated mailbox that holds mislabelled mail: every stored body equals
// the emulator's ground truth, which gives mislabelled bodies as the sender wrote them.
import { gmail } from "@googleapis/gmail";
import { OAuth2Client } from "google-auth-library";
import iconv from "iconv-lite";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { compareWithMailbox } from "../../src/demo/compare.ts";
import { legacySentences } from "@gmail-sync/emulator/generate";
import { encodedTextPart, multipart } from "@gmail-sync/emulator/generate";
import type { RunningWorkers } from "../../src/worker.ts";
import {
  backfillDone,
  connectTestAccount,
  type Harness,
  queuesIdle,
  startHarness,
  syncToMailbox,
  waitFor,
} from "./harness.ts";

const EMAIL = "mislabel@example.com";
// Low, so the long mislabelled body below is served by reference.
const BY_REFERENCE_BYTES = 4000;
let h: Harness;
let workers: RunningWorkers;
let accountId: number;

const norm = (v: string | null | undefined) =>
  (v ?? "")
    .replace(/\r\n?/g, "\n")
    .replace(/[ \t]+\n/g, "\n")
    .trim();

type Cte = "7bit" | "quoted-printable" | "base64";

/** A message whose body parts are `parts` (multipart/alternative when several), bytes as given. */
function message(subject: string, parts: Array<{ type: string; charset: string; bytes: Buffer; cte: Cte }>): Buffer {
  const encoded = parts.map((p) => encodedTextPart(p.type, p.charset, p.bytes, p.cte));
  const body =
    encoded.length === 1
      ? (encoded[0] as string)
      : multipart("alternative", `alt-${subject.replace(/\W/g, "")}`, encoded);
  return Buffer.from(
    `From: Shop <news@shop.example>\r\nTo: ${EMAIL}\r\nSubject: ${subject}\r\nMIME-Version: 1.0\r\n${body}\r\n`,
    "latin1",
  );
}

const utf8 = (s: string) => Buffer.from(s, "utf8");
const [offers, cafe, shipped, prices] = legacySentences("mislabelled-utf8") as [string, string, string, string];
const LONG = Array.from({ length: 120 }, (_, i) => `${i + 1}. ${cafe}`).join("\r\n");

interface Case {
  name: string;
  raw: Buffer;
  /** The text the mirror must hold. */
  expected: string;
  /** What the ground truth (?bodies=true) gives: the text/plain body as the sender wrote it (null: none). */
  truth: string | null;
  id?: string;
}

const CASES: Case[] = [
  {
    name: "UTF-8 declared iso-8859-1, quoted-printable, text and HTML",
    raw: message("iso", [
      {
        type: "text/plain",
        charset: "iso-8859-1",
        bytes: utf8(`Hello,\r\n\r\n${offers}\r\n${cafe}\r\n`),
        cte: "quoted-printable",
      },
      {
        type: "text/html",
        charset: "iso-8859-1",
        bytes: utf8(`<p>Hello,</p><p>${offers}</p><p>${cafe}</p>`),
        cte: "quoted-printable",
      },
    ]),
    expected: `Hello,\n\n${offers}\n${cafe}`,
    truth: `Hello,\n\n${offers}\n${cafe}`,
  },
  {
    name: "UTF-8 declared windows-1252, base64",
    raw: message("w1252", [
      { type: "text/plain", charset: '"Windows-1252"', bytes: utf8(`${shipped}\r\n${prices}\r\n`), cte: "base64" },
    ]),
    expected: `${shipped}\n${prices}`,
    truth: `${shipped}\n${prices}`,
  },
  {
    name: "UTF-8 declared us-ascii, base64",
    raw: message("ascii", [
      { type: "text/plain", charset: "us-ascii", bytes: utf8("Zoë’s naïve café — 12 € ✓\r\n"), cte: "base64" },
    ]),
    expected: "Zoë’s naïve café — 12 € ✓",
    truth: "Zoë’s naïve café — 12 € ✓",
  },
  {
    name: "HTML only, UTF-8 declared iso-8859-1",
    raw: message("html", [
      {
        type: "text/html",
        charset: "iso-8859-1",
        bytes: utf8(`<html><body><p>${cafe}</p></body></html>`),
        cte: "quoted-printable",
      },
    ]),
    expected: cafe,
    truth: null,
  },
  {
    name: "a long body served by reference, UTF-8 declared iso-8859-1",
    raw: message("long", [
      { type: "text/plain", charset: "iso-8859-1", bytes: utf8(`${LONG}\r\n`), cte: "quoted-printable" },
    ]),
    expected: LONG.replace(/\r\n/g, "\n"),
    truth: LONG.replace(/\r\n/g, "\n"),
  },
  {
    name: "genuine Latin-1 with Ã and Â stays as written",
    raw: message("latin", [
      {
        type: "text/plain",
        charset: "iso-8859-1",
        bytes: iconv.encode("Ã la carte, NÃO, Â bientôt, naïve, Grüße – 5 €\r\n", "windows-1252"),
        cte: "quoted-printable",
      },
    ]),
    expected: "Ã la carte, NÃO, Â bientôt, naïve, Grüße – 5 €",
    truth: "Ã la carte, NÃO, Â bientôt, naïve, Grüße – 5 €",
  },
  {
    name: "unrecoverable: windows-1252 bytes declared UTF-8 are served with U+FFFD, and stored so",
    raw: message("rev", [
      { type: "text/plain", charset: "utf-8", bytes: iconv.encode("Café crème\r\n", "windows-1252"), cte: "base64" },
    ]),
    expected: "Caf\ufffd cr\ufffdme",
    truth: "Caf\ufffd cr\ufffdme",
  },
];

beforeAll(async () => {
  // 200 generated messages hold every legacy variant, mislabelled UTF-8 included (asserted below).
  h = await startHarness({
    emulator: {
      accounts: [EMAIL],
      messages: 200,
      seed: 7373,
      hostile: false,
      bodyByReferenceBytes: BY_REFERENCE_BYTES,
    },
  });
  workers = h.app.startWorkers({ maintenance: false });
  for (const c of CASES.slice(0, 4)) c.id = (await h.emulator.control.deliver(EMAIL, { raw: c.raw })).id;
  accountId = await connectTestAccount(h, EMAIL);
  await h.app.enqueueBackfill(accountId, { reason: "connect" });
  await waitFor("backfill to finish", () => backfillDone(h, accountId), 150_000, 200);
  await waitFor("queues to drain", () => queuesIdle(h), 60_000);
  // The rest arrive after the backfill: the incremental path stores them.
  for (const c of CASES.slice(4)) c.id = (await h.emulator.control.deliver(EMAIL, { raw: c.raw })).id;
  await syncToMailbox(h, accountId, EMAIL);
}, 240_000);
afterAll(async () => {
  await workers?.close();
  await h?.close();
});

async function storedBody(id: string): Promise<string | null> {
  const row = await h.app.db
    .selectFrom("messages")
    .select("body_text")
    .where("account_id", "=", accountId)
    .where("gmail_id", "=", id)
    .executeTakeFirst();
  expect(row, `message ${id} stored`).toBeDefined();
  return row?.body_text ?? null;
}

describe("mislabelled mail reaches the database as the sender wrote it", () => {
  for (const c of CASES) {
    it(c.name, async () => {
      expect(norm(await storedBody(c.id as string))).toBe(norm(c.expected));
      const truth = (await h.emulator.control.mailbox(EMAIL, { bodies: true })).messages.find(
        (m) => m.id === c.id,
      )?.bodyText;
      expect(truth === null ? null : norm(truth), "ground truth").toBe(c.truth === null ? null : norm(c.truth));
    });
  }

  it("the long body really was served by reference, and the others inline", async () => {
    const auth = new OAuth2Client({
      clientId: h.emulator.clientId,
      clientSecret: h.emulator.clientSecret,
      endpoints: { oauth2TokenUrl: h.emulator.tokenUrl },
    });
    auth.setCredentials({ refresh_token: await h.emulator.control.issueRefreshToken(EMAIL) });
    const api = gmail({ version: "v1", auth, rootUrl: h.emulator.gmailRootUrl });
    const body = async (id: string) =>
      (await api.users.messages.get({ userId: "me", id, format: "full" })).data.payload?.body;
    expect(await body(CASES[4]?.id as string)).toMatchObject({ attachmentId: expect.any(String) });
    expect(await body(CASES[2]?.id as string)).toMatchObject({ data: expect.any(String) });
  });

  it("the demo's verdict: every stored body equals the ground truth, generated mislabelled mail included", async () => {
    const box = await h.emulator.control.mailbox(EMAIL, { bodies: true });
    const delivered = new Set(CASES.map((c) => c.id));
    const generated = box.messages.filter(
      (m) => !delivered.has(m.id) && legacySentences("mislabelled-utf8").some((s) => m.bodyText?.includes(s)),
    );
    expect(generated.length, "generated mislabelled messages, their truth the sender's UTF-8").toBeGreaterThan(0);
    const verdict = await compareWithMailbox(h.app.db, accountId, box, { includeSpamTrash: false });
    expect(verdict.bodyMismatches).toEqual([]);
    expect(verdict.bodiesChecked).toBeGreaterThan(150);
    expect(verdict.match).toBe(true);
  });
});
