// The Gmail API surface, driven with the real @googleapis/gmail client over HTTP.
import type { gmail_v1 } from "@googleapis/gmail";
import type { OAuth2Client } from "google-auth-library";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../src/server.ts";
import { clientFor, compose, rawGet } from "./helpers.ts";

const ALICE = "alice@example.com";
let emu: Emulator;
let api: gmail_v1.Gmail;
let auth: OAuth2Client;

beforeAll(async () => {
  // Messages are read right after delivery here; the post-delivery 404 race has tests of its own.
  emu = await startEmulator({ seed: 7, accounts: [ALICE, "bob@example.com"], addedNotFoundRate: 0 });
  ({ api, auth } = await clientFor(emu));
});
afterAll(async () => {
  await emu.close();
});

const pdfBytes = Buffer.concat([Buffer.from("%PDF-1.4\n"), Buffer.alloc(6000, 7), Buffer.from("\n%%EOF\n")]);

async function richMessage(): Promise<Buffer> {
  return compose({
    from: "Zoë Müller <zoe@example.net>",
    to: ALICE,
    subject: "Réunion — ordre du jour",
    messageId: "<rich-1@example.net>",
    text: "Bonjour,\r\nvoici l'ordre du jour.\r\n",
    html: "<p>Bonjour, voici l'<b>ordre</b> du jour.</p>",
    attachments: [{ filename: "agenda.pdf", content: pdfBytes, contentType: "application/pdf" }],
  });
}

