// Drafts as Gmail keeps them: listed by messages.list, shown in threads.get, and saved again as a
// new message id (same thread, DRAFT kept) added with the old one deleted, in history
// (gmail-real-samples/README.md fact 10, drafts_get_full.json).
import type { gmail_v1 } from "@googleapis/gmail";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../src/server.ts";
import { clientFor, compose } from "./helpers.ts";

const ALICE = "alice@example.com";
let emu: Emulator;
let api: gmail_v1.Gmail;

beforeAll(async () => {
  // Drafts are read right after they are saved, and their history records are counted exactly: the
  // post-delivery 404 race and the records holding only `messages` have tests of their own.
  emu = await startEmulator({ seed: 41, accounts: [ALICE], historyMessagesOnlyRate: 0, addedNotFoundRate: 0 });
  ({ api } = await clientFor(emu));
});
afterAll(async () => {
  await emu.close();
});

/** A received message and the reply being drafted to it. */
async function draftReply(
  n: number,
  target = emu,
): Promise<{ received: { id: string; threadId: string }; draft: { id: string; threadId: string } }> {
  const received = await target.control.deliver(ALICE, {
    raw: await compose({
      from: "carol@example.net",
      to: ALICE,
      subject: `Offer ${n}`,
      messageId: `<offer-${n}@example.net>`,
      text: "interested?",
    }),
    labelIds: ["INBOX"],
  });
  const draft = await target.control.deliver(ALICE, {
    raw: await compose({
      from: ALICE,
      to: "carol@example.net",
      subject: `Re: Offer ${n}`,
      messageId: `<offer-${n}-draft@example.com>`,
      inReplyTo: `<offer-${n}@example.net>`,
      references: [`<offer-${n}@example.net>`],
      text: "Let me th",
    }),
    labelIds: ["DRAFT"],
  });
  return { received, draft };
}

describe("drafts", () => {
  it("are listed by messages.list and shown in threads.get", async () => {
    const { received, draft } = await draftReply(1);
    expect(draft.threadId).toBe(received.threadId);
    const listed = (await api.users.messages.list({ userId: "me", maxResults: 500 })).data.messages?.map((m) => m.id);
    expect(listed).toContain(draft.id);
    const thread = (await api.users.threads.get({ userId: "me", id: draft.threadId, format: "minimal" })).data;
    expect(thread.messages?.map((m) => [m.id, m.labelIds])).toEqual([
      [received.id, ["INBOX"]],
      [draft.id, ["DRAFT"]],
    ]);
  });

  it("edit: a new id in the same thread keeps DRAFT; history adds the new and deletes the old in one record", async () => {
    const { received, draft } = await draftReply(2);
    const start = (await emu.control.mailbox(ALICE)).historyId;
    const text = await compose({
      from: ALICE,
      to: "carol@example.net",
      subject: "Re: Offer 2",
      messageId: "<offer-2-draft-v2@example.com>",
      inReplyTo: "<offer-2@example.net>",
      references: ["<offer-2@example.net>"],
      text: "Let me think about it.",
    });
    const edited = await emu.control.editDraft(ALICE, draft.id, text);
    expect(edited.id).not.toBe(draft.id);
    expect(edited.id > draft.id).toBe(true);
    expect(edited.threadId).toBe(draft.threadId);
    expect(edited.historyId).toBe((await emu.control.mailbox(ALICE)).historyId);

    const records = (await api.users.history.list({ userId: "me", startHistoryId: start })).data.history ?? [];
    expect(records).toHaveLength(1);
    const [r] = records;
    expect(r?.messagesAdded?.map((e) => [e.message?.id, e.message?.threadId, e.message?.labelIds])).toEqual([
      [edited.id, draft.threadId, ["DRAFT"]],
    ]);
    expect(r?.messagesDeleted?.map((e) => e.message?.id)).toEqual([draft.id]);
    expect(r?.messages?.map((m) => m.id).sort()).toEqual([edited.id, draft.id].sort());

    await expect(api.users.messages.get({ userId: "me", id: draft.id })).rejects.toMatchObject({ status: 404 });
    const got = (await api.users.messages.get({ userId: "me", id: edited.id, format: "raw" })).data;
    expect(Buffer.from(got.raw as string, "base64url").equals(text)).toBe(true);
    expect(got.labelIds).toEqual(["DRAFT"]);
    const thread = (await api.users.threads.get({ userId: "me", id: edited.threadId, format: "minimal" })).data;
    expect(thread.messages?.map((m) => m.id)).toEqual([received.id, edited.id]);
    // Without raw the content stays; the id still changes.
    const again = await emu.control.editDraft(ALICE, edited.id);
    expect(again.id).not.toBe(edited.id);
    expect(
      Buffer.from(
        (await api.users.messages.get({ userId: "me", id: again.id, format: "raw" })).data.raw as string,
        "base64url",
      ).equals(text),
    ).toBe(true);
  });

  it("a thread started by a draft keeps its id when the draft is saved again: no message has it (threads_get_metadata_threadid_not_a_message.json)", async () => {
    const plain = await startEmulator({
      seed: 42,
      accounts: [ALICE],
      threadIdsAreMessageIds: true,
      historyMessagesOnlyRate: 0,
      addedNotFoundRate: 0,
    });
    try {
      const { api: c } = await clientFor(plain);
      const draft = await plain.control.deliver(ALICE, {
        raw: await compose({ from: ALICE, to: "dan@example.net", subject: "Idea", text: "draft" }),
        labelIds: ["DRAFT"],
      });
      expect(draft.threadId).toBe(draft.id);
      const edited = await plain.control.editDraft(ALICE, draft.id);
      expect(edited.threadId).toBe(draft.threadId);
      const thread = (await c.users.threads.get({ userId: "me", id: edited.threadId, format: "minimal" })).data;
      expect(thread.messages?.map((m) => m.id)).toEqual([edited.id]);
      expect(thread.messages?.map((m) => m.id)).not.toContain(thread.id);
    } finally {
      await plain.close();
    }
  });

  it("with historyCombinedRecords off, the edit is two records: added, then deleted", async () => {
    await emu.control.updateSettings({ historyCombinedRecords: false });
    try {
      const { draft } = await draftReply(3);
      const start = (await emu.control.mailbox(ALICE)).historyId;
      const edited = await emu.control.editDraft(ALICE, draft.id);
      const records = (await api.users.history.list({ userId: "me", startHistoryId: start })).data.history ?? [];
      expect(records.map((r) => [r.messagesAdded?.[0]?.message?.id, r.messagesDeleted?.[0]?.message?.id])).toEqual([
        [edited.id, undefined],
        [undefined, draft.id],
      ]);
    } finally {
      await emu.control.updateSettings({ historyCombinedRecords: true });
    }
  });

  it("refuses to edit a message that is not a draft, or none", async () => {
    const { received } = await draftReply(4);
    await expect(emu.control.editDraft(ALICE, received.id)).rejects.toThrow(/400/);
    await expect(emu.control.editDraft(ALICE, "0000000000000abc")).rejects.toThrow(/404/);
  });
});
