// The job catalog's per-account coalescing on real Redis/BullMQ: pushes while a sync is queued
// fold into it (earliest push time kept); pushes while one runs cause exactly one more run.
import { Worker } from "bullmq";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  createQueues,
  enqueueBackfill,
  enqueueIncremental,
  type Queues,
  pushTimeKey,
  QUEUE_NAMES,
} from "../../src/jobs.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";

let tr: TestRedis;
let queues: Queues;
const prefix = () => `{${tr.prefix}}`;

beforeAll(async () => {
  tr = await createTestRedis();
  queues = createQueues(tr.redis, prefix());
});
afterAll(async () => {
  await queues?.close();
  await tr?.cleanup();
});

it("folds queued pushes into one job and keeps the earliest push time", async () => {
  const results = [];
  for (let i = 0; i < 5; i++)
    results.push(
      await enqueueIncremental(queues, 1, { reason: "push", pushReceivedAt: 1000 + i, historyId: String(50 + i) }),
    );
  expect(results.map((r) => r.coalesced)).toEqual([false, true, true, true, true]);
  expect(await queues.incremental.getWaitingCount()).toBe(1);
  expect(await tr.redis.get(pushTimeKey(prefix(), 1))).toBe("1000");
  // Another account is not folded into it.
  expect((await enqueueIncremental(queues, 2, { reason: "poll" })).coalesced).toBe(false);
  expect(await queues.incremental.getWaitingCount()).toBe(2);
  await queues.incremental.obliterate({ force: true });
  await tr.redis.del(pushTimeKey(prefix(), 1));
});

it("a push during a running sync leads to exactly one more run, and payloads hold ids only", async () => {
  const runs: unknown[] = [];
  let release!: () => void;
  let started!: () => void;
  let startedP = new Promise<void>((r) => (started = r));
  const connection = tr.redis.duplicate({ maxRetriesPerRequest: null });
  const worker = new Worker(
    QUEUE_NAMES.incremental,
    async (job) => {
      runs.push(job.data);
      started();
      await new Promise<void>((r) => (release = r));
    },
    { connection, prefix: prefix(), concurrency: 4 },
  );
  try {
    await enqueueIncremental(queues, 7, { reason: "push", pushReceivedAt: 1 });
    await startedP;
    startedP = new Promise<void>((r) => (started = r));
    for (let i = 0; i < 3; i++)
      expect((await enqueueIncremental(queues, 7, { reason: "push", pushReceivedAt: 10 + i })).coalesced).toBe(true);
    expect(runs).toHaveLength(1); // not run in parallel although concurrency allows it
    release();
    await startedP; // the one follow-up run
    release();
    await new Promise((r) => setTimeout(r, 300));
    expect(runs).toHaveLength(2);
    for (const data of runs)
      expect(Object.keys(data as object).sort()).toEqual(expect.arrayContaining(["accountId", "reason"]));
    expect(JSON.stringify(runs)).not.toMatch(/token|raw|body/i);
  } finally {
    await worker.close();
    connection.disconnect();
  }
});

it("backfill continuations enqueued by the running page make one follow-up, not a flood", async () => {
  await enqueueBackfill(queues, 9, { reason: "connect" });
  await enqueueBackfill(queues, 9, { reason: "manual" });
  await enqueueBackfill(queues, 9, { reason: "manual" });
  expect(await queues.backfill.getWaitingCount()).toBe(1);
});
