// Backfill fetches threads whole (threads.get, 10 units) when a page lists two or more of their
// messages, instead of one messages.get (5 units) each. Against the emulator with the real client:
// the same rows for less quota than messages.get alone; a thread's members stored ahead of their
// own page are not fetched again; a scoped run (q) stores only what it listed even though
// threads.get returns every member; a thread that fails falls back to messages.get for its ids.
//
// Pages are run directly (runBackfillPage, as the worker does) so each run's config can differ and
// the emulator's counters can be read between runs.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { EmulatorStats } from "@gmail-sync/emulator";
import { runBackfillPage, type BackfillPageResult } from "../../src/sync/backfill.ts";
import type { SyncDeps } from "../../src/sync/deps.ts";
import { connectTestAccount, type Harness, startHarness } from "./harness.ts";

const ALICE = "alice@example.com";
const BOB = "bob@example.com";
let h: Harness;

beforeAll(async () => {
  // This file backfills the same 1,200 messages several times within a minute to compare quota
  // spent per strategy (tens of thousands of units): Gmail's per-minute user limit is off by name.
  h = await startHarness({
    emulator: {
      accounts: [ALICE, BOB],
      messages: 1200,
      seed: 23,
      attachments: true,
      hostile: false,
      userQuotaUnitsPerMinute: 0,
    },
  });
}, 60_000);
afterAll(async () => {
  await h?.close();
});

function deps(overrides: Partial<SyncDeps["config"]> = {}): SyncDeps {
  const { app } = h;
  return {
    db: app.db,
    redis: app.redis,
    queues: app.queues,
    gmailFactory: app.gmailFactory,
    pipeline: app.pipeline,
    log: app.log,
    config: { ...app.config, ...overrides },
  };
}

type Page = Exclude<BackfillPageResult, { skipped: unknown }>;

/** What messages.list lists (spam and trash left out, as the backfill's default): id → thread. */
async function listed(accountId: number, email: string, q?: string): Promise<Map<string, string>> {
  const gmail = await h.app.gmailFactory({ id: accountId, email });
  const out = new Map<string, string>();
  let pageToken: string | undefined;
  do {
    const page = await gmail.listMessages({
      maxResults: 500,
      includeSpamTrash: false,
      ...(q ? { q } : {}),
      ...(pageToken ? { pageToken } : {}),
    });
    for (const m of page.messages) out.set(m.id, m.threadId);
    pageToken = page.nextPageToken;
  } while (pageToken);
  return out;
}

/** The account's live rows are exactly `ids`, each in its thread. */
async function expectRows(accountId: number, ids: Map<string, string>): Promise<void> {
  const rows = await h.app.db
    .selectFrom("messages")
    .select(["gmail_id", "thread_id"])
    .where("account_id", "=", accountId)
    .where("deleted_at", "is", null)
    .execute();
  expect(rows.length).toBe(ids.size);
  expect(new Map(rows.map((r) => [r.gmail_id, r.thread_id]))).toEqual(ids);
}

/** One whole run, page by page; what it cost at the emulator. */
async function backfillRun(d: SyncDeps, accountId: number, email: string, query?: string) {
  const before = await h.emulator.control.stats();
  const pages: Page[] = [];
  for (let i = 0; ; i++) {
    const r = await runBackfillPage(d, {
      accountId,
      reason: "manual",
      ...(query ? { query } : {}),
      ...(i > 0 ? { resumeOnly: true } : {}),
    });
    if ("skipped" in r) throw new Error(`page skipped: ${r.skipped}`);
    pages.push(r);
    if (r.done) break;
  }
  const after = await h.emulator.control.stats();
  const ok = (s: EmulatorStats, method: string) => s.requests[method]?.["200"] ?? 0;
  return {
    pages,
    units: (after.quotaUnits[email] ?? 0) - (before.quotaUnits[email] ?? 0),
    threadGets: ok(after, "gmail.users.threads.get") - ok(before, "gmail.users.threads.get"),
    messageGets: ok(after, "gmail.users.messages.get") - ok(before, "gmail.users.messages.get"),
  };
}

