// The sync engine against the emulator's realistic defaults (Gmail's shapes as recorded): legacy
// charsets served converted to UTF-8, forwarded messages expanded, bodies by reference, drafts,
// thread-wide and combined history records, trash as two records, the post-push 404, and a batch
// endpoint that fails as a whole. The oracle for bodies is independent: postal-mime over the
// message's raw bytes (format=raw), which decodes each part with its own charset — and, for mail
// whose UTF-8 the sender mislabelled iso-8859-1 (served by Gmail as mojibake), that reading with the
// generator's sentences put back (test/helpers/sender-text.ts): the mirror holds the sender's text.
import { gmail, type gmail_v1 } from "@googleapis/gmail";
import { OAuth2Client } from "google-auth-library";
import PostalMime from "postal-mime";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { RunningWorkers } from "../../src/worker.ts";
import { generatedSenderText } from "../helpers/sender-text.ts";
import {
  backfillDone,
  connectTestAccount,
  expectDbEqualsMailbox,
  type Harness,
  queuesIdle,
  startHarness,
  syncState,
  syncToMailbox,
  waitFor,
} from "./harness.ts";

const EMAIL = "realism@example.com";
const MODIFY = "https://www.googleapis.com/auth/gmail.modify";
let h: Harness;
let workers: RunningWorkers;
let api: gmail_v1.Gmail;
let accountId: number;

beforeAll(async () => {
  h = await startHarness({
    emulator: { accounts: [EMAIL], messages: 400, seed: 4141, hostile: false },
    env: { INCLUDE_SPAM_TRASH: "true" },
  });
  workers = h.app.startWorkers({ maintenance: false });
  const auth = new OAuth2Client({
    clientId: h.emulator.clientId,
    clientSecret: h.emulator.clientSecret,
    endpoints: { oauth2TokenUrl: h.emulator.tokenUrl },
  });
  auth.setCredentials({ refresh_token: await h.emulator.control.issueRefreshToken(EMAIL, [MODIFY]) });
  api = gmail({ version: "v1", auth, rootUrl: h.emulator.gmailRootUrl });
});
afterAll(async () => {
  await workers?.close();
  await h?.close();
});

const norm = (v: string | null | undefined) =>
  (v ?? "")
    .replace(/\r\n?/g, "\n")
    .replace(/\u0000/g, "")
    .replace(/[ \t]+\n/g, "\n")
    .trim();

function charsetOf(raw: string): string | null {
  return /charset="?([^";\s]+)"?/i.exec(raw)?.[1]?.toLowerCase() ?? null;
}

