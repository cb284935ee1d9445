// Redis restarted in the middle of a backfill: a Redis server of the test's own (appendonly, as a
// deployment keeps its data) is shut down after the first committed page and started again on the
// same port and directory after a pause longer than the job lock. The workers (in process) ride
// the outage out: their connections reconnect, the job whose lock lapsed is taken over, and the
// backfill finishes from its checkpoint. Ends converged: database = mailbox, no duplicate, no
// temp file, no stuck or failed job.
import { afterAll, beforeAll, expect, it } from "vitest";
import { backfillDone, connectTestAccount, type Harness, startHarness, syncState } from "../sync/harness.ts";
import { countRequests, expectConverged, poll, syncQueueCounts } from "./helpers/crash.ts";
import { type OwnRedis, startOwnRedis } from "./helpers/redis-server.ts";

const EMAIL = "kim@example.com";
const MESSAGES = 2000; // 4 pages of 500
let redis: OwnRedis;
let h: Harness;

beforeAll(async () => {
  redis = await startOwnRedis({ appendonly: true });
  h = await startHarness({
    emulator: { accounts: [EMAIL], messages: MESSAGES, seed: 44, attachments: false },
    // A quota low enough that a page takes about a second: the restart lands mid-backfill.
    env: { INCLUDE_SPAM_TRASH: "true", REDIS_URL: redis.url, GMAIL_QUOTA_UNITS_PER_SECOND: "2500" },
  });
});
afterAll(async () => {
  await h?.close();
  await redis?.destroy();
});

it("Redis shut down and restarted mid-backfill: workers reconnect, the backfill resumes and converges", { timeout: 90_000 }, async () => {
  const accountId = await connectTestAccount(h, EMAIL);
  const workers = h.app.startWorkers({ maintenance: false });
  await h.app.enqueueBackfill(accountId, { reason: "connect" });
  await poll("a committed page", async () => (await syncState(h, accountId)).backfill_pages >= 1, 45_000, 10);

  await redis.shutdown();
  const atShutdown = await syncState(h, accountId);
  expect(atShutdown.backfill_phase, "shut down mid-backfill").toBe("listing");
  // Longer than the job lock (WORKER_LOCK_DURATION_MS=2000): the running job's lock lapses.
  await new Promise((r) => setTimeout(r, 2500));
  await redis.start();

  await poll("backfill to finish after the restart", () => backfillDone(h, accountId), 60_000, 100);
  await poll("queues to drain", async () => (await syncQueueCounts(h)).stuck === 0, 30_000, 100);
  const state = await syncState(h, accountId);
  expect(state.backfill_pages).toBe(MESSAGES / 500);
  // Resumed, not restarted: each page listed once, plus at most the page(s) in flight at the outage.
  expect(countRequests(await h.emulator.control.stats(), "messages.list")).toBeLessThanOrEqual(MESSAGES / 500 + 2);
  await expectConverged(h, accountId, EMAIL);
  await workers.close();
});
