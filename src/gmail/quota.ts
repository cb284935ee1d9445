// The quota governor: every Gmail call is charged its documented unit cost before it is sent, against
// a per-account token bucket and a per-project bucket kept in Redis, so any number of worker
// processes on any number of machines together stay under Gmail's per-user limit (250 units/s
// moving average) and the project limit. One Lua script reads, refills and charges both buckets
// atomically, and takes the time from Redis (TIME) so the hosts' clocks never need to agree.
//
// AIMD: a 429 from Gmail halves the account's rate (down to a floor) and blocks it for Gmail's
// Retry-After; the rate then grows back additively with time. The bucket capacity is half a second of
// the current rate, so a penalised account also loses its burst.
//
// Quota classes (quota-class.ts): a take must leave its class's reserve of the project bucket, so
// live syncs come before a new account's first backfill turn, and both before the other backfills.
// A wait on the project bucket (not the account's) is waited out in-process up to
// PROJECT_MAX_WAIT_MS: parking the job would only hand its slot to another one waiting for it.
//
// Keys: <prefix>:quota:acct:<id> and <prefix>:quota:project. With the default QUEUE_PREFIX
// "{gmail-sync}" the hash tag puts them in one Redis Cluster slot, which the script needs.
import type { Redis, Result } from "ioredis";
import { GmailError } from "../errors.ts";
import { quotaWaitSeconds } from "../metrics.ts";
import { currentQuotaClass, PROJECT_RESERVE } from "./quota-class.ts";

/** Documented quota units per method (developers.google.com/workspace/gmail/api/reference/quota). */
export const QUOTA_COST: Record<string, number> = {
  "users.getProfile": 1,
  "labels.list": 1,
  "labels.get": 1,
  "messages.list": 5,
  "messages.get": 5,
  "messages.attachments.get": 5,
  "history.list": 2,
  "threads.list": 10,
  "threads.get": 10,
  "users.watch": 100,
  "users.stop": 50,
};

/** Refused: how long until both buckets would have the units, and which one is short longer. */
export type TakeResult = { ok: true } | { ok: false; waitMs: number; bucket: "account" | "project" };

/**
 * How long acquire() waits in-process when the project bucket, not the account's, is what binds.
 * Parking the job then only hands its slot to another account's job that waits for the same
 * bucket (and pays its start-up again); the account's own bucket, by contrast, refills for nobody
 * else, so a wait on it still gives up at maxWaitMs and parks.
 */
export const PROJECT_MAX_WAIT_MS = 60_000;

export interface QuotaGovernor {
  /** Charges `units` if both buckets have them; otherwise says how long until they would. */
  take(accountId: number, units: number): Promise<TakeResult>;
  /** take(), waiting in-process up to maxWaitMs (default 2000); beyond that throws rate_limited. */
  acquire(accountId: number, units: number, opts?: { maxWaitMs?: number }): Promise<void>;
  /** After a 429: halve the account's rate (AIMD) and block it for retryAfterMs (if given). */
  penalize(accountId: number, retryAfterMs?: number): Promise<void>;
  /** Current bucket state (for tests, the CLI and metrics). */
  inspect(accountId: number): Promise<{ tokens: number; rate: number; blockedUntilMs: number }>;
}

export interface QuotaOptions {
  prefix: string;
  unitsPerSecond: number;
  projectUnitsPerMinute: number;
  /** Lowest rate AIMD may cut to; default max(5, unitsPerSecond/20) (one messages.get a second). */
  floorUnitsPerSecond?: number;
  /** Additive recovery, units/s gained per second; default unitsPerSecond/20 (floor→full in ~20 s). */
  recoveryPerSecond?: number;
}

// KEYS[1] account bucket, KEYS[2] project bucket.
// ARGV: op ("take" | "penalize" | "inspect"), units, maxRate, floor, recovery/s, projRate/s, projCap, retryAfterMs, ttlSeconds, burstSeconds,
// projReserve (project tokens a take must leave: its quota class's reserve for the classes before it, quota-class.ts)
// Returns {allowed(1|0), waitMs, tokens*1000, rate*1000, blockedUntil, projectBinds(1|0)}.
const SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]
local units = tonumber(ARGV[2])
local maxRate = tonumber(ARGV[3])
local floor = tonumber(ARGV[4])
local recovery = tonumber(ARGV[5])
local projRate = tonumber(ARGV[6])
local projCap = tonumber(ARGV[7])
local retryAfter = tonumber(ARGV[8])
local ttl = tonumber(ARGV[9])
local burst = tonumber(ARGV[10])
local reserve = tonumber(ARGV[11]) or 0

local a = redis.call('HMGET', KEYS[1], 'tokens', 'ts', 'rate', 'blocked')
local rate = tonumber(a[3]) or maxRate
local ts = tonumber(a[2]) or now
local tokens = tonumber(a[1])
local blocked = tonumber(a[4]) or 0
local elapsed = math.max(0, now - ts) / 1000
-- additive increase, then refill at the (new) rate; capacity is burst seconds of the current rate
rate = math.min(maxRate, rate + recovery * elapsed)
local cap = rate * burst
if tokens == nil then tokens = cap end
tokens = math.min(cap, tokens + rate * elapsed)

local p = redis.call('HMGET', KEYS[2], 'tokens', 'ts')
local pts = tonumber(p[2]) or now
local ptokens = tonumber(p[1]) or projCap
ptokens = math.min(projCap, ptokens + projRate * math.max(0, now - pts) / 1000)

