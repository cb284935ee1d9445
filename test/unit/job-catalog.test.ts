// The job catalog (src/jobs.ts): every job the producers and the schedulers put on a queue is a
// catalog job whose payload parses; and at the worker boundary an unknown name or a bad payload,
// put on the real queue in Redis, fails at once without retry (counted), while the same worker
// goes on to run the next good job.
import type { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import {
  createQueues,
  enqueueBackfill,
  enqueueIncremental,
  enqueueLabelRepair,
  enqueueRetry,
  JOB_NAMES,
  JOBS,
  parseJob,
  QUEUE_NAMES,
  type QueueName,
  type Queues,
} from "../../src/jobs.ts";
import { enqueueIncrementals, enqueueReconciles, resumeBackfills } from "../../src/fan-out.ts";
import { enqueueWatchRenewal } from "../../src/maintenance.ts";
import { jobDurationSeconds } from "../../src/metrics.ts";
import { enqueueStartupTicks, TICKS, upsertSchedules } from "../../src/schedules.ts";
import type { RunningWorkers } from "../../src/worker.ts";
import { backfillDone, connectTestAccount, type Harness, startHarness, waitFor } from "../sync/harness.ts";

const ALICE = "alice@example.com";
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ emulator: { accounts: [ALICE], messages: 8, seed: 11, attachments: false } });
});
afterAll(async () => {
  await h?.close();
});

describe("the catalog", () => {
  it("names every scheduled tick as a maintenance job", () => {
    for (const tick of Object.values(TICKS)) {
      expect(JOBS[tick].queue, tick).toBe(QUEUE_NAMES.maintenance);
      expect(parseJob(QUEUE_NAMES.maintenance, tick, {}).ok, tick).toBe(true);
    }
  });

  it("accepts every job the producers and schedulers put on the queues", async () => {
    // Queues of their own (same Redis, a prefix the harness cleans up), with no worker behind them.
    const queues: Queues = createQueues(h.tredis.redis, `{${h.tredis.prefix}-catalog}`);
    try {
      await upsertSchedules(queues.maintenance, loadConfig({ RECONCILE_CRON: "0 3 * * 0" }));
      await enqueueStartupTicks(queues.maintenance);
      await enqueueWatchRenewal(queues.maintenance, 4);
      await enqueueBackfill(queues, 1, { reason: "connect", query: "in:inbox" });
      await enqueueBackfill(queues, 2, { reason: "reconcile", restart: true, delayMs: 10 });
      await enqueueBackfill(queues, 3, { reason: "manual", resumeOnly: true });
      await enqueueIncremental(queues, 1, {
        reason: "push",
        pushReceivedAt: Date.now(),
        historyId: "18446744073709551615",
      });
      await enqueueIncremental(queues, 2, { reason: "after_backfill" });
      await enqueueRetry(queues, 1, new Date());
      await enqueueLabelRepair(queues, 5, { priority: 3 });
      await enqueueBackfill(queues, 6, { reason: "connect", resumeOnly: true, priority: 2 });
      await enqueueReconciles(queues, [7], { spreadMs: 60_000, tickAt: 0 });
      await enqueueIncrementals(queues, [8], { reason: "poll" });
      await resumeBackfills(queues, [{ accountId: 9, priority: 4 }]);

      const names = new Set<string>();
      for (const q of Object.values(QUEUE_NAMES)) {
        const jobs = await queues[q].getJobs(["waiting", "delayed", "prioritized"]);
        for (const job of jobs) {
          const checked = parseJob(q, job.name, job.data);
          expect(checked, `${q}/${job.name} ${JSON.stringify(job.data)}`).toMatchObject({
            ok: true,
            job: { name: job.name, data: job.data },
          });
          names.add(job.name);
        }
      }
      // Every job of the catalog was produced above: nothing in it is unused, nothing produced is missing.
      expect([...names].sort()).toEqual(Object.keys(JOBS).sort());
      for (const q of Object.values(QUEUE_NAMES)) {
        for (const s of await queues[q].getJobSchedulers()) await queues[q].removeJobScheduler(s.key);
        await queues[q].obliterate({ force: true });
      }
    } finally {
      await queues.close();
    }
  });

  it("rejects unknown names, jobs on the wrong queue and bad payloads, naming fields but never values", () => {
    const rejected = (queue: QueueName, name: string, data: unknown): string => {
      const r = parseJob(queue, name, data);
      if (r.ok) throw new Error(`${queue}/${name} was accepted`);
      return r.reason;
    };
    expect(rejected("maintenance", "frobnicate", {})).toMatch(/unknown job name "frobnicate" on queue maintenance/);
    expect(rejected("maintenance", "toString", {})).toMatch(/unknown job name/); // not an inherited key
    expect(rejected("incremental", JOB_NAMES.backfillPage, { accountId: 1, reason: "manual" })).toMatch(
      /belongs on queue backfill, not incremental/,
    );
    expect(rejected("backfill", JOB_NAMES.backfillPage, { accountId: "1", reason: "connect" })).toMatch(
      /invalid payload for job backfill-page: accountId:/,
    );
    expect(rejected("backfill", JOB_NAMES.backfillPage, { accountId: 1, reason: "because" })).toMatch(/reason:/);
    expect(rejected("incremental", JOB_NAMES.incremental, { accountId: 0, reason: "poll" })).toMatch(/accountId:/);
    expect(rejected("incremental", JOB_NAMES.incremental, { accountId: 1, reason: "push", historyId: "12a" })).toMatch(
      /historyId:/,
    );
    expect(rejected("incremental", JOB_NAMES.retryMessages, null)).toMatch(/invalid payload for job retry-messages/);
    expect(rejected("maintenance", JOB_NAMES.watchRenewTick, { withinMs: -1 })).toMatch(/withinMs:/);
    // Payloads are ids only: a body or a token is an unknown key, and its value is not repeated.
    const reason = rejected("incremental", JOB_NAMES.incremental, {
      accountId: 1,
      reason: "push",
      refreshToken: "1//secret-token",
      body: "secret body",
    });
    expect(reason).toMatch(/Unrecognized keys?: .*refreshToken/);
    expect(reason).not.toMatch(/secret/);
  });
});

