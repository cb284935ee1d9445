// Thread and trash endpoints (messages.trash/untrash, threads.modify/trash/untrash, modify's
// answer) with Gmail's answers and costs, thread ids that are no message's id, whole-second
// internalDate, approximate resultSizeEstimate and labels.list/get visibility fields, through the
// real client and compared with recorded Gmail answers (gmail-real-samples/).
import type { gmail_v1 } from "@googleapis/gmail";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../src/server.ts";
import { loadDiscovery, responseSchema, validate } from "./discovery.ts";
import { clientFor, compose } from "./helpers.ts";
import { sampleShape, samplesPresent, shapeDiff } from "./sample-shape.ts";

const ALICE = "alice@example.com";
const MODIFY = "https://www.googleapis.com/auth/gmail.modify";
let emu: Emulator;
let api: gmail_v1.Gmail;

beforeAll(async () => {
  // Messages are read right after delivery here; the post-delivery 404 race has tests of its own.
  emu = await startEmulator({ seed: 31, accounts: [ALICE], messages: 30, addedNotFoundRate: 0 });
  ({ api } = await clientFor(emu, ALICE, [MODIFY]));
});
afterAll(async () => {
  await emu.close();
});

let serial = 0;
async function thread(): Promise<{ threadId: string; sent: string; reply: string }> {
  const n = ++serial;
  const sent = await emu.control.deliver(ALICE, {
    raw: await compose({
      from: ALICE,
      to: "bob@example.net",
      subject: `Trip ${n}`,
      messageId: `<trip-${n}@example.com>`,
      text: "first",
    }),
    labelIds: ["SENT"],
  });
  const reply = await emu.control.deliver(ALICE, {
    raw: await compose({
      from: "bob@example.net",
      to: ALICE,
      subject: `Re: Trip ${n}`,
      messageId: `<trip-${n}-re@example.net>`,
      inReplyTo: `<trip-${n}@example.com>`,
      references: [`<trip-${n}@example.com>`],
      text: "second",
    }),
    labelIds: ["UNREAD", "INBOX"],
  });
  return { threadId: sent.threadId, sent: sent.id, reply: reply.id };
}

const doc = loadDiscovery();
const shape = (name: string) => sampleShape(name) as NonNullable<ReturnType<typeof sampleShape>>;
const unitsSpent = async () => (await emu.control.stats()).quotaUnits[ALICE] ?? 0;

