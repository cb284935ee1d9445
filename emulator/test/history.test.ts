// History as Gmail writes it, read back with the real client: one record per operation covering
// every message it touched, adds and removes together, trash as two records, untrash removing
// TRASH only, records holding only `messages`, and the filters and paging of history.list over
// such records (gmail-real-samples/history_list_thread_ops.json).
import type { gmail_v1 } from "@googleapis/gmail";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../src/server.ts";
import { clientFor, compose } from "./helpers.ts";
import { sampleShape, samplesPresent, shapeDiff } from "./sample-shape.ts";

const ALICE = "alice@example.com";
const MODIFY = "https://www.googleapis.com/auth/gmail.modify";
let emu: Emulator;
let api: gmail_v1.Gmail;

beforeAll(async () => {
  emu = await startEmulator({ seed: 21, accounts: [ALICE], addedNotFoundRate: 0 });
  ({ api } = await clientFor(emu, ALICE, [MODIFY]));
});
afterAll(async () => {
  await emu.close();
});

let serial = 0;

/** A two-message thread as in the recording: one sent message, then a reply in the inbox. */
async function thread(target = emu): Promise<{ threadId: string; sent: string; reply: string }> {
  const n = ++serial;
  const sent = await target.control.deliver(ALICE, {
    raw: await compose({
      from: ALICE,
      to: "bob@example.net",
      subject: `Plan ${n}`,
      messageId: `<plan-${n}@example.com>`,
      text: "one",
    }),
    labelIds: ["SENT"],
  });
  const reply = await target.control.deliver(ALICE, {
    raw: await compose({
      from: "bob@example.net",
      to: ALICE,
      subject: `Re: Plan ${n}`,
      messageId: `<plan-${n}-re@example.net>`,
      inReplyTo: `<plan-${n}@example.com>`,
      references: [`<plan-${n}@example.com>`],
      text: "two",
    }),
    labelIds: ["UNREAD", "CATEGORY_UPDATES", "INBOX"],
  });
  expect(reply.threadId).toBe(sent.threadId);
  return { threadId: sent.threadId, sent: sent.id, reply: reply.id };
}

async function historySince(
  start: string,
  params: Partial<gmail_v1.Params$Resource$Users$History$List> = {},
  client = api,
): Promise<gmail_v1.Schema$ListHistoryResponse> {
  return (await client.users.history.list({ userId: "me", startHistoryId: start, ...params })).data;
}

async function currentHistoryId(target = emu): Promise<string> {
  return (await target.control.mailbox(ALICE)).historyId;
}

const sorted = (l: string[] | null | undefined) => [...(l ?? [])].sort();

