// Drafts as Gmail lists them: every save of a draft is a new message id and the old one deleted
// (gmail-real-samples README fact 10). The mirror holds the latest version, and autosave churn
// between two syncs leaves no tombstone rows behind (they only guard an open listing run).
import { afterAll, beforeAll, expect, it } from "vitest";
import type { RunningWorkers } from "../../src/worker.ts";
import {
  backfillDone,
  connectTestAccount,
  expectDbEqualsMailbox,
  type Harness,
  queuesIdle,
  startHarness,
  syncToMailbox,
  waitFor,
} from "./harness.ts";

const EMAIL = "drafts@example.com";
let h: Harness;
let workers: RunningWorkers;

beforeAll(async () => {
  h = await startHarness({
    emulator: { accounts: [EMAIL], messages: 120, seed: 909, attachments: false },
    env: { INCLUDE_SPAM_TRASH: "true" },
  });
  workers = h.app.startWorkers({ maintenance: false });
});
afterAll(async () => {
  await workers?.close();
  await h?.close();
});

const tombstones = (accountId: number) =>
  h.app.db
    .selectFrom("messages")
    .select("gmail_id")
    .where("account_id", "=", accountId)
    .where("deleted_at", "is not", null)
    .where("internal_date", "is", null)
    .execute();

it("drafts are mirrored as Gmail lists them, and ten saves between two syncs leave no tombstones", {
  timeout: 90_000,
}, async () => {
  const accountId = await connectTestAccount(h, EMAIL);
  await h.app.enqueueBackfill(accountId, { reason: "connect" });
  await waitFor("backfill", () => backfillDone(h, accountId), 60_000);
  await waitFor("queues idle", () => queuesIdle(h), 30_000);
  expect((await h.emulator.control.mailbox(EMAIL)).messages.some((m) => m.labelIds.includes("DRAFT"))).toBe(true);
  await expectDbEqualsMailbox(h, accountId, EMAIL);

  const raw = (n: number) =>
    Buffer.from(
      `From: ${EMAIL}\r\nTo: someone@example.com\r\nSubject: plan v${n}\r\nMessage-ID: <draft-${n}@example.com>\r\nContent-Type: text/plain; charset=UTF-8\r\n\r\nversion ${n}\r\n`,
    );
  let draft = await h.emulator.control.deliver(EMAIL, { raw: raw(0), labelIds: ["DRAFT"] });
  await syncToMailbox(h, accountId, EMAIL);
  for (let n = 1; n <= 10; n++) draft = await h.emulator.control.editDraft(EMAIL, draft.id, raw(n));
  await syncToMailbox(h, accountId, EMAIL);

  await expectDbEqualsMailbox(h, accountId, EMAIL);
  const latest = await h.app.db
    .selectFrom("messages")
    .select(["subject", "body_text", "label_ids"])
    .where("account_id", "=", accountId)
    .where("gmail_id", "=", draft.id)
    .executeTakeFirstOrThrow();
  expect(latest.subject).toBe("plan v10");
  expect(latest.label_ids).toEqual(["DRAFT"]);
  expect(await tombstones(accountId)).toEqual([]);
});
