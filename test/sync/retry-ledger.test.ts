// The retry ledger in the sync paths, driven directly (runIncremental, runRetryJob, as the worker
// does) against the emulator:
// - a message that answers 404 just after history announced it goes to the ledger and the window's
//   other messages commit at once, the cursor past both; a 404 on its retry is "not served yet",
//   not a deletion; a later messagesDeleted resolves its row;
// - a message whose attachment download keeps failing is stored with that attachment marked
//   fetch_failed, and a retry completes it;
// - a bulk label change over more unheld messages than one slice fetches defers the rest to the
//   ledger, and the retry step fetches them.
import { sql } from "kysely";
import { afterAll, beforeAll, expect, it } from "vitest";
import { listDeadLetters } from "../../src/db/dead-letters.ts";
import type { SyncDeps } from "../../src/sync/deps.ts";
import { runIncremental } from "../../src/sync/incremental.ts";
import { LABELLED_NOT_HELD, NOT_FOUND_YET, runRetryJob } from "../../src/sync/retry-messages.ts";
import {
  connectTestAccount,
  expectDbEqualsMailbox,
  type Harness,
  directSyncDeps,
  startHarness,
  syncState,
} from "./harness.ts";

const EMAIL = "ledger@example.com";
const COUNT = 700;
let h: Harness;
let accountId: number;
let deps: SyncDeps;

beforeAll(async () => {
  // Gmail's defaults, but no random post-push 404s: this test injects its own, per message.
  h = await startHarness({
    emulator: { accounts: [EMAIL], messages: COUNT, seed: 77, attachments: false, addedNotFoundRate: 0 },
  });
  accountId = await connectTestAccount(h, EMAIL);
  deps = await directSyncDeps(h, EMAIL);
  // The mirror as a finished backfill leaves it, less the mail in Spam (INCLUDE_SPAM_TRASH off):
  // 650 messages are moved to Spam first, so they are not held.
  const box = await h.emulator.control.mailbox(EMAIL);
  const movable = box.messages.filter(
    (m) => !m.labelIds.includes("TRASH") && !m.labelIds.includes("SPAM") && !m.labelIds.includes("DRAFT"),
  );
  await h.emulator.control.bulkModifyLabels(EMAIL, {
    ids: movable.slice(0, 650).map((m) => m.id),
    add: ["SPAM"],
    remove: ["INBOX"],
  });
  const seeded = await h.emulator.control.mailbox(EMAIL);
  const held = seeded.messages.filter((m) => !m.labelIds.includes("SPAM"));
  await sql`INSERT INTO messages (account_id, gmail_id, thread_id, history_id, label_ids)
    SELECT ${accountId}, g, t, ${seeded.historyId}::numeric, string_to_array(l, ',')
    FROM unnest(${held.map((m) => m.id)}::text[], ${held.map((m) => m.threadId)}::text[], ${held.map((m) => m.labelIds.join(","))}::text[]) AS x(g, t, l)`.execute(
    h.app.db,
  );
  await h.app.db
    .insertInto("sync_state")
    .values({
      account_id: accountId,
      history_id: seeded.historyId,
      pinned_history_id: seeded.historyId,
      backfill_phase: "done",
    })
    .onConflict((oc) =>
      oc
        .column("account_id")
        .doUpdateSet({ history_id: seeded.historyId, pinned_history_id: seeded.historyId, backfill_phase: "done" }),
    )
    .execute();
}, 120_000);
afterAll(async () => {
  await h?.close();
});

const ledger = async () => new Map((await listDeadLetters(h.app.db, { accountId })).map((r) => [r.gmailId, r]));
const row = (id: string) =>
  h.app.db
    .selectFrom("messages")
    .select(["deleted_at", "body_text"])
    .where("account_id", "=", accountId)
    .where("gmail_id", "=", id)
    .executeTakeFirst();
const makeDue = () =>
  sql`UPDATE dead_letters SET next_attempt_at = now() WHERE account_id = ${accountId} AND resolved_at IS NULL`.execute(
    h.app.db,
  );