describe("thread operations", () => {
  it("trash is two records (TRASH added to every message, then INBOX removed where it was); untrash removes TRASH only", async () => {
    const t = await thread();
    const start = await currentHistoryId();
    await api.users.threads.trash({ userId: "me", id: t.threadId });
    const [added, removed, ...rest] = (await historySince(start)).history ?? [];
    expect(rest).toEqual([]);
    // Record 1: both messages, one labelsAdded entry each; labels as they stand right after it (INBOX still there).
    expect(added?.messages).toEqual([
      { id: t.sent, threadId: t.threadId },
      { id: t.reply, threadId: t.threadId },
    ]);
    expect(added?.labelsRemoved).toBeUndefined();
    expect(added?.labelsAdded?.map((e) => [e.message?.id, e.labelIds, sorted(e.message?.labelIds)])).toEqual([
      [t.sent, ["TRASH"], ["SENT", "TRASH"]],
      [t.reply, ["TRASH"], ["CATEGORY_UPDATES", "INBOX", "TRASH", "UNREAD"]],
    ]);
    // Record 2: only the message that was in the inbox.
    expect(removed?.messages).toEqual([{ id: t.reply, threadId: t.threadId }]);
    expect(removed?.labelsRemoved?.map((e) => [e.message?.id, e.labelIds, sorted(e.message?.labelIds)])).toEqual([
      [t.reply, ["INBOX"], ["CATEGORY_UPDATES", "TRASH", "UNREAD"]],
    ]);
    expect(BigInt(removed?.id as string)).toBeGreaterThan(BigInt(added?.id as string));

    const mid = await currentHistoryId();
    await api.users.threads.untrash({ userId: "me", id: t.threadId });
    const untrash = (await historySince(mid)).history ?? [];
    expect(untrash).toHaveLength(1);
    expect(untrash[0]?.labelsRemoved?.map((e) => [e.message?.id, e.labelIds, sorted(e.message?.labelIds)])).toEqual([
      [t.sent, ["TRASH"], ["SENT"]],
      [t.reply, ["TRASH"], ["CATEGORY_UPDATES", "UNREAD"]],
    ]);
    // INBOX is not restored.
    const truth = await emu.control.mailbox(ALICE);
    expect(sorted(truth.messages.find((m) => m.id === t.reply)?.labelIds)).toEqual(["CATEGORY_UPDATES", "UNREAD"]);
  });

  it("threads.modify adding and removing writes one record holding labelsAdded and labelsRemoved for the messages it changed", async () => {
    const t = await thread();
    const start = await currentHistoryId();
    await api.users.threads.modify({
      userId: "me",
      id: t.threadId,
      requestBody: { addLabelIds: ["STARRED"], removeLabelIds: ["UNREAD"] },
    });
    const records = (await historySince(start)).history ?? [];
    expect(records).toHaveLength(1);
    const [r] = records;
    expect(r?.messages?.map((m) => m.id)).toEqual([t.sent, t.reply]);
    expect(r?.labelsAdded?.map((e) => [e.message?.id, e.labelIds])).toEqual([
      [t.sent, ["STARRED"]],
      [t.reply, ["STARRED"]],
    ]);
    // Only the reply was unread.
    expect(r?.labelsRemoved?.map((e) => [e.message?.id, e.labelIds, sorted(e.message?.labelIds)])).toEqual([
      [t.reply, ["UNREAD"], ["CATEGORY_UPDATES", "INBOX", "STARRED"]],
    ]);
    // A change that changes nothing writes nothing.
    const after = await currentHistoryId();
    await api.users.threads.modify({ userId: "me", id: t.threadId, requestBody: { addLabelIds: ["STARRED"] } });
    expect(await historySince(after)).toEqual({ historyId: after });
  });

  it("messages.modify, messages.trash/untrash and batchModify write one record per step covering every message", async () => {
    const t = await thread();
    const other = await emu.control.deliver(ALICE, { labelIds: ["INBOX", "UNREAD"] });
    const start = await currentHistoryId();
    await api.users.messages.modify({
      userId: "me",
      id: t.reply,
      requestBody: { addLabelIds: ["IMPORTANT"], removeLabelIds: ["UNREAD"] },
    });
    await api.users.messages.trash({ userId: "me", id: other.id });
    await api.users.messages.untrash({ userId: "me", id: other.id });
    const batch = await api.users.messages.batchModify({
      userId: "me",
      requestBody: { ids: [t.sent, t.reply, other.id], addLabelIds: ["STARRED"], removeLabelIds: ["IMPORTANT"] },
    });
    expect(batch.status).toBe(204);
    const records = (await historySince(start)).history ?? [];
    const kinds = records.map((r) => [
      r.messages?.length,
      r.labelsAdded?.map((e) => e.labelIds?.join()).join(" ") ?? "",
      r.labelsRemoved?.map((e) => e.labelIds?.join()).join(" ") ?? "",
    ]);
    expect(kinds).toEqual([
      [1, "IMPORTANT", "UNREAD"], // modify: one record, both kinds
      [1, "TRASH", ""], // trash: TRASH added
      [1, "", "INBOX"], // then INBOX removed
      [1, "", "TRASH"], // untrash
      [3, "STARRED STARRED STARRED", "IMPORTANT"], // batchModify: one record for the three
    ]);
  });

  it("batchModify refuses more than 1000 ids and needs gmail.modify", async () => {
    const ids = Array.from({ length: 1001 }, (_, i) => (0x1000 + i).toString(16).padStart(16, "0"));
    await expect(
      api.users.messages.batchModify({ userId: "me", requestBody: { ids, addLabelIds: ["STARRED"] } }),
    ).rejects.toMatchObject({ status: 400 });
    const { api: reader } = await clientFor(emu, ALICE);
    await expect(
      reader.users.messages.batchModify({
        userId: "me",
        requestBody: { ids: ids.slice(0, 1), addLabelIds: ["STARRED"] },
      }),
    ).rejects.toMatchObject({ status: 403 });
  });

  it.skipIf(!samplesPresent)(
    "serves the recorded structure for a thread trash, untrash and modify and a delivery with records holding only messages",
    async () => {
      await emu.control.updateSettings({ historyMessagesOnlyRate: 1 });
      try {
        const t = await thread();
        const start = await currentHistoryId();
        await api.users.threads.trash({ userId: "me", id: t.threadId });
        await emu.control.deliver(ALICE, { labelIds: ["SENT"] });
        await api.users.threads.untrash({ userId: "me", id: t.threadId });
        await api.users.threads.modify({ userId: "me", id: t.threadId, requestBody: { removeLabelIds: ["UNREAD"] } });
        const served = await historySince(start);
        expect(
          shapeDiff(served, sampleShape("history_list_thread_ops.json") as NonNullable<ReturnType<typeof sampleShape>>),
        ).toEqual([]);
      } finally {
        await emu.control.updateSettings({ historyMessagesOnlyRate: 0.1 });
      }
    },
  );
});