describe("trash and untrash", () => {
  it("messages.trash adds TRASH and removes INBOX, answering id, threadId and labelIds only; untrash removes TRASH only", async () => {
    const t = await thread();
    const trashed = (await api.users.messages.trash({ userId: "me", id: t.reply })).data;
    expect(trashed).toEqual({
      id: t.reply,
      threadId: t.threadId,
      labelIds: expect.arrayContaining(["TRASH", "UNREAD"]),
    });
    expect(trashed.labelIds).not.toContain("INBOX");
    if (samplesPresent) expect(shapeDiff(trashed, shape("messages_trash_response.json"))).toEqual([]);
    // Trashed mail leaves the default listing.
    expect(
      (await api.users.messages.list({ userId: "me", maxResults: 500 })).data.messages?.map((m) => m.id),
    ).not.toContain(t.reply);

    const untrashed = (await api.users.messages.untrash({ userId: "me", id: t.reply })).data;
    expect(untrashed.labelIds).toEqual(["UNREAD"]);
    expect(untrashed).toMatchObject({
      id: t.reply,
      threadId: t.threadId,
      snippet: "second",
      historyId: expect.stringMatching(/^\d+$/),
      internalDate: expect.stringMatching(/^\d+000$/),
    });
    expect(untrashed.payload).toBeUndefined();
    if (samplesPresent) expect(shapeDiff(untrashed, shape("messages_untrash_response.json"))).toEqual([]);
  });

  it("threads.trash answers the thread's messages in short form (no historyId); threads.untrash the longer form", async () => {
    const t = await thread();
    const trashed = (await api.users.threads.trash({ userId: "me", id: t.threadId })).data;
    expect(trashed.id).toBe(t.threadId);
    expect(trashed.historyId).toBeUndefined();
    expect(trashed.messages?.map((m) => [m.id, [...(m.labelIds ?? [])].sort()])).toEqual([
      [t.sent, ["SENT", "TRASH"]],
      [t.reply, ["TRASH", "UNREAD"]],
    ]);
    if (samplesPresent) expect(shapeDiff(trashed, shape("threads_trash_response.json"))).toEqual([]);

    const untrashed = (await api.users.threads.untrash({ userId: "me", id: t.threadId })).data;
    expect(untrashed.messages?.map((m) => m.labelIds)).toEqual([["SENT"], ["UNREAD"]]);
    // No recording of threads.untrash: it answers like threads.modify.
    if (samplesPresent) expect(shapeDiff(untrashed, shape("threads_modify_response.json"))).toEqual([]);
  });

  it("refuses a read-only token, an unknown thread and a malformed id", async () => {
    const t = await thread();
    const { api: reader } = await clientFor(emu, ALICE);
    await expect(reader.users.messages.trash({ userId: "me", id: t.reply })).rejects.toMatchObject({ status: 403 });
    await expect(
      reader.users.threads.modify({ userId: "me", id: t.threadId, requestBody: { addLabelIds: ["STARRED"] } }),
    ).rejects.toMatchObject({ status: 403 });
    await expect(api.users.threads.trash({ userId: "me", id: "0000000000000abc" })).rejects.toMatchObject({
      status: 404,
    });
    await expect(api.users.messages.untrash({ userId: "me", id: "nothex" })).rejects.toMatchObject({ status: 400 });
    await expect(
      api.users.threads.modify({ userId: "me", id: t.threadId, requestBody: { addLabelIds: ["NO_SUCH_LABEL"] } }),
    ).rejects.toMatchObject({ status: 400 });
  });
});

describe("discovery schemas", () => {
  it.skipIf(!doc)("every new endpoint's answer fits its schema in the discovery document", async () => {
    if (!doc) return;
    const t = await thread();
    const answers: Array<[string, unknown]> = [
      ["gmail.users.messages.trash", (await api.users.messages.trash({ userId: "me", id: t.reply })).data],
      ["gmail.users.messages.untrash", (await api.users.messages.untrash({ userId: "me", id: t.reply })).data],
      [
        "gmail.users.threads.modify",
        (await api.users.threads.modify({ userId: "me", id: t.threadId, requestBody: { addLabelIds: ["STARRED"] } }))
          .data,
      ],
      ["gmail.users.threads.trash", (await api.users.threads.trash({ userId: "me", id: t.threadId })).data],
      ["gmail.users.threads.untrash", (await api.users.threads.untrash({ userId: "me", id: t.threadId })).data],
    ];
    for (const [method, data] of answers)
      expect(validate(doc, responseSchema(doc, method) as string, data), method).toEqual([]);
  });
});