it("a post-push 404 goes to the ledger without holding the push's other messages; a 404 on retry is not a deletion; messagesDeleted resolves", {
  timeout: 60_000,
}, async () => {
  const late = await h.emulator.control.deliver(EMAIL, { attachments: false });
  // messages.get of `late` answers 404 for its first two requests: the incremental run's and the first retry's.
  await h.emulator.control.failMessage(EMAIL, late.id, { status: 404, times: 2 });
  const onTime = await h.emulator.control.deliver(EMAIL, { attachments: false });
  const doomed = await h.emulator.control.deliver(EMAIL, { attachments: false });
  await h.emulator.control.failMessage(EMAIL, doomed.id, { status: 404 });
  const mailboxId = BigInt((await h.emulator.control.mailbox(EMAIL)).historyId);

  await expect(runIncremental(deps, { accountId, reason: "push" })).resolves.toMatchObject({ advanced: true });
  expect(BigInt((await syncState(h, accountId)).history_id ?? "0")).toBeGreaterThanOrEqual(mailboxId);
  expect((await row(onTime.id))?.deleted_at).toBeNull();
  expect(await row(late.id)).toBeUndefined();
  let open = await ledger();
  expect(open.get(late.id)).toMatchObject({ reason: NOT_FOUND_YET, attempts: 1, parkedAt: null });
  expect(open.get(doomed.id)).toMatchObject({ reason: NOT_FOUND_YET });

  // Still 404 on the first retry: held as "not served yet", nothing soft-deleted.
  await makeDue();
  await expect(runRetryJob(deps, { accountId })).resolves.toMatchObject({
    retried: 2,
    stored: 0,
    gone: 0,
    retrying: 2,
  });
  expect(await row(late.id)).toBeUndefined();
  expect((await ledger()).get(late.id)).toMatchObject({ reason: NOT_FOUND_YET, attempts: 2 });

  // Served now: stored. `doomed` is deleted in Gmail; the next window's messagesDeleted resolves it.
  await h.emulator.control.deleteMessage(EMAIL, doomed.id);
  await makeDue();
  await expect(runRetryJob(deps, { accountId })).resolves.toMatchObject({ stored: 1 });
  expect((await row(late.id))?.body_text ?? "").not.toBe("");
  await runIncremental(deps, { accountId, reason: "manual" });
  open = await ledger();
  expect(open.has(late.id)).toBe(false);
  expect(open.has(doomed.id)).toBe(false);
});

it("an attachment that cannot be downloaded does not withhold its message: stored with the row marked fetch_failed, completed by a retry", {
  timeout: 60_000,
}, async () => {
  const msg = await h.emulator.control.deliver(EMAIL, { attachments: true });
  const parts = (await h.emulator.control.mailbox(EMAIL)).messages.find((m) => m.id === msg.id)?.attachments ?? [];
  expect(parts.length).toBeGreaterThan(0);
  await h.emulator.control.failMessage(EMAIL, msg.id, { status: 500, target: "attachments" });
  await expect(runIncremental(deps, { accountId, reason: "push" })).resolves.toMatchObject({ advanced: true });
  const attachments = () =>
    h.app.db
      .selectFrom("attachments")
      .innerJoin("messages", "messages.id", "attachments.message_id")
      .select(["attachments.part_id", "attachments.skipped_reason", "attachments.checksum"])
      .where("messages.account_id", "=", accountId)
      .where("messages.gmail_id", "=", msg.id)
      .execute();
  expect((await row(msg.id))?.deleted_at).toBeNull();
  const failed = await attachments();
  expect(failed.length).toBe(parts.length);
  expect(failed.filter((a) => a.skipped_reason === "fetch_failed").length).toBeGreaterThan(0);
  expect((await ledger()).get(msg.id)).toMatchObject({ reason: "attachment_fetch", parkedAt: null });

  await h.emulator.control.failMessage(EMAIL, msg.id, { status: 0, target: "attachments" });
  await makeDue();
  await expect(runRetryJob(deps, { accountId })).resolves.toMatchObject({ retried: 1, stored: 1, retrying: 0 });
  const done = await attachments();
  expect(done.filter((a) => a.skipped_reason === "fetch_failed")).toEqual([]);
  expect(done.every((a) => a.checksum !== null)).toBe(true);
  expect((await ledger()).has(msg.id)).toBe(false);
});

it("a bulk change over more unheld messages than a slice fetches defers the rest to the ledger, and the retry step fetches them", {
  timeout: 120_000,
}, async () => {
  // 650 messages leave Spam at once: label records for messages we do not hold.
  const spam = (await h.emulator.control.mailbox(EMAIL)).messages
    .filter((m) => m.labelIds.includes("SPAM"))
    .map((m) => m.id);
  expect(spam.length).toBeGreaterThanOrEqual(650);
  await h.emulator.control.bulkModifyLabels(EMAIL, { ids: spam, remove: ["SPAM"], add: ["INBOX"] });
  await expect(runIncremental(deps, { accountId, reason: "manual" })).resolves.toMatchObject({ advanced: true });
  // What the sync must fetch (in scope now): 500 in the slice, the rest deferred.
  const wanted = (await h.emulator.control.mailbox(EMAIL)).messages.filter(
    (m) => spam.includes(m.id) && !m.labelIds.includes("TRASH"),
  ).length;
  expect(wanted).toBeGreaterThanOrEqual(650);
  const deferred = [...(await ledger()).values()].filter((r) => r.reason === LABELLED_NOT_HELD);
  expect(deferred.length).toBe(wanted - 500);
  await makeDue();
  await expect(runRetryJob(deps, { accountId })).resolves.toMatchObject({
    retried: wanted - 500,
    stored: wanted - 500,
  });
  expect(await ledger()).toEqual(new Map());
  await expectDbEqualsMailbox(h, accountId, EMAIL);
});
