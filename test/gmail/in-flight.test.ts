// The per-account in-flight cap against real Redis, with two limiters on two connections as two
// worker processes: together they never exceed the cap, a batch takes one permit per part, a dead
// holder's permits come back, and a wait that runs out is a local rate_limited (not Gmail's).
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { isGmailError } from "../../src/errors.ts";
import { createInFlightLimiter } from "../../src/gmail/in-flight.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";

let t: TestRedis;
let second: Redis;

beforeAll(async () => {
  t = await createTestRedis();
  second = new Redis(t.url, { maxRetriesPerRequest: null });
});
afterAll(async () => {
  second.disconnect();
  await t.cleanup();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

describe("in-flight limiter", () => {
  it("two processes together never hold more than the cap; other accounts are separate", async () => {
    const opts = { prefix: `${t.prefix}:a`, cap: 10 };
    const a = createInFlightLimiter(t.redis, opts);
    const b = createInFlightLimiter(second, opts);
    let now = 0;
    let peak = 0;
    const request = (l: typeof a, permits: number) =>
      l.run(
        1,
        permits,
        async () => {
          now += permits;
          peak = Math.max(peak, now);
          await sleep(15 + Math.random() * 20);
          now -= permits;
        },
        { maxWaitMs: 30_000 },
      );
    const work: Array<Promise<void>> = [];
    for (let i = 0; i < 40; i++) work.push(request(i % 2 === 0 ? a : b, i % 5 === 0 ? 4 : 1));
    // Meanwhile another account takes its own full cap at once.
    await b.run(2, 10, async () => expect(await a.inUse(2)).toBe(10));
    await Promise.all(work);
    expect(peak).toBeGreaterThan(1);
    expect(peak).toBeLessThanOrEqual(10);
    expect(await a.inUse(1)).toBe(0);
  });

  it("a request larger than the cap runs alone rather than never", async () => {
    const l = createInFlightLimiter(t.redis, { prefix: `${t.prefix}:b`, cap: 3 });
    expect(await l.run(1, 8, async () => l.inUse(1))).toBe(8);
  });

  it("gives up waiting with a local rate_limited, and frees permits when the work throws", async () => {
    const l = createInFlightLimiter(t.redis, { prefix: `${t.prefix}:c`, cap: 2 });
    let release!: () => void;
    const holding = l.run(1, 2, () => new Promise<void>((r) => (release = r)));
    await sleep(20);
    const refused = await l.run(1, 1, async () => "ran", { maxWaitMs: 100 }).catch((e: unknown) => e);
    expect(isGmailError(refused, "rate_limited")).toBe(true);
    expect((refused as { reason?: string }).reason).toBe("localConcurrency");
    release();
    await holding;
    await expect(l.run(1, 2, async () => Promise.reject(new Error("boom")))).rejects.toThrow("boom");
    expect(await l.inUse(1)).toBe(0);
  });

  it("a live holder renews its lease: a request longer than the lease keeps its permits", async () => {
    const l = createInFlightLimiter(t.redis, { prefix: `${t.prefix}:e`, cap: 1, leaseMs: 300 });
    const holding = l.run(1, 1, () => sleep(1200));
    await sleep(900); // three lease lengths later
    expect(await l.inUse(1)).toBe(1);
    const refused = await l.run(1, 1, async () => "ran", { maxWaitMs: 100 }).catch((e: unknown) => e);
    expect(isGmailError(refused, "rate_limited")).toBe(true);
    await holding;
    expect(await l.inUse(1)).toBe(0);
  });

  it("permits of a holder that died come back when its lease expires", async () => {
    const l = createInFlightLimiter(t.redis, { prefix: `${t.prefix}:d`, cap: 2 });
    // A lease written by a process that never released it, expiring 50 ms from now.
    const key = `${t.prefix}:d:inflight:acct:1`;
    const [sec, micro] = await t.redis.time();
    await t.redis.zadd(key, Number(sec) * 1000 + Math.floor(Number(micro) / 1000) + 50, "deadbeef:2");
    expect(await l.inUse(1)).toBe(2);
    expect(await l.run(1, 1, async () => "ran", { maxWaitMs: 2000 })).toBe("ran");
  });
});