describe("messages", () => {
  it("serves the full payload tree derived from the MIME bytes, raw, metadata and minimal", async () => {
    const raw = await richMessage();
    const { id, threadId } = await emu.control.deliver(ALICE, { raw, labelIds: ["INBOX", "UNREAD"] });
    expect(id).toMatch(/^[0-9a-f]{16}$/);
    // As Gmail's often are, the new thread's id is no message's id (threads-trash.test.ts covers it).
    expect(threadId).toMatch(/^[0-9a-f]{16}$/);
    expect(threadId).not.toBe(id);

    const full = (await api.users.messages.get({ userId: "me", id })).data;
    expect(full.labelIds).toEqual(["INBOX", "UNREAD"]);
    expect(full.sizeEstimate).toBe(raw.length);
    expect(full.internalDate).toMatch(/^\d+$/);
    expect(full.historyId).toMatch(/^\d+$/);
    expect(full.snippet).toBe("Bonjour, voici l&#39;ordre du jour.");
    const p = full.payload as gmail_v1.Schema$MessagePart;
    expect(p.partId).toBe("");
    expect(p.mimeType).toBe("multipart/mixed");
    expect(p.body).toEqual({ size: 0 });
    expect(p.headers?.find((h) => h.name === "Subject")?.value).toBe("Réunion — ordre du jour");
    expect(p.headers?.find((h) => h.name === "From")?.value).toBe("Zoë Müller <zoe@example.net>");
    expect(p.parts?.map((x) => [x.partId, x.mimeType])).toEqual([
      ["0", "multipart/alternative"],
      ["1", "application/pdf"],
    ]);
    const alt = p.parts?.[0]?.parts ?? [];
    expect(alt.map((x) => [x.partId, x.mimeType])).toEqual([
      ["0.0", "text/plain"],
      ["0.1", "text/html"],
    ]);
    const text = alt[0]?.body as gmail_v1.Schema$MessagePartBody;
    expect(Buffer.from(text.data as string, "base64url").toString()).toBe("Bonjour,\r\nvoici l'ordre du jour.\r\n");
    expect(text.size).toBe(Buffer.byteLength("Bonjour,\r\nvoici l'ordre du jour.\r\n"));
    expect(text.attachmentId).toBeUndefined();
    const pdf = p.parts?.[1] as gmail_v1.Schema$MessagePart;
    expect(pdf.filename).toBe("agenda.pdf");
    expect(pdf.body?.data).toBeUndefined();
    expect(pdf.body?.size).toBe(pdfBytes.length);

    const att = (
      await api.users.messages.attachments.get({ userId: "me", messageId: id, id: pdf.body?.attachmentId as string })
    ).data;
    expect(att.size).toBe(pdfBytes.length);
    expect(Buffer.from(att.data as string, "base64url").equals(pdfBytes)).toBe(true);

    const rawFmt = (await api.users.messages.get({ userId: "me", id, format: "raw" })).data;
    expect(rawFmt.payload).toBeUndefined();
    expect(Buffer.from(rawFmt.raw as string, "base64url").equals(raw)).toBe(true);

    const meta = (
      await api.users.messages.get({
        userId: ALICE,
        id,
        format: "metadata",
        metadataHeaders: ["Subject", "message-id"],
      })
    ).data;
    expect(meta.payload?.headers?.map((h) => h.name)).toEqual(["Subject", "Message-ID"]);
    expect(meta.payload?.parts).toBeUndefined();

    const minimal = (await api.users.messages.get({ userId: "me", id, format: "minimal" })).data;
    // Gmail's minimal form: payload {partId: ""}, no snippet (gmail-real-samples/messages_get_minimal.json).
    expect(minimal.payload).toEqual({ partId: "" });
    expect(minimal.snippet).toBeUndefined();
    expect(minimal.labelIds).toEqual(["INBOX", "UNREAD"]);
  });

  it("delivers generated mail with or without an attachment on request", async () => {
    const withOne = await emu.control.deliver(ALICE, { attachments: true });
    const without = await emu.control.deliver(ALICE, { attachments: false });
    const truth = await emu.control.mailbox(ALICE);
    expect(truth.messages.find((m) => m.id === withOne.id)?.attachments).toHaveLength(1);
    expect(truth.messages.find((m) => m.id === without.id)?.attachments).toEqual([]);
    await emu.control.deleteMessage(ALICE, withOne.id);
    await emu.control.deleteMessage(ALICE, without.id);
  });

  it("threads replies by In-Reply-To/References and serves threads", async () => {
    const first = await emu.control.deliver(ALICE, {
      raw: await compose({
        from: "a@example.net",
        to: ALICE,
        subject: "Plan",
        messageId: "<plan-1@example.net>",
        text: "one",
      }),
    });
    const reply = await emu.control.deliver(ALICE, {
      raw: await compose({
        from: "b@example.net",
        to: ALICE,
        subject: "Re: Plan",
        messageId: "<plan-2@example.net>",
        inReplyTo: "<plan-1@example.net>",
        references: ["<plan-1@example.net>"],
        text: "two",
      }),
    });
    const other = await emu.control.deliver(ALICE, {
      raw: await compose({ from: "c@example.net", to: ALICE, subject: "Other", text: "three" }),
    });
    expect(reply.threadId).toBe(first.threadId);
    expect(other.threadId).not.toBe(first.threadId);
    const thread = (await api.users.threads.get({ userId: "me", id: first.threadId, format: "minimal" })).data;
    expect(thread.messages?.map((m) => m.id)).toEqual([first.id, reply.id]);
    const threads = (await api.users.threads.list({ userId: "me", q: "from:b@example.net" })).data;
    expect(threads.threads?.map((t) => t.id)).toEqual([first.threadId]);
  });

  it("lists newest first with paging, filters and omitted empty lists", async () => {
    const ids: string[] = [];
    let pageToken: string | undefined;
    do {
      const page = (await api.users.messages.list({ userId: "me", maxResults: 2, ...(pageToken ? { pageToken } : {}) }))
        .data;
      ids.push(...(page.messages ?? []).map((m) => m.id as string));
      pageToken = page.nextPageToken ?? undefined;
    } while (pageToken);
    const truth = await emu.control.mailbox(ALICE);
    expect(ids).toEqual(truth.messages.map((m) => m.id));
    expect(new Set(ids).size).toBe(ids.length);

    const labelled = await emu.control.deliver(ALICE, {
      raw: await compose({ from: "d@example.net", to: ALICE, subject: "Atlas kickoff", text: "x" }),
      labelIds: ["INBOX", "Projects/Atlas"],
    });
    const byLabel = (await api.users.messages.list({ userId: "me", q: "label:projects-atlas -from:nobody" })).data;
    expect(byLabel.messages?.map((m) => m.id)).toEqual([labelled.id]);
    const userLabel = (await api.users.labels.list({ userId: "me" })).data.labels?.find(
      (l) => l.name === "Projects/Atlas",
    );
    expect(userLabel).toMatchObject({ type: "user", id: expect.stringMatching(/^Label_\d+$/) });
    expect(
      (await api.users.messages.list({ userId: "me", labelIds: [userLabel?.id as string] })).data.messages,
    ).toHaveLength(1);
    await emu.control.deleteMessage(ALICE, labelled.id);

    const old = await emu.control.deliver(ALICE, {
      raw: await compose({ from: "e@example.net", to: ALICE, subject: "Old news", text: "y" }),
      internalDate: Date.UTC(2020, 5, 1),
    });
    const before = (await api.users.messages.list({ userId: "me", q: "before:2021/01/01" })).data;
    expect(before.messages?.map((m) => m.id)).toEqual([old.id]);
    expect(
      (await api.users.messages.list({ userId: "me", q: `after:${Date.UTC(2020, 5, 2) / 1000} older_than:1d` })).data,
    ).toEqual({ resultSizeEstimate: 0 });
    expect((await api.users.messages.list({ userId: "me", maxResults: 500 })).data.messages?.at(-1)?.id).toBe(old.id);
    await emu.control.deleteMessage(ALICE, old.id);

    const withAttachment = (await api.users.messages.list({ userId: "me", q: "has:attachment" })).data;
    expect(withAttachment.messages).toHaveLength(1);
    const none = await rawGet(emu, auth, "/gmail/v1/users/me/messages?labelIds=STARRED");
    expect(await none.json()).toEqual({ resultSizeEstimate: 0 });
  });

  it("answers 400 Invalid id value for malformed ids and 404 for unknown ones", async () => {
    for (const bad of ["xyz", "8000000000000000", "123456789abcdef01"]) {
      const res = await rawGet(emu, auth, `/gmail/v1/users/me/messages/${bad}`);
      expect(res.status).toBe(400);
      const body = (await res.json()) as { error: { message: string; status: string } };
      expect(body.error.message).toBe("Invalid id value");
      expect(body.error.status).toBe("INVALID_ARGUMENT");
    }
    const res = await rawGet(emu, auth, "/gmail/v1/users/me/messages/0000000000000abc");
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: {
        code: 404,
        message: "Requested entity was not found.",
        errors: [{ message: "Requested entity was not found.", domain: "global", reason: "notFound" }],
        status: "NOT_FOUND",
      },
    });
  });

  it("refuses another user's mailbox with the caller's token", async () => {
    const res = await rawGet(emu, auth, "/gmail/v1/users/bob%40example.com/profile");
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe(`Delegation denied for ${ALICE}`);
  });
});