describe("unscoped", () => {
  let accountId: number;
  beforeAll(async () => {
    accountId = await connectTestAccount(h, ALICE);
  });

  it("stores exactly the listing for less quota than messages.get alone; later pages count members stored ahead", {
    timeout: 120_000,
  }, async () => {
    const want = await listed(accountId, ALICE);
    const box = await h.emulator.control.mailbox(ALICE);
    expect(box.messages.length, "the mailbox has spam or trash the listing leaves out").toBeGreaterThan(want.size);
    const sizes = new Map<string, number>();
    for (const t of want.values()) sizes.set(t, (sizes.get(t) ?? 0) + 1);
    expect(
      [...sizes.values()].some((n) => n >= 2),
      "the generated mailbox has multi-message threads",
    ).toBe(true);

    const threads = await backfillRun(deps(), accountId, ALICE);
    // Exactly the listing: no thread member outside it (spam, trash) came along.
    await expectRows(accountId, want);
    expect(threads.threadGets).toBeGreaterThan(0);
    expect(threads.messageGets).toBeLessThan(want.size);
    // Members of a thread listed on a later page came with it, and their page counted them as held.
    expect(threads.pages.length).toBeGreaterThan(1);
    expect(
      threads.pages.some((p) => p.stored > p.fetched),
      "some page stored a later page's thread members",
    ).toBe(true);
    expect(threads.pages.reduce((a, p) => a + p.listed, 0)).toBe(want.size);
    const held = await h.app.db
      .selectFrom("sync_state")
      .select(["backfill_listed", "backfill_stored"])
      .where("account_id", "=", accountId)
      .executeTakeFirstOrThrow();
    expect(held).toEqual({ backfill_listed: want.size, backfill_stored: want.size });

    // The same mailbox again, messages.get only (a new run refetches everything).
    const messages = await backfillRun(deps({ BACKFILL_FETCH_THREADS: false }), accountId, ALICE);
    await expectRows(accountId, want);
    expect(messages.threadGets).toBe(0);
    expect(messages.messageGets).toBe(want.size);
    // Attachments cost the same either way; the messages themselves cost less by thread.
    expect(threads.units).toBeLessThan(messages.units);
  });

  it("falls back to messages.get for the listed members of a thread that fails", { timeout: 60_000 }, async () => {
    const want = await listed(accountId, ALICE);
    const members = new Map<string, string[]>();
    for (const [id, t] of want) members.set(t, [...(members.get(t) ?? []), id]);
    const [, ids] = [...members].find(([, ids]) => ids.length >= 3) ?? [];
    if (!ids) throw new Error("no thread of 3+ messages in the generated mailbox");
    // Its thread answers 404 once (the failure is used up by threads.get), then everything serves.
    await h.emulator.control.failMessage(ALICE, ids[1]!, { status: 404, times: 1 });
    const gets = await h.emulator.control.messageGets(ALICE);
    await backfillRun(deps(), accountId, ALICE);
    const after = await h.emulator.control.messageGets(ALICE);
    for (const id of ids) expect((after[id] ?? 0) - (gets[id] ?? 0), `messages.get of ${id}`).toBe(1);
    expect((await h.emulator.control.stats()).injectedFailures?.[ALICE]?.[ids[1]!]).toBe(1);
    await expectRows(accountId, want);
  });
});

describe("scoped by a query", () => {
  it("stores only the listed messages of the threads it fetches whole", { timeout: 120_000 }, async () => {
    const accountId = await connectTestAccount(h, BOB);
    const want = await listed(accountId, BOB, "has:attachment");
    const all = await listed(accountId, BOB);
    const inScope = new Map<string, number>();
    for (const t of want.values()) inScope.set(t, (inScope.get(t) ?? 0) + 1);
    const mixed = [...all].filter(([id, t]) => !want.has(id) && (inScope.get(t) ?? 0) >= 2);
    expect(mixed.length, "threads with 2+ messages in scope and some out of it exist").toBeGreaterThan(0);

    const run = await backfillRun(deps(), accountId, BOB, "has:attachment");
    expect(run.threadGets).toBeGreaterThan(0);
    await expectRows(accountId, want);
  });
});
