// A message trashed while the history cursor had expired is soft-deleted by the resync's sweep
// (trash is not listed unless INCLUDE_SPAM_TRASH): when it is later untrashed, the label record
// proves it exists, and the incremental sync fetches it back instead of editing a deleted row.
import { gmail } from "@googleapis/gmail";
import { OAuth2Client } from "google-auth-library";
import { afterAll, beforeAll, expect, it } from "vitest";
import type { RunningWorkers } from "../../src/worker.ts";
import {
  backfillDone,
  connectTestAccount,
  type Harness,
  queuesIdle,
  startHarness,
  syncState,
  syncToMailbox,
  waitFor,
} from "./harness.ts";

const EMAIL = "trash@example.com";
let h: Harness;
let workers: RunningWorkers;

beforeAll(async () => {
  h = await startHarness({ emulator: { accounts: [EMAIL], messages: 40, seed: 808, attachments: false } });
  workers = h.app.startWorkers({ maintenance: false });
});
afterAll(async () => {
  await workers?.close();
  await h?.close();
});

it("untrash after a resync swept the trashed message: the row comes back alive with Gmail's labels", {
  timeout: 90_000,
}, async () => {
  const accountId = await connectTestAccount(h, EMAIL);
  await h.app.enqueueBackfill(accountId, { reason: "connect" });
  await waitFor("backfill", () => backfillDone(h, accountId), 60_000);
  await waitFor("queues idle", () => queuesIdle(h), 30_000);
  const auth = new OAuth2Client({
    clientId: h.emulator.clientId,
    clientSecret: h.emulator.clientSecret,
    endpoints: { oauth2TokenUrl: h.emulator.tokenUrl },
  });
  auth.setCredentials({
    refresh_token: await h.emulator.control.issueRefreshToken(EMAIL, ["https://www.googleapis.com/auth/gmail.modify"]),
  });
  const api = gmail({ version: "v1", auth, rootUrl: h.emulator.gmailRootUrl });

  const victim = (await h.emulator.control.mailbox(EMAIL)).messages.find(
    (m) => m.labelIds.includes("INBOX") && !m.labelIds.includes("DRAFT"),
  );
  expect(victim).toBeDefined();
  const id = victim!.id;
  // Trashed while the cursor's history is lost: the resync's sweep does not see it listed.
  await api.users.messages.trash({ userId: "me", id });
  await h.emulator.control.expireHistory(EMAIL);
  await h.app.enqueueIncremental(accountId, { reason: "manual" });
  await waitFor(
    "the resync to sweep the trashed message",
    async () => {
      const row = await h.app.db
        .selectFrom("messages")
        .select("deleted_at")
        .where("account_id", "=", accountId)
        .where("gmail_id", "=", id)
        .executeTakeFirst();
      return (
        (await syncState(h, accountId)).backfill_phase === "done" &&
        row !== undefined &&
        row.deleted_at !== null &&
        (await queuesIdle(h))
      );
    },
    60_000,
  );

  await api.users.messages.untrash({ userId: "me", id });
  await syncToMailbox(h, accountId, EMAIL);
  const row = await h.app.db
    .selectFrom("messages")
    .select(["deleted_at", "label_ids"])
    .where("account_id", "=", accountId)
    .where("gmail_id", "=", id)
    .executeTakeFirstOrThrow();
  const truth = (await h.emulator.control.mailbox(EMAIL)).messages.find((m) => m.id === id);
  expect(row.deleted_at).toBeNull();
  expect([...row.label_ids].sort()).toEqual([...(truth?.labelIds ?? [])].sort());
  expect(row.label_ids).not.toContain("TRASH");
});

it("with INCLUDE_SPAM_TRASH off, mail landing in Spam is not downloaded; taken out of Spam, it is", {
  timeout: 60_000,
}, async () => {
  const accountId = (
    await h.app.db.selectFrom("accounts").select("id").where("email", "=", EMAIL).executeTakeFirstOrThrow()
  ).id;
  const spam = await h.emulator.control.deliver(EMAIL, { labelIds: ["SPAM", "UNREAD"], attachments: false });
  await syncToMailbox(h, accountId, EMAIL);
  const row = () =>
    h.app.db
      .selectFrom("messages")
      .select(["deleted_at", "label_ids"])
      .where("account_id", "=", accountId)
      .where("gmail_id", "=", spam.id)
      .executeTakeFirst();
  expect(await row()).toBeUndefined();
  expect((await h.emulator.control.messageGets(EMAIL))[spam.id] ?? 0).toBe(0);

  await h.emulator.control.modifyLabels(EMAIL, spam.id, { add: ["INBOX"], remove: ["SPAM"] });
  await syncToMailbox(h, accountId, EMAIL);
  const stored = await row();
  expect(stored).toBeDefined();
  expect(stored?.deleted_at).toBeNull();
  expect([...(stored?.label_ids ?? [])].sort()).toEqual(["INBOX", "UNREAD"]);
});
