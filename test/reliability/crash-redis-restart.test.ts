// Redis restarted in the middle of a backfill: a Redis server of the test's own (appendonly, as a
// deployment keeps its data) stopped after the first committed page — once by SHUTDOWN, once by
// SIGKILL — and started again on the same port and directory after a pause longer than the job
// lock. The workers (in process) ride the outage out: their connections reconnect, the job whose
// lock lapsed is taken over, and the backfill finishes from its checkpoint. Ends converged:
// database = mailbox, no duplicate, no temp file, no stuck or failed job.
import { afterAll, beforeAll, expect, it } from "vitest";
import { backfillDone, connectTestAccount, type Harness, startHarness, syncState } from "../sync/harness.ts";
import { countRequests, expectConverged, poll, syncQueueCounts } from "./helpers/crash.ts";
import { type OwnRedis, startOwnRedis } from "./helpers/redis-server.ts";

const SHUTDOWN_EMAIL = "kim@example.com";
const KILL_EMAIL = "lou@example.com";
const MESSAGES = 2000; // 4 pages of 500
const PAGES = MESSAGES / 500;
let redis: OwnRedis;
let h: Harness;

beforeAll(async () => {
  // fsync on every write: what a SIGKILL leaves is exactly what Redis acknowledged.
  redis = await startOwnRedis({ appendonly: true, appendfsync: "always" });
  h = await startHarness({
    emulator: { accounts: [SHUTDOWN_EMAIL, KILL_EMAIL], messages: MESSAGES, seed: 44, attachments: false },
    // A quota low enough that a page takes about a second: the restart lands mid-backfill.
    env: { INCLUDE_SPAM_TRASH: "true", REDIS_URL: redis.url, GMAIL_QUOTA_UNITS_PER_SECOND: "2500" },
  });
});
afterAll(async () => {
  await h?.close();
  await redis?.destroy();
});

function listRequests(stats: { requests: Record<string, Record<string, number>> }): number {
  return countRequests(stats, "messages.list");
}

async function restartMidBackfill(email: string, stop: () => Promise<void>): Promise<void> {
  const accountId = await connectTestAccount(h, email);
  const listsBefore = listRequests(await h.emulator.control.stats());
  const workers = h.app.startWorkers({ maintenance: false });
  try {
    await h.app.enqueueBackfill(accountId, { reason: "connect" });
    await poll("a committed page", async () => (await syncState(h, accountId)).backfill_pages >= 1, 45_000, 10);

    await stop();
    const atStop = await syncState(h, accountId);
    expect(atStop.backfill_phase, "stopped mid-backfill").toBe("listing");
    // Longer than the job lock (WORKER_LOCK_DURATION_MS=2000): the running job's lock lapses.
    await new Promise((r) => setTimeout(r, 2500));
    await redis.start();

    await poll("backfill to finish after the restart", () => backfillDone(h, accountId), 60_000, 100);
    await poll("queues to drain", async () => (await syncQueueCounts(h)).stuck === 0, 30_000, 100);
    expect((await syncState(h, accountId)).backfill_pages).toBe(PAGES);
    // Resumed, not restarted: each page listed once, plus at most the page(s) in flight at the outage.
    expect(listRequests(await h.emulator.control.stats()) - listsBefore).toBeLessThanOrEqual(PAGES + 2);
    await expectConverged(h, accountId, email);
  } finally {
    await workers.close();
  }
}

it("Redis SHUTDOWN and restart mid-backfill: workers reconnect, the backfill resumes and converges", {
  timeout: 90_000,
}, async () => {
  await restartMidBackfill(SHUTDOWN_EMAIL, () => redis.shutdown());
});

it("Redis SIGKILLed and restarted mid-backfill: the same, from what the AOF holds", { timeout: 90_000 }, async () => {
  await restartMidBackfill(KILL_EMAIL, () => redis.kill());
});
