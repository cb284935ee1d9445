// How messages are rendered, against Gmail's recorded answers (../shared/gmail-real-samples, read
// in place): format=minimal {partId: ""} without snippet, metadata {mimeType, headers}, full parts
// with filename and body everywhere; attachmentIds of ~319 characters that differ on every fetch
// (any one stays valid); text bodies above bodyByReferenceBytes by reference; generated drafts;
// and the JSON text itself exactly as gmailJson writes it (pretty with \u003c, or compact).
import type { gmail_v1 } from "@googleapis/gmail";
import iconv from "iconv-lite";
import type { OAuth2Client } from "google-auth-library";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { gmailJson } from "../src/json.ts";
import { startEmulator, type Emulator } from "../src/server.ts";
import { clientFor, rawGet } from "./helpers.ts";
import { loadSample, samplesPresent, shapeDiff, shapeOf } from "./sample-shape.ts";

const ALICE = "alice@example.com";
let emu: Emulator;
let api: gmail_v1.Gmail;
let auth: OAuth2Client;
let truth: Awaited<ReturnType<Emulator["control"]["mailbox"]>>;

beforeAll(async () => {
  emu = await startEmulator({ seed: 42, messages: 300, accounts: [ALICE], addedNotFoundRate: 0 });
  ({ api, auth } = await clientFor(emu));
  truth = await emu.control.mailbox(ALICE);
});
afterAll(async () => {
  await emu.close();
});

/** A recorded Gmail answer's body (some recordings wrap it in {method, endpoint, response, …}). */
function recorded<T = gmail_v1.Schema$Message>(name: string): T {
  const body = loadSample(name)?.body as Record<string, unknown>;
  return (body && "response" in body && !("id" in body) ? body.response : body) as T;
}

function parts(
  p: gmail_v1.Schema$MessagePart | undefined,
  out: gmail_v1.Schema$MessagePart[] = [],
): gmail_v1.Schema$MessagePart[] {
  if (!p) return out;
  out.push(p);
  for (const c of p.parts ?? []) parts(c, out);
  return out;
}

const withoutParts = (p: object) =>
  Object.fromEntries(Object.entries(p).filter(([k]) => k !== "parts" && k !== "payload"));

const withAttachment = () =>
  truth.messages.find((m) =>
    m.attachments.some((a) => a.filename?.endsWith(".pdf")),
  ) as (typeof truth.messages)[number];

describe.skipIf(!samplesPresent)("formats against Gmail's recorded answers", () => {
  it('minimal: {id, threadId, labelIds, payload: {partId: ""}, sizeEstimate, historyId, internalDate}, no snippet (messages.get and threads.get)', async () => {
    const m = truth.messages[0] as (typeof truth.messages)[number];
    const msg = (await api.users.messages.get({ userId: "me", id: m.id, format: "minimal" })).data;
    expect(msg.payload).toEqual({ partId: "" });
    expect(msg).not.toHaveProperty("snippet");
    expect(shapeDiff(msg, shapeOf(recorded("messages_get_minimal.json")))).toEqual([]);
    const thread = (await api.users.threads.get({ userId: "me", id: m.threadId, format: "minimal" })).data;
    expect(shapeDiff(thread, shapeOf(recorded("threads_get_minimal.json")))).toEqual([]);
    for (const tm of thread.messages ?? []) expect(tm.payload).toEqual({ partId: "" });
  });

  it("metadata: payload {mimeType, headers} only (messages.get and threads.get)", async () => {
    const m = withAttachment();
    const msg = (await api.users.messages.get({ userId: "me", id: m.id, format: "metadata" })).data;
    expect(Object.keys(msg.payload ?? {})).toEqual(["mimeType", "headers"]);
    expect(
      shapeDiff(
        msg,
        shapeOf(
          recorded("messages_get_metadata_multipart_attachment.json"),
          recorded("messages_get_metadata_draft.json"),
        ),
      ),
    ).toEqual([]);
    const thread = (await api.users.threads.get({ userId: "me", id: m.threadId, format: "metadata" })).data;
    expect(
      shapeDiff(
        thread,
        shapeOf(
          recorded("threads_get_metadata_2msgs.json"),
          recorded("threads_get_metadata_threadid_not_a_message.json"),
        ),
      ),
    ).toEqual([]);
  });

  it("full: the message and every part of every generated message have the recorded shapes", async () => {
    const fulls = [
      "messages_get_full_multipart_mixed_attachments_2024-10.json",
      "messages_get_full_text_plain_with_headers.json",
      "messages_get_full_iso8859_html_converted.json",
      "messages_get_full_draft_empty_snippet.json",
    ].map((n) => recorded(n));
    const messageShape = shapeOf(...fulls.map(withoutParts));
    const partShape = shapeOf(...fulls.flatMap((f) => parts(f.payload)).map(withoutParts));
    for (const m of truth.messages.slice(0, 120)) {
      const msg = (await api.users.messages.get({ userId: "me", id: m.id })).data;
      expect(shapeDiff(withoutParts(msg), messageShape), m.id).toEqual([]);
      for (const p of parts(msg.payload))
        expect(shapeDiff(withoutParts(p), partShape), `${m.id} ${p.partId}`).toEqual([]);
    }
  });
});