local allowed = 0
local wait = 0
local projectBinds = 0
if op == 'penalize' then
  rate = math.max(floor, rate / 2)
  tokens = math.min(tokens, 0)
  if retryAfter > 0 then blocked = math.max(blocked, now + retryAfter) end
elseif op == 'take' then
  -- a charge above the capacity (e.g. watch at a low rate) waits for a full bucket and leaves a debt
  local need = math.min(units, cap)
  local pneed = math.min(units, projCap - reserve) + reserve
  if now < blocked then
    wait = blocked - now
  elseif tokens < need or ptokens < pneed then
    local w1 = 0
    local w2 = 0
    if tokens < need then w1 = (need - tokens) / rate * 1000 end
    if ptokens < pneed then w2 = (pneed - ptokens) / projRate * 1000 end
    wait = math.ceil(math.max(w1, w2))
    if w2 > w1 then projectBinds = 1 end
  else
    tokens = tokens - units
    ptokens = ptokens - units
    allowed = 1
  end
end

if op ~= 'inspect' then
  redis.call('HSET', KEYS[1], 'tokens', tostring(tokens), 'ts', now, 'rate', tostring(rate), 'blocked', blocked)
  redis.call('EXPIRE', KEYS[1], ttl)
  redis.call('HSET', KEYS[2], 'tokens', tostring(ptokens), 'ts', now)
  redis.call('EXPIRE', KEYS[2], ttl)
end
return {allowed, wait, math.floor(tokens * 1000), math.floor(rate * 1000), blocked, projectBinds}
`;

type Reply = [number, number, number, number, number, number];

declare module "ioredis" {
  interface RedisCommander<Context> {
    gmailSyncQuota(acctKey: string, projectKey: string, ...args: Array<string | number>): Result<Reply, Context>;
  }
}

// Our burst is half of Gmail's one second: we charge a request when we send it, Gmail when it
// arrives, and requests delayed on the way (a loaded host, a paused process) arrive bunched. With
// the same one-second burst on both sides that bunching overdrew Gmail's bucket (a 429 now and then
// at steady state); half a second leaves the margin. The sustained rate is unchanged.
const BURST_SECONDS = 0.5;

export function createQuotaGovernor(redis: Redis, opts: QuotaOptions): QuotaGovernor {
  if (typeof (redis as { gmailSyncQuota?: unknown }).gmailSyncQuota !== "function") {
    // defineCommand caches the script by SHA (EVALSHA, falling back to EVAL once).
    redis.defineCommand("gmailSyncQuota", { numberOfKeys: 2, lua: SCRIPT });
  }
  const maxRate = opts.unitsPerSecond;
  const floor = Math.min(maxRate, opts.floorUnitsPerSecond ?? Math.max(5, maxRate / 20));
  const recovery = opts.recoveryPerSecond ?? maxRate / 20;
  // Gmail counts the project's units over a moving minute. A bucket with one second of burst admits
  // up to 61 seconds of its rate in any 60: at 1/61 of the minute's quota a second it never
  // overdraws the minute (at 1/60 the fleet benchmark met a 429 now and then, and the live syncs it
  // hit waited out their backoff: push p99 7.5 s).
  const projRate = opts.projectUnitsPerMinute / 61;
  const projCap = projRate;
  const ttl = 3600;
  const acctKey = (id: number) => `${opts.prefix}:quota:acct:${id}`;
  const projectKey = `${opts.prefix}:quota:project`;

  async function run(
    op: "take" | "penalize" | "inspect",
    accountId: number,
    units = 0,
    retryAfterMs = 0,
  ): Promise<Reply> {
    return redis.gmailSyncQuota(
      acctKey(accountId),
      projectKey,
      op,
      units,
      maxRate,
      floor,
      recovery,
      projRate,
      projCap,
      Math.max(0, Math.round(retryAfterMs)),
      ttl,
      BURST_SECONDS,
      op === "take" ? projCap * PROJECT_RESERVE[currentQuotaClass()] : 0,
    );
  }

  const governor: QuotaGovernor = {
    async take(accountId, units) {
      const [allowed, wait, , , , projectBinds] = await run("take", accountId, units);
      return allowed === 1
        ? { ok: true }
        : { ok: false, waitMs: Math.max(1, Number(wait)), bucket: Number(projectBinds) === 1 ? "project" : "account" };
    },
    async acquire(accountId, units, o = {}) {
      const maxWaitMs = o.maxWaitMs ?? 2000;
      const started = Date.now();
      for (;;) {
        const r = await governor.take(accountId, units);
        if (r.ok) {
          quotaWaitSeconds.observe((Date.now() - started) / 1000);
          return;
        }
        const waited = Date.now() - started;
        const limit = r.bucket === "project" ? Math.max(maxWaitMs, PROJECT_MAX_WAIT_MS) : maxWaitMs;
        if (waited + r.waitMs > limit) {
          quotaWaitSeconds.observe(waited / 1000);
          throw new GmailError(
            "rate_limited",
            `quota bucket of account ${accountId} is empty; retry in ${r.waitMs} ms`,
            {
              reason: "localQuota",
              retryAfterMs: r.waitMs,
            },
          );
        }
        // A little jitter so processes woken together do not collide on the same refill.
        await new Promise((res) => setTimeout(res, r.waitMs + Math.random() * 5));
      }
    },
    async penalize(accountId, retryAfterMs) {
      await run("penalize", accountId, 0, retryAfterMs ?? 0);
    },
    async inspect(accountId) {
      const [, , tokens, rate, blocked] = await run("inspect", accountId);
      return { tokens: Number(tokens) / 1000, rate: Number(rate) / 1000, blockedUntilMs: Number(blocked) };
    },
  };
  return governor;
}