describe("modify answers", () => {
  it("messages.modify and threads.modify answer Gmail's shapes: messages without payload", async () => {
    const t = await thread();
    const msg = (
      await api.users.messages.modify({ userId: "me", id: t.reply, requestBody: { addLabelIds: ["STARRED"] } })
    ).data;
    expect(msg).toMatchObject({
      id: t.reply,
      threadId: t.threadId,
      labelIds: ["UNREAD", "INBOX", "STARRED"],
      snippet: "second",
    });
    expect(msg.payload).toBeUndefined();
    if (samplesPresent) expect(shapeDiff(msg, shape("messages_modify_response.json"))).toEqual([]);

    const th = (
      await api.users.threads.modify({ userId: "me", id: t.threadId, requestBody: { removeLabelIds: ["UNREAD"] } })
    ).data;
    expect(th.id).toBe(t.threadId);
    expect(th.messages?.map((m) => m.id)).toEqual([t.sent, t.reply]);
    expect(th.messages?.[1]?.labelIds).toEqual(["INBOX", "STARRED"]);
    expect(th.historyId).toBe(th.messages?.[1]?.historyId);
    if (samplesPresent) expect(shapeDiff(th, shape("threads_modify_response.json"))).toEqual([]);
  });

  it("charges Gmail's unit costs: trash/untrash 5, batchModify 50, thread operations 10", async () => {
    const t = await thread();
    const cost = async (call: () => Promise<unknown>) => {
      const before = await unitsSpent();
      await call();
      return (await unitsSpent()) - before;
    };
    expect(await cost(() => api.users.messages.trash({ userId: "me", id: t.reply }))).toBe(5);
    expect(await cost(() => api.users.messages.untrash({ userId: "me", id: t.reply }))).toBe(5);
    expect(
      await cost(() =>
        api.users.messages.batchModify({
          userId: "me",
          requestBody: { ids: [t.sent, t.reply], addLabelIds: ["STARRED"] },
        }),
      ),
    ).toBe(50);
    expect(
      await cost(() =>
        api.users.threads.modify({ userId: "me", id: t.threadId, requestBody: { removeLabelIds: ["STARRED"] } }),
      ),
    ).toBe(10);
    expect(await cost(() => api.users.threads.trash({ userId: "me", id: t.threadId }))).toBe(10);
    expect(await cost(() => api.users.threads.untrash({ userId: "me", id: t.threadId }))).toBe(10);
  });
});

describe("thread ids", () => {
  it("are by default no message's id, generated or delivered (threads_get_metadata_threadid_not_a_message.json)", async () => {
    const truth = await emu.control.mailbox(ALICE);
    const ids = new Set(truth.messages.map((m) => m.id));
    const threads = new Map<string, string[]>();
    for (const m of [...truth.messages].reverse()) threads.set(m.threadId, [...(threads.get(m.threadId) ?? []), m.id]);
    for (const [threadId, members] of threads) {
      expect(threadId).toMatch(/^[0-9a-f]{16}$/);
      expect(ids.has(threadId)).toBe(false);
      // Allocated a moment before the first message, like Gmail's (a few seconds of id time).
      expect(threadId < (members[0] as string)).toBe(true);
    }
    const t = await thread();
    const got = (await api.users.threads.get({ userId: "me", id: t.threadId, format: "minimal" })).data;
    expect(got.messages?.map((m) => m.id)).toEqual([t.sent, t.reply]);
    expect(got.messages?.map((m) => m.id)).not.toContain(t.threadId);
  });

  it("equal the first message's id with threadIdsAreMessageIds", async () => {
    const plain = await startEmulator({
      seed: 31,
      accounts: [ALICE],
      messages: 30,
      threadIdsAreMessageIds: true,
      addedNotFoundRate: 0,
    });
    try {
      const truth = await plain.control.mailbox(ALICE);
      const oldest = new Map<string, string>();
      for (const m of truth.messages) oldest.set(m.threadId, m.id); // newest first: the last seen is the oldest
      for (const [threadId, first] of oldest) expect(threadId).toBe(first);
      const d = await plain.control.deliver(ALICE, {});
      expect(d.threadId).toBe(d.id);
    } finally {
      await plain.close();
    }
  });
});

describe("internalDate", () => {
  it("is whole seconds, for deliveries given in milliseconds and for generated mail", async () => {
    const d = await emu.control.deliver(ALICE, { internalDate: 1_700_000_000_987 });
    expect((await api.users.messages.get({ userId: "me", id: d.id, format: "minimal" })).data.internalDate).toBe(
      "1700000000000",
    );
    const now = await emu.control.deliver(ALICE, {});
    expect(
      Number((await api.users.messages.get({ userId: "me", id: now.id, format: "minimal" })).data.internalDate) % 1000,
    ).toBe(0);
    const page = (await api.users.messages.list({ userId: "me", maxResults: 10 })).data.messages ?? [];
    for (const m of page)
      expect(
        Number(
          (await api.users.messages.get({ userId: "me", id: m.id as string, format: "minimal" })).data.internalDate,
        ) % 1000,
      ).toBe(0);
  });
});