describe("drafts in generated mail", () => {
  it("DRAFT-only messages from the owner, listed and threaded; one with an empty snippet shaped like the recorded one", async () => {
    const drafts = truth.messages.filter((m) => m.labelIds.includes("DRAFT"));
    expect(drafts.length).toBeGreaterThanOrEqual(3);
    let empty = 0;
    let inThread = 0;
    for (const d of drafts) {
      expect(d.labelIds).toEqual(["DRAFT"]);
      const msg = (await api.users.messages.get({ userId: "me", id: d.id })).data;
      expect(msg.payload?.headers?.find((h) => h.name === "From")?.value).toContain(ALICE);
      if (msg.snippet === "") {
        empty++;
        expect(msg.payload?.mimeType).toBe("multipart/alternative");
        if (samplesPresent)
          expect(shapeDiff(msg, shapeOf(recorded("messages_get_full_draft_empty_snippet.json")))).toEqual([]);
      }
      const thread = (await api.users.threads.get({ userId: "me", id: d.threadId, format: "minimal" })).data;
      if ((thread.messages?.length ?? 0) > 1) inThread++;
    }
    expect(empty).toBeGreaterThan(0);
    expect(inThread).toBeGreaterThan(0);
    const listed = new Set(
      (await api.users.messages.list({ userId: "me", labelIds: ["DRAFT"], maxResults: 500 })).data.messages?.map(
        (m) => m.id,
      ),
    );
    expect(listed).toEqual(new Set(drafts.map((d) => d.id)));
  });

  it("drafts: false generates none", async () => {
    const plain = await startEmulator({ seed: 42, messages: 300, accounts: [ALICE], drafts: false });
    try {
      expect((await plain.control.mailbox(ALICE)).messages.some((m) => m.labelIds.includes("DRAFT"))).toBe(false);
    } finally {
      await plain.close();
    }
  });
});

