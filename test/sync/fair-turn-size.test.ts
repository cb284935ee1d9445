// Turns shrink as accounts grow (src/sync/fair-share.ts): a round of every running backfill's turn
// fits in BACKFILL_ROUND_SECONDS of the project quota backfills may spend. The sizes themselves,
// then a real backfill whose project quota and round make each turn 3 messages: its jobs fetch
// exactly that much each (too small a turn for whole threads), not the fixed 20 then 100.
import type { Job } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { insertHeldMessages } from "../../src/db/bulk-fixtures.ts";
import { getSyncState } from "../../src/db/sync-state.ts";
import { runBackfillPage } from "../../src/sync/backfill.ts";
import { MIN_SLICE, runningBackfills, turnSize, WHOLE_THREAD_TURN } from "../../src/sync/fair-share.ts";
import { FIRST_SLICE, loadSlices, SLICE, sliceKey } from "../../src/sync/page-slices.ts";
import {
  backfillDone,
  connectTestAccount,
  directSyncDeps,
  expectDbEqualsMailbox,
  type Harness,
  queuesIdle,
  startHarness,
  waitFor,
} from "./harness.ts";

describe("turn size", () => {
  const gmailDefault = { GMAIL_PROJECT_QUOTA_UNITS_PER_MINUTE: 1_200_000, BACKFILL_ROUND_SECONDS: 30 };
  it("is the full slice while a round fits: Gmail's default project, up to ~640 accounts", () => {
    expect(turnSize(gmailDefault, 1, true)).toBe(FIRST_SLICE);
    expect(turnSize(gmailDefault, 1, false)).toBe(SLICE);
    expect(turnSize(gmailDefault, 640, false)).toBe(SLICE);
    expect(turnSize(gmailDefault, 700, false)).toBeLessThan(SLICE);
  });
  it("shrinks past that, so that every running account is served each round, down to MIN_SLICE", () => {
    // 20,000 units/s × 0.75 (backfills leave a quarter to live work) × 30 s ÷ 10,000 accounts ÷ 7 units.
    expect(turnSize(gmailDefault, 10_000, false)).toBe(6);
    expect(turnSize(gmailDefault, 10_000, true)).toBe(6);
    expect(turnSize(gmailDefault, 1_000_000, false)).toBe(MIN_SLICE);
    // The fleet benchmark's 2,000 accounts under a 450 units/s project: one message a turn.
    expect(turnSize({ GMAIL_PROJECT_QUOTA_UNITS_PER_MINUTE: 27_000, BACKFILL_ROUND_SECONDS: 30 }, 2000, false)).toBe(1);
  });
});

const EMAIL = "turns@example.com";
const HELD = "held-meanwhile@example.com";
const MESSAGES = 60;
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    emulator: { accounts: [EMAIL, HELD], messages: MESSAGES, seed: 77, attachments: false },
    // 1,680 units/min ÷ 60 × 0.75 × 1 s ÷ 1 account ÷ 7 units = 3 messages a turn.
    env: {
      INCLUDE_SPAM_TRASH: "true",
      GMAIL_PROJECT_QUOTA_UNITS_PER_MINUTE: "1680",
      BACKFILL_ROUND_SECONDS: "1",
      WORKER_CONCURRENCY: "1",
    },
  });
}, 60_000);
afterAll(async () => {
  await h?.close();
});

it("a backfill under a small project quota fetches in small turns, and completes", { timeout: 120_000 }, async () => {
  const turn = turnSize(h.app.config, 1, true);
  expect(turn).toBe(3);
  const fetched: number[] = [];
  const workers = h.app.startWorkers({ maintenance: false });
  for (const w of workers.workers)
    w.on("completed", (job: Job, result: { fetched?: number } | undefined) => {
      if (job.name === "backfill-page" && typeof result?.fetched === "number") fetched.push(result.fetched);
    });
  try {
    const id = await connectTestAccount(h, EMAIL);
    await h.app.enqueueBackfill(id, { reason: "connect" });
    await waitFor("the backfill", async () => (await backfillDone(h, id)) && (await queuesIdle(h)), 100_000);
    await expectDbEqualsMailbox(h, id, EMAIL);
    expect(await runningBackfills(h.app.db, Date.now() + 60_000)).toBe(0);
  } finally {
    await workers.close();
  }
  // A turn this small takes exactly its messages, not whole threads (WHOLE_THREAD_TURN).
  expect(turn).toBeLessThan(WHOLE_THREAD_TURN);
  expect(Math.max(...fetched)).toBe(turn);
  expect(fetched.length).toBeGreaterThanOrEqual(Math.ceil(MESSAGES / turn));
});

it("a message stored meanwhile (the incremental sync, a thread's other page) is not fetched when its turn comes", {
  timeout: 60_000,
}, async () => {
  // Turns run one by one here, as the worker runs them: each checks only the slice it is about to
  // fetch against what is held, and drops what is.
  const id = await connectTestAccount(h, HELD);
  const deps = await directSyncDeps(h, HELD);
  const first = await runBackfillPage(deps, { accountId: id, reason: "connect" });
  expect(first).toMatchObject({ listed: MESSAGES, fetched: 3 });
  const state = await getSyncState(h.app.db, id);
  const page = await loadSlices(
    h.app.redis,
    sliceKey(h.app.queues.prefix, id),
    state?.backfill_started_at as Date,
    state?.backfill_page_token ?? null,
  );
  const refs = page?.refs ?? [];
  expect(refs.length).toBe(MESSAGES - 3);
  // One in the very next slice, one deep in the page: stored by someone else, with Gmail's labels.
  const box = await h.emulator.control.mailbox(HELD);
  const meanwhile = [refs[1], refs[30]].map((r) => box.messages.find((m) => m.id === r?.[0]));
  await insertHeldMessages(
    h.app.db,
    id,
    meanwhile.map((m) => ({
      gmailId: m?.id as string,
      threadId: m?.threadId as string,
      labelIds: m?.labelIds ?? [],
      historyId: "1",
    })),
  );
  let fetched = first && "fetched" in first ? first.fetched : 0;
  for (let turn = 0; turn < MESSAGES; turn++) {
    const r = await runBackfillPage(deps, { accountId: id, reason: "connect", resumeOnly: true });
    if (!("fetched" in r)) throw new Error(`turn skipped: ${JSON.stringify(r)}`);
    fetched += r.fetched;
    if (r.done) break;
  }
  const gets = await h.emulator.control.messageGets(HELD);
  expect(meanwhile.map((m) => gets[m?.id as string] ?? 0)).toEqual([0, 0]);
  expect(Object.values(gets).filter((n) => n > 1)).toEqual([]);
  expect(fetched).toBe(MESSAGES - 2);
  const done = await getSyncState(h.app.db, id);
  expect(done?.backfill_phase).toBe("done");
  expect([done?.backfill_listed, done?.backfill_stored]).toEqual([MESSAGES, MESSAGES]);
  await expectDbEqualsMailbox(h, id, HELD);
});
