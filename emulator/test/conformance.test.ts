// Conformance: every Gmail endpoint the emulator serves, called with the real @googleapis/gmail
// client, and every JSON answer checked against the discovery document's schemas. The payload
// trees of generated mail are cross-checked against an independent MIME parser (postal-mime).
import type { gmail_v1 } from "@googleapis/gmail";
import PostalMime from "postal-mime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../src/server.ts";
import { discoveryPath, loadDiscovery, responseSchema, validate } from "./discovery.ts";
import { clientFor } from "./helpers.ts";

const doc = loadDiscovery();
if (!doc)
  console.warn(`conformance: ${discoveryPath} not found — the schema comparison is skipped (set GMAIL_DISCOVERY_PATH)`);
const MODIFY = "https://www.googleapis.com/auth/gmail.modify";

/** Fields the emulator must always send, per schema (the discovery document marks none required). */
const ALWAYS: Record<string, string[]> = {
  Profile: ["emailAddress", "messagesTotal", "threadsTotal", "historyId"],
  ListMessagesResponse: ["resultSizeEstimate"],
  ListThreadsResponse: ["resultSizeEstimate"],
  ListHistoryResponse: ["historyId"],
  WatchResponse: ["historyId", "expiration"],
  ListLabelsResponse: ["labels"],
  Label: ["id", "name", "type"],
  Message: ["id", "threadId", "historyId", "internalDate", "sizeEstimate"],
  Thread: ["id", "historyId", "messages"],
  MessagePartBody: ["size"],
};

let emu: Emulator;
let api: gmail_v1.Gmail;
/** method id → responses collected while exercising the API. */
const answers = new Map<string, unknown[]>();

function keep<T>(method: string, data: T): T {
  const list = answers.get(method) ?? [];
  list.push(data);
  answers.set(method, list);
  return data;
}

function walkParts(
  part: gmail_v1.Schema$MessagePart,
  out: gmail_v1.Schema$MessagePart[] = [],
): gmail_v1.Schema$MessagePart[] {
  out.push(part);
  for (const p of part.parts ?? []) walkParts(p, out);
  return out;
}

/** The message's own parts: an attached message (message/rfc822) is a leaf here, its expanded tree left out. */
function ownParts(
  part: gmail_v1.Schema$MessagePart,
  out: gmail_v1.Schema$MessagePart[] = [],
): gmail_v1.Schema$MessagePart[] {
  out.push(part);
  if (part.mimeType !== "message/rfc822") for (const p of part.parts ?? []) ownParts(p, out);
  return out;
}

beforeAll(async () => {
  emu = await startEmulator({ seed: 21, messages: 40 });
  ({ api } = await clientFor(emu, "alice@example.com", [MODIFY]));
});
afterAll(async () => {
  await emu.close();
});

