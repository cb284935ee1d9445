// Turns shrink as accounts grow (src/sync/fair-share.ts): a round of every running backfill's turn
// fits in BACKFILL_ROUND_SECONDS of the project quota backfills may spend. The sizes themselves,
// then a real backfill whose project quota and round make each turn 3 messages: its jobs fetch
// exactly that much each (too small a turn for whole threads), not the fixed 20 then 100.
import type { Job } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { MIN_SLICE, runningBackfills, turnSize, WHOLE_THREAD_TURN } from "../../src/sync/fair-share.ts";
import { FIRST_SLICE, SLICE } from "../../src/sync/page-slices.ts";
import {
  backfillDone,
  connectTestAccount,
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
const MESSAGES = 60;
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    emulator: { accounts: [EMAIL], messages: MESSAGES, seed: 77, attachments: false },
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