describe("resultSizeEstimate", () => {
  it("is an estimate: exact only for an unqueried listing that fits the page, 201-ish otherwise, 0 for nothing", async () => {
    const total = (await emu.control.mailbox(ALICE)).messages.length;
    expect(total).toBeGreaterThan(5);
    const first = (await api.users.messages.list({ userId: "me", maxResults: 5 })).data;
    expect(first.messages).toHaveLength(5);
    expect(first.resultSizeEstimate).toBe(201); // as messages_list_max5.json: 201 for 782 messages
    if (samplesPresent) expect(shapeDiff(first, shape("messages_list_max5.json"))).toEqual([]);
    const inbox = (await emu.control.mailbox(ALICE)).messages.filter(
      (m) => m.labelIds.includes("INBOX") && !m.labelIds.includes("SPAM") && !m.labelIds.includes("TRASH"),
    ).length;
    const whole = (await api.users.messages.list({ userId: "me", labelIds: ["INBOX"], maxResults: 500 })).data;
    expect(whole.resultSizeEstimate).toBe(inbox);
    // A query: 201 whatever the true count (gogcli#983).
    const queried = (await api.users.messages.list({ userId: "me", q: "from:bob@example.net", maxResults: 500 })).data;
    expect(queried.messages?.length).toBeGreaterThan(0);
    expect(queried.resultSizeEstimate).toBe(201);
    expect((await api.users.messages.list({ userId: "me", q: "from:nobody-at-all@example.org" })).data).toEqual({
      resultSizeEstimate: 0,
    });
    const threads = (await api.users.threads.list({ userId: "me", maxResults: 2 })).data;
    expect(threads.resultSizeEstimate).toBe(201);
  });

  it("is the exact count with approximateResultSizeEstimate off", async () => {
    await emu.control.updateSettings({ approximateResultSizeEstimate: false });
    try {
      const all = (await api.users.messages.list({ userId: "me", maxResults: 500 })).data;
      const first = (await api.users.messages.list({ userId: "me", maxResults: 5 })).data;
      expect(first.resultSizeEstimate).toBe(all.messages?.length);
      const queried = (await api.users.messages.list({ userId: "me", q: "from:bob@example.net" })).data;
      expect(queried.resultSizeEstimate).toBe(queried.messages?.length);
    } finally {
      await emu.control.updateSettings({ approximateResultSizeEstimate: true });
    }
  });
});

describe("labels", () => {
  it("lists system labels in Gmail's order, hidden ones with hide/labelHide, user labels with show/labelShow", async () => {
    const labels = (await api.users.labels.list({ userId: "me" })).data;
    const byId = new Map((labels.labels ?? []).map((l) => [l.id, l]));
    expect(byId.get("INBOX")).toEqual({ id: "INBOX", name: "INBOX", type: "system" });
    expect(byId.get("TRASH")).toEqual({
      id: "TRASH",
      name: "TRASH",
      messageListVisibility: "hide",
      labelListVisibility: "labelHide",
      type: "system",
    });
    expect(byId.get("CATEGORY_UPDATES")).toMatchObject({
      messageListVisibility: "hide",
      labelListVisibility: "labelHide",
    });
    expect(labels.labels?.slice(0, 3).map((l) => l.id)).toEqual(["CHAT", "SENT", "INBOX"]);
    const user = labels.labels?.find((l) => l.type === "user");
    expect(user).toMatchObject({ messageListVisibility: "show", labelListVisibility: "labelShow" });
    if (samplesPresent) expect(shapeDiff(labels, shape("labels_list.json"))).toEqual([]);

    const inbox = (await api.users.labels.get({ userId: "me", id: "INBOX" })).data;
    expect(inbox).toMatchObject({
      id: "INBOX",
      type: "system",
      messagesTotal: expect.any(Number),
      threadsUnread: expect.any(Number),
    });
    expect(inbox.messageListVisibility).toBeUndefined();
    if (samplesPresent) expect(shapeDiff(inbox, shape("labels_get_INBOX.json"))).toEqual([]);
    expect((await api.users.labels.get({ userId: "me", id: "SPAM" })).data).toMatchObject({
      messageListVisibility: "hide",
      labelListVisibility: "labelHide",
    });
  });
});