describe("sync against Gmail's real shapes", () => {
  it("backfills a realistic mailbox to equality: every charset's text (mislabelled mail included) equals the sender's, forwarded mail is one attachment, drafts are stored", {
    timeout: 180_000,
  }, async () => {
    accountId = await connectTestAccount(h, EMAIL);
    await h.app.enqueueBackfill(accountId, { reason: "connect" });
    await waitFor("backfill to finish", () => backfillDone(h, accountId), 150_000, 200);
    await waitFor("queues to drain", () => queuesIdle(h), 30_000);
    await expectDbEqualsMailbox(h, accountId, EMAIL);

    const rows = await h.app.db
      .selectFrom("messages")
      .select(["gmail_id", "body_text", "label_ids"])
      .where("account_id", "=", accountId)
      .where("deleted_at", "is", null)
      .execute();
    const charsets = new Map<string, number>();
    let forwarded = 0;
    let mislabelled = 0;
    for (const row of rows) {
      const raw = Buffer.from(
        (await api.users.messages.get({ userId: "me", id: row.gmail_id, format: "raw" })).data.raw ?? "",
        "base64url",
      );
      const oracle = await PostalMime.parse(raw);
      const head = raw.subarray(0, 20_000).toString("latin1");
      // The outer message's own text (postal-mime inlines a forwarded message's text only when it is not an attachment).
      if (oracle.text !== undefined && !/message\/rfc822/i.test(head)) {
        const sender = generatedSenderText(oracle.text);
        if (sender.mislabelled) mislabelled++;
        expect(
          norm(row.body_text),
          `body of ${row.gmail_id} (${charsetOf(head) ?? "?"}${sender.mislabelled ? ", mislabelled" : ""})`,
        ).toBe(norm(sender.text));
        const cs = charsetOf(head);
        if (cs) charsets.set(cs, (charsets.get(cs) ?? 0) + 1);
      }
      if (/message\/rfc822/i.test(head)) {
        forwarded++;
        const att = await h.app.db
          .selectFrom("attachments")
          .innerJoin("messages", "messages.id", "attachments.message_id")
          .select(["attachments.mime_type", "attachments.extracted_text"])
          .where("messages.account_id", "=", accountId)
          .where("messages.gmail_id", "=", row.gmail_id)
          .where("attachments.mime_type", "=", "message/rfc822")
          .execute();
        expect(att.length, `forwarded message of ${row.gmail_id}`).toBe(1);
        expect(att[0]?.extracted_text ?? "", `text of the forwarded message in ${row.gmail_id}`).toMatch(/Subject: /);
      }
    }
    // The generated mailbox exercised every legacy charset the emulator writes, and forwarded mail.
    for (const cs of ["iso-8859-1", "windows-1252", "iso-2022-jp", "shift_jis", "koi8-r"])
      expect(charsets.get(cs) ?? 0, `messages in ${cs}`).toBeGreaterThan(0);
    expect([...charsets.keys()].some((cs) => cs === "gbk" || cs === "gb2312")).toBe(true);
    expect(mislabelled, "mislabelled messages").toBeGreaterThan(0);
    expect(forwarded).toBeGreaterThan(0);
    expect(rows.some((r) => r.label_ids.includes("DRAFT"))).toBe(true);
  });

  it("thread operations, Move to, trash and untrash reach the mirror through incremental sync", {
    timeout: 60_000,
  }, async () => {
    const box = await h.emulator.control.mailbox(EMAIL);
    const byThread = new Map<string, string[]>();
    for (const m of box.messages) byThread.set(m.threadId, [...(byThread.get(m.threadId) ?? []), m.id]);
    const threads = [...byThread.entries()].filter(([, ids]) => ids.length >= 2).map(([t]) => t);
    expect(threads.length).toBeGreaterThan(3);
    const [t1, t2, t3] = threads as [string, string, string];
    await api.users.threads.modify({
      userId: "me",
      id: t1,
      requestBody: { addLabelIds: ["STARRED"], removeLabelIds: ["INBOX", "UNREAD"] },
    });
    await api.users.threads.trash({ userId: "me", id: t2 });
    await api.users.threads.trash({ userId: "me", id: t3 });
    await api.users.threads.untrash({ userId: "me", id: t3 });
    // "Move to": one modify adding and removing labels writes one record holding both.
    const single = box.messages.find((m) => m.labelIds.includes("INBOX") && byThread.get(m.threadId)?.length === 1);
    if (single)
      await api.users.messages.modify({
        userId: "me",
        id: single.id,
        requestBody: { addLabelIds: ["IMPORTANT"], removeLabelIds: ["INBOX"] },
      });
    await syncToMailbox(h, accountId, EMAIL);
    await expectDbEqualsMailbox(h, accountId, EMAIL);
  });

  it("a message that answers 404 just after it was added is stored once Gmail serves it, never soft-deleted", {
    timeout: 60_000,
  }, async () => {
    await h.emulator.control.updateSettings({ addedNotFoundRate: 1, addedNotFoundWindowMs: 1200 });
    try {
      const added = await h.emulator.control.deliver(EMAIL);
      await syncToMailbox(h, accountId, EMAIL);
      const row = await h.app.db
        .selectFrom("messages")
        .select(["deleted_at", "body_text"])
        .where("account_id", "=", accountId)
        .where("gmail_id", "=", added.id)
        .executeTakeFirst();
      expect(row?.deleted_at ?? null).toBeNull();
      expect(row?.body_text ?? "").not.toBe("");
    } finally {
      await h.emulator.control.updateSettings({ addedNotFoundRate: 0.05, addedNotFoundWindowMs: 2000 });
    }
  });

  it("a just-delivered message listed by a resync and answering 404 is asked again, not taken as deleted since it was listed", {
    timeout: 90_000,
  }, async () => {
    await h.emulator.control.updateSettings({ addedNotFoundRate: 1, addedNotFoundWindowMs: 1500 });
    try {
      const ids: string[] = [];
      for (let i = 0; i < 3; i++) ids.push((await h.emulator.control.deliver(EMAIL)).id);
      // Nothing in history after the new pin names them: only the listing can store them.
      await h.emulator.control.expireHistory(EMAIL);
      await h.app.enqueueIncremental(accountId, { reason: "manual" });
      await waitFor(
        "the resync to finish",
        async () =>
          (await syncState(h, accountId)).resync_reason === null &&
          (await backfillDone(h, accountId)) &&
          (await queuesIdle(h)),
        60_000,
        200,
      );
      const rows = await h.app.db
        .selectFrom("messages")
        .select(["gmail_id", "deleted_at"])
        .where("account_id", "=", accountId)
        .where("gmail_id", "in", ids)
        .execute();
      expect(
        rows
          .filter((r) => r.deleted_at === null)
          .map((r) => r.gmail_id)
          .sort(),
      ).toEqual([...ids].sort());
    } finally {
      await h.emulator.control.updateSettings({ addedNotFoundRate: 0.05, addedNotFoundWindowMs: 2000 });
    }
  });

  it("a batch POST answered with an HTML 404 page deletes nothing; the mail arrives when the endpoint is back", {
    timeout: 60_000,
  }, async () => {
    await h.emulator.control.updateSettings({ batchFailureRate: 1, batchFailureStatus: 404 });
    const ids: string[] = [];
    let stateBefore;
    try {
      for (let i = 0; i < 3; i++) ids.push((await h.emulator.control.deliver(EMAIL)).id);
      stateBefore = await syncState(h, accountId);
      await h.app.enqueueIncremental(accountId, { reason: "manual" });
      await waitFor("a sync attempt to fail", async () => (await syncState(h, accountId)).last_error !== null, 30_000);
      const rows = await h.app.db
        .selectFrom("messages")
        .select(["gmail_id", "deleted_at"])
        .where("account_id", "=", accountId)
        .where("gmail_id", "in", ids)
        .execute();
      expect(rows.filter((r) => r.deleted_at !== null)).toEqual([]);
      expect((await syncState(h, accountId)).history_id).toBe(stateBefore.history_id); // cursor held
    } finally {
      await h.emulator.control.updateSettings({ batchFailureRate: 0 });
    }
    await syncToMailbox(h, accountId, EMAIL);
    await expectDbEqualsMailbox(h, accountId, EMAIL);
  });
});