describe("the worker boundary (real Redis, real workers)", () => {
  let workers: RunningWorkers;
  // What a buggy or foreign producer could put on a queue: any name, any data.
  const put = (queue: Queue, name: string, data: unknown) => queue.add(name, data);
  const invalidCount = async (queue: QueueName): Promise<number> =>
    (await jobDurationSeconds.get()).values.find(
      (v) =>
        v.metricName === "gmail_sync_job_duration_seconds_count" &&
        v.labels.queue === queue &&
        v.labels.outcome === "invalid",
    )?.value ?? 0;

  beforeAll(() => {
    workers = h.app.startWorkers();
  });
  afterAll(async () => {
    await workers?.close();
  });

  it("fails an unknown job name or an invalid payload at once, without retry, and serves the next good job", {
    timeout: 60_000,
  }, async () => {
    const accountId = await connectTestAccount(h, ALICE);
    const { backfill, incremental, maintenance } = h.app.queues;
    const before = {
      backfill: await invalidCount("backfill"),
      incremental: await invalidCount("incremental"),
      maintenance: await invalidCount("maintenance"),
    };

    const bad = [
      {
        job: await put(incremental, "frobnicate", { accountId }),
        reason: /unknown job name "frobnicate" on queue incremental/,
      },
      {
        job: await put(incremental, JOB_NAMES.incremental, { accountId, reason: "push", body: "secret body" }),
        reason: /invalid payload for job incremental: payload: Unrecognized key/,
      },
      {
        job: await put(incremental, JOB_NAMES.backfillPage, { accountId, reason: "manual" }),
        reason: /belongs on queue backfill, not incremental/,
      },
      {
        job: await put(backfill, JOB_NAMES.backfillPage, { accountId: String(accountId), reason: "connect" }),
        reason: /invalid payload for job backfill-page: accountId:/,
      },
      {
        job: await put(maintenance, "no-such-tick", {}),
        reason: /unknown job name "no-such-tick" on queue maintenance/,
      },
      {
        job: await put(maintenance, JOB_NAMES.watchRenew, { accountId: -1 }),
        reason: /invalid payload for job watch-renew: accountId:/,
      },
    ];
    for (const { job, reason } of bad) {
      const id = job.id as string;
      const queue = job.queueName as QueueName;
      const state = await waitFor(
        `${queue} job ${job.name} to fail`,
        async () => {
          const s = await h.app.queues[queue].getJobState(id);
          return s === "failed" || s === "delayed" || s === "completed" ? s : undefined;
        },
        20_000,
      );
      // Straight to failed: a retry would have put it back as delayed (8 attempts, backoff).
      expect(state, job.name).toBe("failed");
      const failed = await h.app.queues[queue].getJob(id);
      expect(failed?.attemptsMade, job.name).toBe(1);
      expect(failed?.failedReason, job.name).toMatch(reason);
      expect(failed?.failedReason).not.toMatch(/secret/);
    }
    expect(await invalidCount("incremental")).toBe(before.incremental + 3);
    expect(await invalidCount("backfill")).toBe(before.backfill + 1);
    expect(await invalidCount("maintenance")).toBe(before.maintenance + 2);
    // The account's visible state is untouched: a malformed job is no sync error of the account.
    const state = await h.app.db
      .selectFrom("sync_state")
      .select(["last_error", "last_error_kind"])
      .where("account_id", "=", accountId)
      .executeTakeFirstOrThrow();
    expect(state).toEqual({ last_error: null, last_error_kind: null });

    // The same workers go on: a real backfill runs to the end, and a tick job completes.
    await h.app.enqueueBackfill(accountId, { reason: "connect" });
    await waitFor("the backfill to finish", () => backfillDone(h, accountId), 30_000);
    const sweep = await maintenance.add(TICKS.tempSweep, {});
    await waitFor(
      "the temp sweep to complete",
      async () => (await maintenance.getJobState(sweep.id as string)) === "completed",
      20_000,
    );
  });
});
