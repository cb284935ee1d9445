// Redis restarted EMPTY in the middle of a backfill (no persistence: a host that lost its Redis
// along with the worker): every job, lock, de-duplication key and job scheduler is gone; only
// Postgres remembers that the backfill is half done. The deploy's init step (`gmail-sync migrate`)
// recreates the schedulers, a new worker starts, and the poll tick recovers: it asks every backfill
// in progress to resume (a no-op while its next turn is queued), and the broken chain resumes from
// its Postgres checkpoint. Ends converged: database = mailbox, no duplicate, no temp file, no stuck or
// failed job.
import { afterAll, beforeAll, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { backfillDone, connectTestAccount, type Harness, startHarness, syncState } from "../sync/harness.ts";
import {
  countRequests,
  expectConverged,
  killAllWorkerChildren,
  poll,
  startWorkerChild,
  syncQueueCounts,
} from "./helpers/crash.ts";
import { type OwnRedis, startOwnRedis } from "./helpers/redis-server.ts";

const EMAIL = "max@example.com";
const MESSAGES = 2000; // 4 pages of 500
const PAGES = MESSAGES / 500;
let redis: OwnRedis;
let h: Harness;

beforeAll(async () => {
  redis = await startOwnRedis({ appendonly: false });
  h = await startHarness({
    emulator: { accounts: [EMAIL], messages: MESSAGES, seed: 66, attachments: false },
    // About a second per page: the loss lands mid-backfill. The poll fallback treats an account
    // as silent after a minute (the smallest setting); this one has never synced, so it is.
    env: {
      INCLUDE_SPAM_TRASH: "true",
      REDIS_URL: redis.url,
      GMAIL_QUOTA_UNITS_PER_SECOND: "2500",
      POLL_FALLBACK_MINUTES: "1",
    },
  });
});
afterAll(async () => {
  killAllWorkerChildren();
  await h?.close();
  await redis?.destroy();
});

it("Redis loses all its data mid-backfill: after init recreates the schedules, the poll tick resumes the backfill", {
  timeout: 90_000,
}, async () => {
  const accountId = await connectTestAccount(h, EMAIL);
  const first = startWorkerChild(h);
  await h.app.enqueueBackfill(accountId, { reason: "connect" });
  await poll("a committed page", async () => (await syncState(h, accountId)).backfill_pages >= 1, 45_000, 10);

  first.child.kill("SIGKILL");
  await first.exited;
  await redis.kill();
  await redis.start();
  const atLoss = await syncState(h, accountId);
  expect(atLoss.backfill_phase, "lost mid-backfill").toBe("listing");
  expect(await h.app.queues.backfill.count(), "nothing of the old queue survived").toBe(0);
  const listsBefore = countRequests(await h.emulator.control.stats(), "messages.list");

  const init = await runCli(["migrate", "--json"], { ...h.env, LOG_LEVEL: "warn" });
  expect(init.code, init.stderr).toBe(0);
  expect(JSON.parse(init.stdout).schedules).toContain("poll-tick");
  const second = startWorkerChild(h);

  await poll("backfill to finish after the loss", () => backfillDone(h, accountId), 60_000, 100);
  await poll("queues to drain", async () => (await syncQueueCounts(h)).stuck === 0, 30_000, 100);
  expect((await syncState(h, accountId)).backfill_pages).toBe(PAGES);
  // Resumed from the Postgres checkpoint, not restarted: only the pages not yet committed (plus
  // the one in flight at the loss) were listed again.
  expect(countRequests(await h.emulator.control.stats(), "messages.list") - listsBefore).toBeLessThanOrEqual(
    PAGES - atLoss.backfill_pages + 1,
  );
  await expectConverged(h, accountId, EMAIL);
  second.child.kill("SIGTERM");
  expect((await second.exited).code, second.output()).toBe(0);
});