describe("conformance", () => {
  it("exercises every endpoint with the real client", async () => {
    const profile = keep("gmail.users.getProfile", (await api.users.getProfile({ userId: "me" })).data);
    expect(profile.messagesTotal).toBe(40);
    const labels = keep("gmail.users.labels.list", (await api.users.labels.list({ userId: "me" })).data);
    expect(labels.labels?.some((l) => l.type === "user")).toBe(true);
    for (const l of labels.labels ?? [])
      keep("gmail.users.labels.get", (await api.users.labels.get({ userId: "me", id: l.id as string })).data);

    const list = keep(
      "gmail.users.messages.list",
      (await api.users.messages.list({ userId: "me", maxResults: 500, includeSpamTrash: true })).data,
    );
    expect(list.messages).toHaveLength(40);
    keep(
      "gmail.users.messages.list",
      (await api.users.messages.list({ userId: "me", q: "has:attachment after:2020/01/01", labelIds: ["INBOX"] })).data,
    );
    keep("gmail.users.messages.list", (await api.users.messages.list({ userId: "me", q: "label:nonexistent" })).data);

    let attachmentsSeen = 0;
    for (const ref of list.messages ?? []) {
      const full = keep(
        "gmail.users.messages.get",
        (await api.users.messages.get({ userId: "me", id: ref.id as string })).data,
      );
      const raw = keep(
        "gmail.users.messages.get",
        (await api.users.messages.get({ userId: "me", id: ref.id as string, format: "raw" })).data,
      );
      keep(
        "gmail.users.messages.get",
        (
          await api.users.messages.get({
            userId: "me",
            id: ref.id as string,
            format: "metadata",
            metadataHeaders: ["From", "Subject"],
          })
        ).data,
      );
      keep(
        "gmail.users.messages.get",
        (await api.users.messages.get({ userId: "me", id: ref.id as string, format: "minimal" })).data,
      );

      // Independent check of the tree: postal-mime's named attachments are the parts that carry
      // a filename in our payload, with the same bytes (postal-mime turns CRLF into LF inside
      // text and message/rfc822 parts and keeps the line break that RFC 2046 assigns to the next
      // boundary; Gmail keeps the bytes: compare those normalised). postal-mime keeps an attached
      // message whole, so the parts Gmail expands inside it are compared separately below.
      const email = await PostalMime.parse(Buffer.from(raw.raw as string, "base64url"));
      const named = ownParts(full.payload as gmail_v1.Schema$MessagePart).filter((p) => p.filename);
      const inner = walkParts(full.payload as gmail_v1.Schema$MessagePart).filter(
        (p) => p.body?.attachmentId && !named.includes(p),
      );
      for (const p of inner) {
        const att = keep(
          "gmail.users.messages.attachments.get",
          (
            await api.users.messages.attachments.get({
              userId: "me",
              messageId: ref.id as string,
              id: p.body?.attachmentId as string,
            })
          ).data,
        );
        expect(att.size, `${p.partId} ${p.mimeType}`).toBe(p.body?.size);
      }
      const theirs = email.attachments.filter((a) => a.filename);
      expect(named.map((p) => p.filename).sort()).toEqual(theirs.map((a) => a.filename).sort());
      expect(full.payload?.headers?.find((h) => h.name === "Subject")?.value).toBe(email.subject);
      for (const p of named) {
        const att = keep(
          "gmail.users.messages.attachments.get",
          (
            await api.users.messages.attachments.get({
              userId: "me",
              messageId: ref.id as string,
              id: p.body?.attachmentId as string,
            })
          ).data,
        );
        expect(att.size).toBe(p.body?.size);
        const mine = Buffer.from(att.data as string, "base64url");
        expect(mine.length).toBe(att.size);
        const other = Buffer.from(
          (theirs.find((a) => a.filename === p.filename)?.content as ArrayBuffer) ?? new ArrayBuffer(0),
        );
        const textual = /^(text|message)\//.test(p.mimeType as string);
        const norm = (b: Buffer) =>
          textual ? b.toString("latin1").replace(/\r\n/g, "\n").replace(/\n+$/, "") : b.toString("latin1");
        expect(norm(mine) === norm(other), `${p.filename} (${p.mimeType}) bytes`).toBe(true);
        attachmentsSeen++;
      }
    }
    expect(attachmentsSeen).toBeGreaterThan(0);

    const threads = keep(
      "gmail.users.threads.list",
      (await api.users.threads.list({ userId: "me", maxResults: 5 })).data,
    );
    keep(
      "gmail.users.threads.list",
      (await api.users.threads.list({ userId: "me", pageToken: threads.nextPageToken as string })).data,
    );
    for (const format of ["full", "metadata", "minimal"])
      keep(
        "gmail.users.threads.get",
        (await api.users.threads.get({ userId: "me", id: threads.threads?.[0]?.id as string, format })).data,
      );

    const first = list.messages?.[0]?.id as string;
    keep(
      "gmail.users.messages.modify",
      (
        await api.users.messages.modify({
          userId: "me",
          id: first,
          requestBody: { addLabelIds: ["STARRED"], removeLabelIds: ["UNREAD"] },
        })
      ).data,
    );
    await emu.control.deliver("alice@example.com", {});
    keep(
      "gmail.users.history.list",
      (await api.users.history.list({ userId: "me", startHistoryId: profile.historyId as string })).data,
    );
    keep(
      "gmail.users.history.list",
      (
        await api.users.history.list({
          userId: "me",
          startHistoryId: profile.historyId as string,
          historyTypes: ["labelRemoved"],
          labelId: "UNREAD",
        })
      ).data,
    );
    keep(
      "gmail.users.watch",
      (await api.users.watch({ userId: "me", requestBody: { topicName: "projects/p/topics/t" } })).data,
    );
    const stop = await api.users.stop({ userId: "me" });
    expect(stop.status).toBe(204);
  });

  it.skipIf(!doc)(`matches the discovery document's schemas (${discoveryPath})`, () => {
    if (!doc) return;
    expect(answers.size).toBe(11);
    for (const [method, list] of answers) {
      const schema = responseSchema(doc, method);
      expect(schema, method).toBeDefined();
      for (const data of list) expect(validate(doc, schema as string, data), `${method} → ${schema}`).toEqual([]);
      for (const data of list) {
        for (const field of ALWAYS[schema as string] ?? []) expect(data, `${method}.${field}`).toHaveProperty(field);
      }
    }
    // Nested shapes too: every message part has Gmail's fields.
    for (const m of answers.get("gmail.users.messages.get") ?? []) {
      const payload = (m as gmail_v1.Schema$Message).payload;
      if (!payload?.body) continue;
      for (const p of walkParts(payload))
        for (const k of ["partId", "mimeType", "filename", "headers", "body"]) expect(p).toHaveProperty(k);
    }
  });

  it.skipIf(!doc)("the validator itself rejects wrong shapes", () => {
    if (!doc) return;
    expect(validate(doc, "Profile", { emailAddress: "a", messagesTotal: "1", historyId: 5 })).toHaveLength(2);
    expect(validate(doc, "Message", { id: "1", threadId: "1", labelIds: [], bogus: true })).toHaveLength(2);
    expect(validate(doc, "Message", { id: "1", payload: { partId: "", body: { size: 1.5 } } })).toHaveLength(1);
  });
});