describe("determinism", () => {
  it("builds the same mailbox (ids, threads, labels, attachments, history id) from the same seed", async () => {
    const [a, b] = await Promise.all([
      startEmulator({ seed: 99, messages: 30 }),
      startEmulator({ seed: 99, messages: 30 }),
    ]);
    try {
      const [ma, mb] = await Promise.all([a.control.mailbox(ALICE), b.control.mailbox(ALICE)]);
      expect(ma.messages).toHaveLength(30);
      expect(mb).toEqual(ma);
      expect(new Set(ma.messages.map((m) => m.threadId)).size).toBeLessThan(30);
    } finally {
      await Promise.all([a.close(), b.close()]);
    }
  });
});

describe("history", () => {
  it("records every change with increasing ids, filters by type and pages", async () => {
    // Records holding only `messages` are history.test.ts's subject; here every record is typed.
    await emu.control.updateSettings({ historyMessagesOnlyRate: 0 });
    const start = (await api.users.getProfile({ userId: "me" })).data.historyId as string;
    const a = await emu.control.deliver(ALICE, {});
    await emu.control.modifyLabels(ALICE, a.id, { add: ["STARRED"], remove: ["UNREAD"] });
    await emu.control.deleteMessage(ALICE, a.id);
    await emu.control.updateSettings({ historyMessagesOnlyRate: 0.1 });

    const all = (await api.users.history.list({ userId: "me", startHistoryId: start })).data;
    const ids = (all.history ?? []).map((h) => BigInt(h.id as string));
    expect(ids).toHaveLength(3);
    expect([...ids].sort((x, y) => (x < y ? -1 : 1))).toEqual(ids);
    expect(ids[0]).toBeGreaterThan(BigInt(start));
    expect(all.historyId).toBe((await emu.control.mailbox(ALICE)).historyId);
    const [added, relabelled, deleted] = all.history ?? [];
    expect(added?.messagesAdded?.[0]?.message?.id).toBe(a.id);
    // One modify that adds and removes writes one record holding both.
    expect(relabelled?.labelsAdded?.[0]?.labelIds).toEqual(["STARRED"]);
    expect(relabelled?.labelsRemoved?.[0]?.labelIds).toEqual(["UNREAD"]);
    expect(relabelled?.messages).toEqual([{ id: a.id, threadId: a.threadId }]);
    expect(deleted?.messagesDeleted?.[0]?.message?.id).toBe(a.id);

    const onlyAdded = (
      await api.users.history.list({ userId: "me", startHistoryId: start, historyTypes: ["messageAdded"] })
    ).data;
    expect(onlyAdded.history?.map((h) => h.id)).toEqual([added?.id]);

    const paged: string[] = [];
    let pageToken: string | undefined;
    do {
      const page = (
        await api.users.history.list({
          userId: "me",
          startHistoryId: start,
          maxResults: 3,
          ...(pageToken ? { pageToken } : {}),
        })
      ).data;
      paged.push(...(page.history ?? []).map((h) => h.id as string));
      pageToken = page.nextPageToken ?? undefined;
    } while (pageToken);
    expect(paged).toEqual(all.history?.map((h) => h.id));

    const nothing = (await api.users.history.list({ userId: "me", startHistoryId: all.historyId as string })).data;
    expect(nothing).toEqual({ historyId: all.historyId });
  });

  it("answers 404 with Google's envelope when startHistoryId has aged out", async () => {
    const old = (await api.users.getProfile({ userId: "me" })).data.historyId as string;
    await emu.control.deliver(ALICE, {});
    await emu.control.expireHistory(ALICE);
    const res = await rawGet(emu, auth, `/gmail/v1/users/me/history?startHistoryId=${old}`);
    expect(res.status).toBe(404);
    expect(await res.json()).toEqual({
      error: {
        code: 404,
        message: "Requested entity was not found.",
        errors: [{ message: "Requested entity was not found.", domain: "global", reason: "notFound" }],
        status: "NOT_FOUND",
      },
    });
    const current = (await emu.control.mailbox(ALICE)).historyId;
    expect((await api.users.history.list({ userId: "me", startHistoryId: current })).data).toEqual({
      historyId: current,
    });
    const missing = await rawGet(emu, auth, "/gmail/v1/users/me/history");
    expect(missing.status).toBe(400);
  });
});
