// Job schedulers: one tick per kind, exactly one delayed job each even after a double upsert (the
// BullMQ failure mode seen in production), and the poll fallback's choice of silent accounts.
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { accountsNeedingWatch, backfillsInProgress, silentAccounts } from "../../src/db/account-status.ts";
import { enqueueStartupTicks, ensureSchedules, TICKS, upsertSchedules } from "../../src/schedules.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";

let t: TestDatabase;
let r: TestRedis;
let queue: Queue;
const config = loadConfig({ RECONCILE_CRON: "0 3 * * 0", TEMP_FILE_ORPHAN_MINUTES: "30" });

beforeAll(async () => {
  [t, r] = await Promise.all([createTestDatabase(), createTestRedis()]);
  queue = new Queue("maintenance", { connection: r.redis, prefix: `{${r.prefix}}` });
});
afterAll(async () => {
  await queue?.close();
  await Promise.all([t?.drop(), r?.cleanup()]);
});

describe("job schedulers", () => {
  it("holds exactly one delayed job per tick after two upserts, also when they race", async () => {
    await upsertSchedules(queue, config);
    await upsertSchedules(queue, config);
    await Promise.all([upsertSchedules(queue, config), upsertSchedules(queue, config)]);
    const schedulers = await queue.getJobSchedulers();
    expect(schedulers.map((s) => s.key).sort()).toEqual(Object.values(TICKS).sort());
    // A scheduler's next job is delayed, or waiting when it is due now (`every` starts at once).
    const pending = await queue.getJobs(["delayed", "waiting", "prioritized"]);
    const byName = new Map<string, number>();
    for (const job of pending) byName.set(job.name, (byName.get(job.name) ?? 0) + 1);
    expect(Object.fromEntries(byName)).toEqual(Object.fromEntries(Object.values(TICKS).map((n) => [n, 1])));
    const reconcile = schedulers.find((s) => s.key === TICKS.reconcile);
    expect(reconcile?.pattern).toBe("0 3 * * 0");
  });

  it("adds the start-up ticks once per hour however many processes start", async () => {
    await Promise.all([enqueueStartupTicks(queue), enqueueStartupTicks(queue), enqueueStartupTicks(queue)]);
    const startup = (await queue.getWaiting()).filter((j) => j.id?.startsWith("startup-"));
    expect(startup.map((j) => j.name).sort()).toEqual([TICKS.tempSweep, TICKS.watchRenew]);
    expect(startup.find((j) => j.name === TICKS.watchRenew)?.data).toEqual({ withinMs: 86_400_000 });
  });
});

describe("ensureSchedules", () => {
  it("recreates lost schedulers once, however many processes start together, and leaves present ones alone", async () => {
    for (const s of await queue.getJobSchedulers()) await queue.removeJobScheduler(s.key);
    await queue.obliterate({ force: true });
    const log = { warn: () => {} };
    const outcomes = await Promise.all(
      [1, 2, 3].map(() => ensureSchedules(queue, r.redis, { ...config, QUEUE_PREFIX: `{${r.prefix}}` }, log)),
    );
    expect(outcomes.filter((o) => o === "recreated")).toHaveLength(1);
    expect((await queue.getJobSchedulers()).map((s) => s.key).sort()).toEqual(Object.values(TICKS).sort());
    const pending = await queue.getJobs(["delayed", "waiting", "prioritized"]);
    expect(pending.map((j) => j.name).sort()).toEqual(Object.values(TICKS).sort());
    expect(await ensureSchedules(queue, r.redis, config, log)).toBe("present");
  });
});

describe("fan-out queries", () => {
  async function account(
    email: string,
    state: Record<string, unknown>,
    status: "active" | "reauth_required" = "active",
  ): Promise<number> {
    const { id } = await t.db
      .insertInto("accounts")
      .values({ email, status })
      .returning("id")
      .executeTakeFirstOrThrow();
    await t.db
      .insertInto("sync_state")
      .values({ account_id: id, ...state })
      .execute();
    return id;
  }
  const minutesAgo = (m: number) => new Date(Date.now() - m * 60_000);

  it("polls active accounts with a cursor that no push or sync touched recently, none mid-backfill", async () => {
    const silent = await account("silent@example.com", {
      history_id: "100",
      last_push_at: minutesAgo(30),
      last_sync_at: minutesAgo(30),
    });
    const neverPushed = await account("never@example.com", { history_id: "100", last_sync_at: minutesAgo(11) });
    await account("pushed@example.com", {
      history_id: "100",
      last_push_at: minutesAgo(1),
      last_sync_at: minutesAgo(30),
    });
    await account("synced@example.com", {
      history_id: "100",
      last_push_at: minutesAgo(30),
      last_sync_at: minutesAgo(2),
    });
    await account("nocursor@example.com", { history_id: null });
    // Mid-backfill: its run ends with an incremental sync from the pinned cursor.
    const backfilling = await account("backfilling@example.com", {
      history_id: "100",
      backfill_phase: "listing",
      backfill_pages: 3,
    });
    await account("revoked@example.com", { history_id: "100", last_sync_at: minutesAgo(60) }, "reauth_required");
    expect((await silentAccounts(t.db, 10)).sort()).toEqual([silent, neverPushed].sort());
    // ... whose turns the poll tick nudges instead (a chain lost with Redis's data resumes).
    expect(await backfillsInProgress(t.db)).toEqual([{ accountId: backfilling, pagesDone: 3 }]);
  });

  it("renews missing and soon-lapsing watches, soonest first, active accounts only", async () => {
    await t.db.deleteFrom("accounts").execute();
    const later = await account("later@example.com", { watch_expiration: new Date(Date.now() + 6 * 86_400_000) });
    const soon = await account("soon@example.com", { watch_expiration: new Date(Date.now() + 3600_000) });
    const none = await account("none@example.com", {});
    await account("gone@example.com", {}, "reauth_required");
    expect(await accountsNeedingWatch(t.db, 86_400_000)).toEqual([none, soon]);
    expect(await accountsNeedingWatch(t.db, 7 * 86_400_000)).toEqual([none, soon, later]);
  });
});
