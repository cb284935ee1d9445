// The quota governor against real Redis: buckets shared across governors (as across processes),
// AIMD after a 429, and the in-process wait bound.
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isGmailError } from "../../src/errors.ts";
import { createQuotaGovernor, QUOTA_COST } from "../../src/gmail/quota.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";

let t: TestRedis;
let second: Redis;

beforeAll(async () => {
  t = await createTestRedis();
  second = new Redis(t.url, { maxRetriesPerRequest: null }); // a second connection, as another worker
});
afterAll(async () => {
  second.disconnect();
  await t.cleanup();
});

describe("quota governor", () => {
  it("charges documented costs", () => {
    expect(QUOTA_COST["messages.get"]).toBe(5);
    expect(QUOTA_COST["history.list"]).toBe(2);
    expect(QUOTA_COST["users.watch"]).toBe(100);
    expect(QUOTA_COST["users.getProfile"]).toBe(1);
  });

  it("two governors on one prefix share one account bucket, and accounts are separate", async () => {
    const opts = { prefix: `${t.prefix}:share`, unitsPerSecond: 50, projectUnitsPerMinute: 1_000_000 };
    const a = createQuotaGovernor(t.redis, opts);
    const b = createQuotaGovernor(second, opts);
    expect(await a.take(1, 25)).toEqual({ ok: true }); // the full burst: half a second at 50 units/s
    const denied = await b.take(1, 5);
    expect(denied.ok).toBe(false);
    if (!denied.ok) {
      expect(denied.waitMs).toBeGreaterThan(50);
      expect(denied.waitMs).toBeLessThanOrEqual(110);
    }
    expect(await b.take(2, 25)).toEqual({ ok: true }); // another account is untouched
  });

  it("together, concurrent acquirers stay within the rate", async () => {
    const opts = { prefix: `${t.prefix}:rate`, unitsPerSecond: 100, projectUnitsPerMinute: 1_000_000 };
    const govs = [createQuotaGovernor(t.redis, opts), createQuotaGovernor(second, opts)];
    const started = Date.now();
    let units = 0;
    await Promise.all(
      govs.flatMap((g) =>
        [0, 1, 2].map(async () => {
          while (Date.now() - started < 600) {
            await g.acquire(7, 5, { maxWaitMs: 5000 });
            units += 5;
          }
        }),
      ),
    );
    const seconds = (Date.now() - started) / 1000;
    // burst (half a second: 50) + rate × time, plus one in-flight charge per acquirer
    expect(units).toBeLessThanOrEqual(50 + 100 * seconds + 6 * 5);
    expect(units).toBeGreaterThanOrEqual(50 + 100 * 0.5);
  });

  it("the project bucket limits all accounts together", async () => {
    const g = createQuotaGovernor(t.redis, {
      prefix: `${t.prefix}:proj`,
      unitsPerSecond: 250,
      projectUnitsPerMinute: 60 * 20,
    });
    expect((await g.take(1, 15)).ok).toBe(true);
    const r = await g.take(2, 10);
    expect(r.ok).toBe(false);
  });

  it("AIMD: a 429 halves the rate, blocks for Retry-After, and the rate recovers additively", async () => {
    const g = createQuotaGovernor(t.redis, {
      prefix: `${t.prefix}:aimd`,
      unitsPerSecond: 200,
      projectUnitsPerMinute: 1_000_000,
      recoveryPerSecond: 200,
    });
    expect((await g.inspect(3)).rate).toBe(200);
    await g.penalize(3, 300);
    const s = await g.inspect(3);
    expect(s.rate).toBeGreaterThanOrEqual(100);
    expect(s.rate).toBeLessThan(110);
    const blocked = await g.take(3, 1);
    expect(blocked.ok).toBe(false);
    if (!blocked.ok) expect(blocked.waitMs).toBeGreaterThan(200);
    await g.penalize(3);
    expect((await g.inspect(3)).rate).toBeLessThan(60);
    await new Promise((r) => setTimeout(r, 450));
    const later = await g.inspect(3);
    expect(later.rate).toBeGreaterThan(100); // +200/s for ~0.45 s
    expect((await g.take(3, 1)).ok).toBe(true);
  });

  it("the rate never falls below the floor", async () => {
    const g = createQuotaGovernor(t.redis, {
      prefix: `${t.prefix}:floor`,
      unitsPerSecond: 250,
      projectUnitsPerMinute: 1_000_000,
      recoveryPerSecond: 0.001,
    });
    for (let i = 0; i < 12; i++) await g.penalize(4);
    const s = await g.inspect(4);
    expect(s.rate).toBeGreaterThanOrEqual(12.5);
    expect(s.rate).toBeLessThan(13);
  });

  it("acquire waits briefly in-process, but throws rate_limited with retryAfterMs beyond maxWaitMs", async () => {
    const g = createQuotaGovernor(t.redis, {
      prefix: `${t.prefix}:acq`,
      unitsPerSecond: 20,
      projectUnitsPerMinute: 1_000_000,
    });
    await g.acquire(5, 20);
    const t0 = Date.now();
    await g.acquire(5, 2, { maxWaitMs: 1000 }); // ~100 ms refill
    expect(Date.now() - t0).toBeGreaterThanOrEqual(60);
    await g.penalize(5, 5_000);
    const err = await g.acquire(5, 1, { maxWaitMs: 100 }).catch((e: unknown) => e);
    expect(isGmailError(err, "rate_limited")).toBe(true);
    if (isGmailError(err)) expect(err.retryAfterMs).toBeGreaterThan(4000);
  });
});