describe("records holding only messages", () => {
  it("follow a delivery at historyMessagesOnlyRate (1: always, 0: never)", async () => {
    await emu.control.updateSettings({ historyMessagesOnlyRate: 1 });
    const start = await currentHistoryId();
    const d = await emu.control.deliver(ALICE, {});
    const records = (await historySince(start)).history ?? [];
    expect(records[0]?.messagesAdded?.[0]?.message?.id).toBe(d.id);
    const bare = records.slice(1);
    expect(bare.length).toBeGreaterThanOrEqual(1);
    for (const r of bare)
      expect(r).toEqual({ id: expect.stringMatching(/^\d+$/), messages: [{ id: d.id, threadId: d.threadId }] });
    // A typed filter leaves them out: they carry no type.
    expect((await historySince(start, { historyTypes: ["messageAdded"] })).history).toHaveLength(1);

    await emu.control.updateSettings({ historyMessagesOnlyRate: 0 });
    const quiet = await currentHistoryId();
    await emu.control.deliver(ALICE, {});
    expect((await historySince(quiet)).history).toHaveLength(1);
    await emu.control.updateSettings({ historyMessagesOnlyRate: 0.1 });
  });
});

describe("filters and paging", () => {
  it("historyTypes keeps only the asked-for entries of a record; labelId keeps entries naming the label", async () => {
    const t = await thread();
    const start = await currentHistoryId();
    await api.users.threads.modify({
      userId: "me",
      id: t.threadId,
      requestBody: { addLabelIds: ["STARRED"], removeLabelIds: ["UNREAD"] },
    });

    const removedOnly = (await historySince(start, { historyTypes: ["labelRemoved"] })).history ?? [];
    expect(removedOnly).toHaveLength(1);
    expect(removedOnly[0]?.labelsAdded).toBeUndefined();
    expect(removedOnly[0]?.labelsRemoved?.map((e) => e.message?.id)).toEqual([t.reply]);
    expect(removedOnly[0]?.messages).toEqual([{ id: t.reply, threadId: t.threadId }]);

    // labelId=UNREAD: the removal names it; the sent message's entry does not.
    const unread = (await historySince(start, { labelId: "UNREAD" })).history ?? [];
    expect(unread[0]?.labelsRemoved?.map((e) => e.message?.id)).toEqual([t.reply]);
    expect(unread[0]?.labelsAdded).toBeUndefined();
    // labelId=SENT: the sent message's entries carry SENT after the change.
    const sent = (await historySince(start, { labelId: "SENT" })).history ?? [];
    expect(sent[0]?.labelsAdded?.map((e) => e.message?.id)).toEqual([t.sent]);
    expect(sent[0]?.messages).toEqual([{ id: t.sent, threadId: t.threadId }]);
    expect(await historySince(start, { labelId: "SPAM" })).toEqual({ historyId: await currentHistoryId() });
  });

  it("maxResults counts records and pages cover each record once, in order", async () => {
    const start = await currentHistoryId();
    for (let i = 0; i < 3; i++) {
      const t = await thread();
      await api.users.threads.trash({ userId: "me", id: t.threadId });
    }
    const all = (await historySince(start, { maxResults: 500 })).history ?? [];
    const seen: string[] = [];
    let pageToken: string | undefined;
    do {
      const page = await historySince(start, { maxResults: 4, ...(pageToken ? { pageToken } : {}) });
      expect((page.history ?? []).length).toBeLessThanOrEqual(4);
      seen.push(...(page.history ?? []).map((h) => h.id as string));
      pageToken = page.nextPageToken ?? undefined;
      // A record written between pages shows up later, never shifting the pages already read.
      if (seen.length === 4) await emu.control.deliver(ALICE, {});
    } while (pageToken);
    expect(seen.slice(0, all.length)).toEqual(all.map((h) => h.id));
    expect(new Set(seen).size).toBe(seen.length);
  });
});