describe("attachmentIds", () => {
  const pdfPart = (msg: gmail_v1.Schema$Message) =>
    parts(msg.payload).find((p) => p.filename?.endsWith(".pdf")) as gmail_v1.Schema$MessagePart;

  it("differ on every fetch, are Gmail's length, and every one handed out stays valid", async () => {
    const m = withAttachment();
    const fetches = await Promise.all(
      [0, 1, 2].map(async () => (await api.users.messages.get({ userId: "me", id: m.id })).data),
    );
    const ids = fetches.map((f) => pdfPart(f).body?.attachmentId as string);
    expect(new Set(ids).size).toBe(3);
    // They differ right after Gmail's common prefix, as the recorded refetch's do.
    expect(new Set(ids.map((id) => id.slice(0, 8))).size).toBe(3);
    const threadId = parts(
      (await api.users.threads.get({ userId: "me", id: m.threadId })).data.messages?.find((x) => x.id === m.id)
        ?.payload,
    ).find((p) => p.filename?.endsWith(".pdf"))?.body?.attachmentId;
    expect(ids).not.toContain(threadId);
    const bodies = await Promise.all(
      [...ids, threadId as string].map(
        async (id) => (await api.users.messages.attachments.get({ userId: "me", messageId: m.id, id })).data.data,
      ),
    );
    expect(new Set(bodies).size).toBe(1);
    for (const id of ids) {
      expect(id).toMatch(/^ANGjdJ[A-Za-z0-9_-]+$/);
      expect(Math.abs(id.length - 319)).toBeLessThanOrEqual(3);
    }
  });

  it.skipIf(!samplesPresent)("look like the recorded ones: same prefix, length within a few characters", () => {
    const a = recorded("messages_get_full_multipart_mixed_attachments_2024-10.json");
    const b = recorded("messages_get_full_multipart_mixed_attachments_refetch.json");
    const rec = [...parts(a.payload), ...parts(b.payload)]
      .map((p) => p.body?.attachmentId)
      .filter((x): x is string => !!x);
    expect(rec.length).toBeGreaterThan(0);
    expect(new Set(rec).size).toBe(rec.length); // the recorded fact: every fetch differs
    for (const id of rec) expect(id.startsWith("ANGjdJ")).toBe(true);
    const lengths = rec.map((id) => id.length);
    expect(Math.max(...lengths) - 318).toBeLessThanOrEqual(3);
  });

  it("are refused when forged, altered or another message's", async () => {
    const m = withAttachment();
    const id = pdfPart((await api.users.messages.get({ userId: "me", id: m.id })).data).body?.attachmentId as string;
    const other = truth.messages.find((x) => x.id !== m.id) as (typeof truth.messages)[number];
    const altered = id.slice(0, 40) + (id[40] === "A" ? "B" : "A") + id.slice(41);
    for (const [messageId, bad] of [
      [m.id, altered],
      [m.id, `ANGjdJ${"A".repeat(312)}`],
      [m.id, "not-an-id"],
      [other.id, id],
    ] as const) {
      const res = await rawGet(emu, auth, `/gmail/v1/users/me/messages/${messageId}/attachments/${bad}`);
      expect(res.status, bad.slice(0, 12)).toBe(400);
    }
  });

  it("attachmentIdsVary false: the same id on every fetch", async () => {
    const m = withAttachment();
    await emu.control.updateSettings({ attachmentIdsVary: false });
    try {
      const a = pdfPart((await api.users.messages.get({ userId: "me", id: m.id })).data).body?.attachmentId;
      const b = pdfPart((await api.users.messages.get({ userId: "me", id: m.id })).data).body?.attachmentId;
      expect(a).toBe(b);
    } finally {
      await emu.control.updateSettings({ attachmentIdsVary: true });
    }
  });
});

