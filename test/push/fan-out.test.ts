// What the ticks enqueue for many accounts (src/fan-out.ts): reconciles spread over the window by a
// stable hash of the account, each once per tick, never folding into the account's other backfill
// turns; poll syncs and backfill resumes in bulk, de-duplicated per account like single ones.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { enqueueIncrementals, enqueueReconciles, reconcileOffsetMs, resumeBackfills } from "../../src/fan-out.ts";
import { createQueues, enqueueBackfill, enqueueIncremental, type Queues } from "../../src/jobs.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";

let t: TestRedis;
let queues: Queues;

beforeAll(async () => {
  t = await createTestRedis();
  queues = createQueues(t.redis, `{${t.prefix}}`);
});
afterAll(async () => {
  await queues.close();
  await t.cleanup();
});

const DAY = 86_400_000;

describe("fan-out", () => {
  it("reconcile offsets are stable, inside the window and spread evenly", () => {
    expect(reconcileOffsetMs(42, DAY)).toBe(reconcileOffsetMs(42, DAY));
    expect(reconcileOffsetMs(42, 0)).toBe(0);
    const offsets = Array.from({ length: 10_000 }, (_, i) => reconcileOffsetMs(i + 1, DAY));
    expect(Math.min(...offsets)).toBeGreaterThanOrEqual(0);
    expect(Math.max(...offsets)).toBeLessThan(DAY);
    // 24 hourly bins of ~417 accounts each: none far from even.
    const bins = new Array(24).fill(0);
    for (const o of offsets) bins[Math.floor(o / 3_600_000)]++;
    expect(Math.min(...bins)).toBeGreaterThan(300);
    expect(Math.max(...bins)).toBeLessThan(540);
  });

  it("reconciles: delayed by the account's offset, once per tick, beside the account's own backfill turn", async () => {
    await enqueueBackfill(queues, 1, { reason: "connect" });
    await enqueueReconciles(queues, [1, 2, 3], { spreadMs: DAY, tickAt: 1_000 });
    await enqueueReconciles(queues, [1, 2, 3], { spreadMs: DAY, tickAt: 1_000 }); // the same tick again
    const delayed = await queues.backfill.getJobs(["delayed"]);
    expect(delayed.map((j) => j.id).sort()).toEqual(["reconcile-1-1000", "reconcile-2-1000", "reconcile-3-1000"]);
    for (const j of delayed) {
      expect(j.data.reason).toBe("reconcile");
      expect(j.opts.delay).toBe(reconcileOffsetMs(j.data.accountId, DAY));
    }
    // The connect turn of account 1 is still queued: the reconcile did not fold into it (nor it into the reconcile).
    expect((await queues.backfill.getJobs(["waiting"])).map((j) => j.data)).toEqual([
      { accountId: 1, reason: "connect" },
    ]);
  });

  it("poll syncs in bulk fold into a queued sync of the same account", async () => {
    await enqueueIncremental(queues, 7, { reason: "push" });
    await enqueueIncrementals(queues, [7, 8, 9], { reason: "poll" });
    await enqueueIncrementals(queues, [8], { reason: "poll" });
    const waiting = await queues.incremental.getJobs(["waiting"]);
    expect(waiting.map((j) => j.data.accountId).sort()).toEqual([7, 8, 9]);
  });

  it("backfill resumes in bulk fold into a run's queued turn; a run without one gets a turn at its priority", async () => {
    await enqueueBackfill(queues, 40, { reason: "connect", resumeOnly: true, priority: 2 });
    await resumeBackfills(queues, [
      { accountId: 40, priority: 2 },
      { accountId: 41, priority: 7 },
    ]);
    await resumeBackfills(queues, [{ accountId: 41, priority: 7 }]); // the next tick, before it ran
    const queued = (await queues.backfill.getJobs(["prioritized"])).filter((j) => j.data.accountId >= 40);
    expect(queued.map((j) => [j.data, j.opts.priority]).sort()).toEqual([
      [{ accountId: 40, reason: "connect", resumeOnly: true }, 2],
      [{ accountId: 41, reason: "manual", resumeOnly: true }, 7],
    ]);
  });
});