describe("historyCombinedRecords: false", () => {
  it("writes one record per message and change type, as before", async () => {
    const split = await startEmulator({
      seed: 22,
      accounts: [ALICE],
      historyCombinedRecords: false,
      historyMessagesOnlyRate: 0,
    });
    try {
      const { api: c } = await clientFor(split, ALICE, [MODIFY]);
      const t = await thread(split);
      const start = await currentHistoryId(split);
      await c.users.threads.trash({ userId: "me", id: t.threadId });
      await c.users.messages.modify({
        userId: "me",
        id: t.reply,
        requestBody: { addLabelIds: ["STARRED"], removeLabelIds: ["UNREAD"] },
      });
      const records = (await historySince(start, {}, c)).history ?? [];
      const flat = records.map((r) => [
        r.messages?.map((m) => m.id).join(),
        r.labelsAdded ? `+${r.labelsAdded[0]?.labelIds}` : `-${r.labelsRemoved?.[0]?.labelIds}`,
      ]);
      expect(flat).toEqual([
        [t.sent, "+TRASH"],
        [t.reply, "+TRASH"],
        [t.reply, "-INBOX"],
        [t.reply, "+STARRED"],
        [t.reply, "-UNREAD"],
      ]);
    } finally {
      await split.close();
    }
  });
});

describe("bulk label change", () => {
  it("marks 70,000 messages read in records of up to 1000 that history pages cover exactly once", {
    timeout: 180_000,
  }, async () => {
    const big = await startEmulator({
      seed: 23,
      accounts: [ALICE],
      messages: 70_000,
      attachments: false,
      hostile: false,
    });
    try {
      const { api: c } = await clientFor(big, ALICE);
      // Every message unread first, so the timed change covers all 70,000. (The control API's
      // mailbox snapshot renders every message: it is read once, at the end.)
      const allUnread = await big.control.bulkModifyLabels(ALICE, { all: true, add: ["UNREAD"] });
      expect(allUnread.changed).toBeGreaterThan(0);
      const start = allUnread.historyId;
      let t0 = performance.now();
      const result = await big.control.bulkModifyLabels(ALICE, { labelIds: ["UNREAD"], remove: ["UNREAD"] });
      console.log(
        `bulk: ${result.changed} messages marked read in ${Math.round(performance.now() - t0)} ms (control call, history included)`,
      );
      expect(result.changed).toBe(70_000);
      expect(result.historyId).toBe((await c.users.getProfile({ userId: "me" })).data.historyId);

      t0 = performance.now();
      const seen = new Map<string, number>();
      let pages = 0;
      let pageToken: string | undefined;
      do {
        const page = await historySince(
          start,
          { maxResults: 20, historyTypes: ["labelRemoved"], ...(pageToken ? { pageToken } : {}) },
          c,
        );
        pages++;
        for (const r of page.history ?? []) {
          expect(r.labelsRemoved?.length).toBeLessThanOrEqual(1000);
          for (const e of r.labelsRemoved ?? []) {
            expect(e.labelIds).toEqual(["UNREAD"]);
            seen.set(e.message?.id as string, (seen.get(e.message?.id as string) ?? 0) + 1);
          }
        }
        pageToken = page.nextPageToken ?? undefined;
      } while (pageToken);
      console.log(`bulk: ${pages} history pages read in ${Math.round(performance.now() - t0)} ms`);
      const truth = (await big.control.mailbox(ALICE)).messages;
      expect(truth).toHaveLength(70_000);
      expect(truth.some((m) => m.labelIds.includes("UNREAD"))).toBe(false);
      expect(seen.size).toBe(70_000);
      expect([...seen.values()].every((n) => n === 1)).toBe(true);
      expect(new Set(truth.map((m) => m.id))).toEqual(new Set(seen.keys()));
    } finally {
      await big.close();
    }
  });

  it("picks messages by ids or all, and refuses an ambiguous pick", async () => {
    const a = await emu.control.deliver(ALICE, { labelIds: ["INBOX"] });
    const b = await emu.control.deliver(ALICE, { labelIds: ["INBOX"] });
    const start = await currentHistoryId();
    expect((await emu.control.bulkModifyLabels(ALICE, { ids: [a.id, b.id], add: ["STARRED"] })).changed).toBe(2);
    const [r, ...rest] = (await historySince(start)).history ?? [];
    expect(rest).toEqual([]);
    expect(r?.labelsAdded?.map((e) => e.message?.id).sort()).toEqual([a.id, b.id].sort());
    const everything = await emu.control.bulkModifyLabels(ALICE, { all: true, remove: ["STARRED"] });
    expect(everything.changed).toBeGreaterThanOrEqual(2);
    await expect(emu.control.bulkModifyLabels(ALICE, { all: true, ids: [a.id], add: ["STARRED"] })).rejects.toThrow(
      /exactly one/,
    );
  });
});