describe("bodies by reference", () => {
  /** A nameless text/html body of `size` bytes in windows-1252 (€ signs), labelled iso-8859-1. */
  function bigHtml(size: number): Buffer {
    const row = iconv.encode("<p>Preis: 12 € – Angebot</p>\r\n", "windows-1252");
    return Buffer.concat(Array.from({ length: Math.ceil(size / row.length) }, () => row));
  }
  async function deliver(html: Buffer): Promise<string> {
    const raw = Buffer.concat([
      Buffer.from(
        `From: News <news@example.net>\r\nTo: ${ALICE}\r\nSubject: Catalogue\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=b\r\n\r\n--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nSee the catalogue.\r\n--b\r\nContent-Type: text/html; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\n`,
      ),
      Buffer.from((html.toString("base64").match(/.{1,76}/g) ?? []).join("\r\n")),
      Buffer.from("\r\n--b--\r\n"),
    ]);
    return (await emu.control.deliver(ALICE, { raw, labelIds: ["INBOX"] })).id;
  }

  it("a text body above bodyByReferenceBytes comes with attachmentId, no data, no filename; attachments.get gives its bytes as sent; it is no attachment", async () => {
    const html = bigHtml(1_100_000);
    const id = await deliver(html);
    const part = (await api.users.messages.get({ userId: "me", id })).data.payload?.parts?.[1];
    expect(part?.filename).toBe("");
    expect(part?.body?.data).toBeUndefined();
    expect(part?.body?.size).toBe(html.length);
    expect(part?.body?.attachmentId).toMatch(/^ANGjdJ/);
    const att = (
      await api.users.messages.attachments.get({ userId: "me", messageId: id, id: part?.body?.attachmentId as string })
    ).data;
    expect(att.size).toBe(html.length);
    // Bytes as sent (windows-1252), like any attachment: not converted to UTF-8.
    expect(Buffer.from(att.data as string, "base64url").equals(html)).toBe(true);
    expect((await emu.control.mailbox(ALICE)).messages.find((m) => m.id === id)?.attachments).toEqual([]);
  });

  it("the threshold is the setting: 0 never, a small one sends small bodies by reference", async () => {
    const id = await deliver(bigHtml(1_100_000));
    try {
      await emu.control.updateSettings({ bodyByReferenceBytes: 0 });
      const inline = (await api.users.messages.get({ userId: "me", id })).data.payload?.parts?.[1];
      expect(inline?.body?.attachmentId).toBeUndefined();
      expect(
        Buffer.from(inline?.body?.data as string, "base64url")
          .toString()
          .slice(0, 30),
      ).toBe("<p>Preis: 12 € – Angebot</p>\r\n");
      await emu.control.updateSettings({ bodyByReferenceBytes: 10 });
      const small = (await api.users.messages.get({ userId: "me", id })).data.payload?.parts?.[0];
      expect(small?.body?.attachmentId).toBeDefined();
      expect(small?.body?.data).toBeUndefined();
    } finally {
      await emu.control.updateSettings({ bodyByReferenceBytes: 1_000_000 });
    }
  });

  it("a generated mailbox of 300 has one such body, not in the ground truth's attachments", async () => {
    let found = 0;
    for (const m of truth.messages) {
      const msg = (await api.users.messages.get({ userId: "me", id: m.id })).data;
      for (const p of parts(msg.payload)) {
        if (!p.mimeType?.startsWith("text/") || p.filename || !p.body?.attachmentId) continue;
        found++;
        expect(p.body.size).toBeGreaterThan(1_000_000);
        expect(m.attachments.some((a) => a.partId === p.partId)).toBe(false);
      }
    }
    expect(found).toBe(1);
  });
});

describe("JSON text as Gmail writes it", () => {
  const paths = (m: (typeof truth.messages)[number]) => [
    `/gmail/v1/users/me/messages/${m.id}`,
    `/gmail/v1/users/me/messages/${m.id}?format=metadata&metadataHeaders=Message-ID&metadataHeaders=From`,
    `/gmail/v1/users/me/messages/${m.id}?format=minimal`,
    `/gmail/v1/users/me/messages/${m.id}?format=raw`,
    `/gmail/v1/users/me/threads/${m.threadId}`,
    `/gmail/v1/users/me/threads/${m.threadId}?format=metadata`,
    `/gmail/v1/users/me/threads/${m.threadId}?format=minimal`,
  ];

  it("pretty (2 spaces, < and > as \\u003c \\u003e) equal to gmailJson of the same value; prettyPrint=false compact", async () => {
    const sample = [
      withAttachment(),
      ...truth.messages.filter((m) => m.labelIds.includes("DRAFT")).slice(0, 2),
      ...truth.messages.slice(0, 20),
    ];
    for (const m of sample) {
      for (const path of paths(m)) {
        const text = await (await rawGet(emu, auth, path)).text();
        expect(text, path).toBe(gmailJson(JSON.parse(text), true));
        expect(text).not.toMatch(/[<>]/);
        const compact = await (
          await rawGet(emu, auth, `${path + (path.includes("?") ? "&" : "?")}prettyPrint=false`)
        ).text();
        expect(compact, path).toBe(gmailJson(JSON.parse(compact), false));
      }
    }
    // Headers hold <message-ids>: the escaping was exercised.
    expect(await (await rawGet(emu, auth, paths(withAttachment())[0] as string)).text()).toContain("\\u003c");
  });

  it("prettyJson false: compact everywhere", async () => {
    await emu.control.updateSettings({ prettyJson: false });
    try {
      for (const path of paths(withAttachment())) {
        const text = await (await rawGet(emu, auth, path)).text();
        expect(text, path).toBe(JSON.stringify(JSON.parse(text)));
      }
    } finally {
      await emu.control.updateSettings({ prettyJson: true });
    }
  });
});
