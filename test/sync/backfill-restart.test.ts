// A backfill whose stored page token Gmail no longer accepts (400: aged out, scope changed) would
// fail on every retry and never finish: the page restarts the run from page one instead, and the
// run completes with the mailbox stored. Pages run directly, as the worker runs them.
import { afterAll, beforeAll, expect, it } from "vitest";
import { isGmailError } from "../../src/errors.ts";
import { runBackfillPage } from "../../src/sync/backfill.ts";
import type { SyncDeps } from "../../src/sync/deps.ts";
import { connectTestAccount, type Harness, startHarness, syncState } from "./harness.ts";

const EMAIL = "restart@example.com";
let h: Harness;

beforeAll(async () => {
  // Several full listings of 1,100 messages within a minute: Gmail's per-minute user limit is off by name.
  h = await startHarness({
    emulator: { accounts: [EMAIL], messages: 1100, seed: 1212, attachments: false, userQuotaUnitsPerMinute: 0 },
  });
});
afterAll(async () => {
  await h?.close();
});

it("a rejected page token restarts the run instead of wedging it", { timeout: 90_000 }, async () => {
  const { app } = h;
  const deps: SyncDeps = {
    db: app.db,
    redis: app.redis,
    queues: app.queues,
    gmailFactory: app.gmailFactory,
    pipeline: app.pipeline,
    log: app.log,
    config: app.config,
  };
  const accountId = await connectTestAccount(h, EMAIL);
  const first = await runBackfillPage(deps, { accountId, reason: "connect" });
  expect(first).toMatchObject({ page: 1, done: false });
  const runStarted = (await syncState(h, accountId)).backfill_started_at;
  // The stored token goes bad (Gmail answers 400 "Invalid pageToken").
  await app.db
    .updateTable("sync_state")
    .set({ backfill_page_token: "bm90LWEtdG9rZW4hIQ" })
    .where("account_id", "=", accountId)
    .execute();
  expect(await runBackfillPage(deps, { accountId, reason: "connect", resumeOnly: true })).toEqual({
    skipped: "run_restarted",
  });
  const restarted = await syncState(h, accountId);
  expect(restarted.backfill_phase).toBe("listing");
  expect(restarted.backfill_page_token).toBeNull();
  expect(restarted.backfill_started_at?.getTime()).toBeGreaterThan(runStarted?.getTime() ?? 0);

  // One slice of a page per turn (src/sync/page-slices.ts).
  for (let i = 0; i < 100 && (await syncState(h, accountId)).backfill_phase === "listing"; i++)
    await runBackfillPage(deps, { accountId, reason: "connect", resumeOnly: true });
  expect((await syncState(h, accountId)).backfill_phase).toBe("done");
  const listable = (await h.emulator.control.mailbox(EMAIL)).messages.filter(
    (m) => !m.labelIds.includes("SPAM") && !m.labelIds.includes("TRASH"),
  );
  const stored = await app.db
    .selectFrom("messages")
    .select("gmail_id")
    .where("account_id", "=", accountId)
    .where("deleted_at", "is", null)
    .execute();
  expect(new Set(stored.map((r) => r.gmail_id))).toEqual(new Set(listable.map((m) => m.id)));
});

it("tripwire: a page where most listed messages answer 404 is not committed (nothing soft-deleted) and fails transiently", {
  timeout: 90_000,
}, async () => {
  const { app } = h;
  const deps: SyncDeps = {
    db: app.db,
    redis: app.redis,
    queues: app.queues,
    gmailFactory: app.gmailFactory,
    pipeline: app.pipeline,
    log: app.log,
    config: { ...app.config, BACKFILL_FETCH_THREADS: false },
  };
  const accountId = (
    await app.db.selectFrom("accounts").select("id").where("email", "=", EMAIL).executeTakeFirstOrThrow()
  ).id;
  // The first page's listable messages answer 404 (a broken endpoint or proxy, not a mass deletion):
  // whatever slice of it the turn fetches.
  const listable = (await h.emulator.control.mailbox(EMAIL)).messages.filter(
    (m) => !m.labelIds.includes("SPAM") && !m.labelIds.includes("TRASH"),
  );
  const victims = listable.slice(0, 500).map((m) => m.id);
  for (const id of victims) await h.emulator.control.failMessage(EMAIL, id, { status: 404 });
  try {
    // A manual re-listing run re-fetches what it lists (rows stored before the run are not current for it).
    const err = await runBackfillPage(deps, { accountId, reason: "manual" }).catch((e: unknown) => e);
    expect(isGmailError(err, "transient")).toBe(true);
    expect((err as { reason?: string }).reason).toBe("implausibleNotFound");
    const deleted = await app.db
      .selectFrom("messages")
      .select("gmail_id")
      .where("account_id", "=", accountId)
      .where("deleted_at", "is not", null)
      .execute();
    expect(deleted.filter((d) => victims.includes(d.gmail_id))).toEqual([]);
  } finally {
    for (const id of victims) await h.emulator.control.failMessage(EMAIL, id, { status: 0 });
  }
});

it("a restart job starts a new run even while one is listing (the reconcile tick's answer to a stuck run)", {
  timeout: 60_000,
}, async () => {
  const { app } = h;
  const deps: SyncDeps = {
    db: app.db,
    redis: app.redis,
    queues: app.queues,
    gmailFactory: app.gmailFactory,
    pipeline: app.pipeline,
    log: app.log,
    config: app.config,
  };
  const accountId = (
    await app.db.selectFrom("accounts").select("id").where("email", "=", EMAIL).executeTakeFirstOrThrow()
  ).id;
  await runBackfillPage(deps, { accountId, reason: "manual" });
  const listing = await syncState(h, accountId);
  expect(listing.backfill_phase).toBe("listing");
  const page = await runBackfillPage(deps, { accountId, reason: "reconcile", restart: true });
  expect(page).toMatchObject({ page: 1 });
  expect((await syncState(h, accountId)).backfill_started_at?.getTime()).toBeGreaterThan(
    listing.backfill_started_at?.getTime() ?? 0,
  );
});
