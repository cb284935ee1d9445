// The reconcile tick: every synced account gets its weekly reconcile (spread over the window); a backfill run still listing
// after STUCK_LISTING_DAYS is started again (restart), and a recent one is left to finish.
import { sql } from "kysely";
import { afterAll, beforeAll, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/log.ts";
import { type MaintenanceDeps, processMaintenanceJob, STUCK_LISTING_DAYS } from "../../src/maintenance.ts";
import { TICKS } from "../../src/schedules.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";

let t: TestDatabase;

beforeAll(async () => {
  t = await createTestDatabase();
});
afterAll(async () => {
  await t?.drop();
});

it("reconciles synced accounts and restarts runs stuck in listing for days, not recent ones", async () => {
  const account = async (email: string, phase: "done" | "listing", startedDaysAgo: number) => {
    const { id } = await t.db.insertInto("accounts").values({ email }).returning("id").executeTakeFirstOrThrow();
    await t.db
      .insertInto("sync_state")
      .values({
        account_id: id,
        backfill_phase: phase,
        backfill_started_at: sql<Date>`now() - make_interval(days => ${startedDaysAgo})`,
      })
      .execute();
    return id;
  };
  const synced = await account("synced@example.com", "done", 10);
  const stuck = await account("stuck@example.com", "listing", STUCK_LISTING_DAYS + 2);
  await account("busy@example.com", "listing", 0);
  const calls: Array<[number, { reason: string; restart?: boolean }]> = [];
  const reconciles: Array<[number[], { spreadMs: number; tickAt: number }]> = [];
  const deps = {
    db: t.db,
    config: loadConfig({ DATABASE_URL: t.url }),
    log: createLogger("silent"),
    enqueueBackfill: async (id: number, opts: { reason: "reconcile"; restart?: boolean }) =>
      void calls.push([id, opts]),
    enqueueReconciles: async (ids: number[], opts: { spreadMs: number; tickAt: number }) =>
      void reconciles.push([ids, opts]),
    enqueueRetry: async () => {},
  } as unknown as MaintenanceDeps;
  const result = await processMaintenanceJob({ name: TICKS.reconcile, data: {} }, deps);
  expect(result).toEqual({ accounts: 1, restarted: 1 });
  // Synced accounts are spread over RECONCILE_SPREAD_HOURS (default 24) from the tick's minute.
  expect(reconciles).toEqual([[[synced], { spreadMs: 24 * 3_600_000, tickAt: expect.any(Number) }]]);
  expect(calls).toEqual([[stuck, { reason: "reconcile", restart: true }]]);
});
