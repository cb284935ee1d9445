// Live before bulk under the project bucket (src/gmail/quota-class.ts): a backfill's calls ("bulk")
// leave a reserve of the project bucket that push and poll syncs ("live") may use, so live work is
// never queued behind backfills when the project's quota binds; and bulk callers keep the bucket
// busy, so the reserve costs no throughput while nobody is live.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createQuotaGovernor } from "../../src/gmail/quota.ts";
import { currentQuotaClass, PROJECT_RESERVE, runInQuotaClass } from "../../src/gmail/quota-class.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";

let t: TestRedis;

beforeAll(async () => {
  t = await createTestRedis();
});
afterAll(async () => {
  await t.cleanup();
});

describe("quota classes", () => {
  it("a call's class follows its async context; outside any it is live", async () => {
    expect(currentQuotaClass()).toBe("live");
    await runInQuotaClass("bulk", async () => {
      await new Promise((r) => setTimeout(r, 1));
      expect(currentQuotaClass()).toBe("bulk");
    });
    expect(currentQuotaClass()).toBe("live");
  });

  it("bulk stops at the reserve; live takes from it", async () => {
    // 100 units/s for the project: a 100-unit bucket, 25 of them reserved for live calls.
    const gov = createQuotaGovernor(t.redis, {
      prefix: `${t.prefix}:reserve`,
      unitsPerSecond: 10_000,
      projectUnitsPerMinute: 6_100, // 100 units/s: a minute's quota is 61 s of the bucket (quota.ts)
    });
    expect(PROJECT_RESERVE).toEqual({ live: 0, first: 0.1, bulk: 0.25 });
    expect(await runInQuotaClass("bulk", () => gov.take(1, 70))).toEqual({ ok: true });
    const refused = await runInQuotaClass("bulk", () => gov.take(2, 10));
    expect(refused.ok).toBe(false);
    if (!refused.ok) expect(refused.waitMs).toBeGreaterThan(0); // ~50 ms: 5 units at 100/s
    // A new account's first turn may go down to 10 of the 30 left; a push sync down to none.
    expect(await runInQuotaClass("first", () => gov.take(5, 15))).toEqual({ ok: true });
    expect((await runInQuotaClass("first", () => gov.take(6, 10))).ok).toBe(false);
    expect(await gov.take(3, 15)).toEqual({ ok: true });
    expect((await gov.take(4, 10)).ok).toBe(false);
  });

  it("a wait on the project bucket outlasts maxWaitMs (parking would only hand the slot to another waiter); one on the account's does not", async () => {
    const project = createQuotaGovernor(t.redis, {
      prefix: `${t.prefix}:projwait`,
      unitsPerSecond: 10_000,
      projectUnitsPerMinute: 610, // 10 units/s, a 10-unit bucket
    });
    expect(await project.take(1, 10)).toEqual({ ok: true });
    const refused = await project.take(2, 5);
    expect(refused).toMatchObject({ ok: false, bucket: "project" });
    const started = Date.now();
    await project.acquire(2, 5, { maxWaitMs: 100 });
    expect(Date.now() - started).toBeGreaterThan(300);

    const account = createQuotaGovernor(t.redis, {
      prefix: `${t.prefix}:acctwait`,
      unitsPerSecond: 10, // a 5-unit bucket
      projectUnitsPerMinute: 1_000_000,
    });
    expect(await account.take(1, 5)).toEqual({ ok: true });
    expect(await account.take(1, 5)).toMatchObject({ ok: false, bucket: "account" });
    await expect(account.acquire(1, 5, { maxWaitMs: 100 })).rejects.toMatchObject({ kind: "rate_limited" });
  });

  it("when the project binds, live calls wait no longer than the refill while bulk callers keep trying", async () => {
    const gov = createQuotaGovernor(t.redis, {
      prefix: `${t.prefix}:contend`,
      unitsPerSecond: 10_000,
      projectUnitsPerMinute: 12_000, // ~200 units/s (12,000 / 61)
    });
    const until = Date.now() + 1_500;
    let bulkUnits = 0;
    const bulk = Array.from({ length: 6 }, (_, i) =>
      runInQuotaClass("bulk", async () => {
        while (Date.now() < until) {
          await gov.acquire(100 + i, 25, { maxWaitMs: 5_000 }).catch(() => {});
          bulkUnits += 25;
        }
      }),
    );
    const liveWaits: number[] = [];
    await new Promise((r) => setTimeout(r, 300));
    while (Date.now() < until - 200) {
      const started = Date.now();
      await gov.acquire(1, 25, { maxWaitMs: 5_000 });
      liveWaits.push(Date.now() - started);
      await new Promise((r) => setTimeout(r, 50));
    }
    await Promise.all(bulk);
    liveWaits.sort((a, b) => a - b);
    // Bulk keeps the project busy: most of 200 units/s over 1.5 s went to it.
    expect(bulkUnits).toBeGreaterThan(0.6 * 200 * 1.5);
    // A live call never waited for the six bulk callers' turns (~750 ms each without the reserve):
    // at most the refill of its own 25 units (125 ms), plus scheduling.
    expect(liveWaits.at(-1)).toBeLessThan(300);
  });
});
