// Per-account cap on Gmail requests in flight, shared by every worker process through Redis.
// Gmail refuses more than about 10 concurrent requests per user with 429 "Too many concurrent
// requests for user" — counting each part of a batch, which Gmail answers in parallel
// (emulator/README.md, "Realism": the concurrency row and its recorded refusal). The
// quota governor paces units per second but not concurrency, so this is the second gate: a request
// (or a batch of k parts) holds k permits while it is on the wire.
//
// Why hand-written: the leases must be shared across processes and machines and survive a process
// that dies holding them, which an in-process limiter (p-limit, bottleneck's local mode) cannot do;
// bottleneck's Redis mode would add a second Redis client stack for one sorted set. Each lease is a
// member of a sorted set scored by its expiry, renewed while its request runs, so a crashed
// holder's permits come back by themselves within LEASE_MS; one Lua script frees expired leases,
// counts and grants atomically.
//
// Key: <prefix>:inflight:acct:<id> (same hash tag as the quota keys, one Redis Cluster slot).
import { randomBytes } from "node:crypto";
import type { Redis, Result } from "ioredis";
import { GmailError } from "../errors.ts";

/**
 * A lease lives this long unless its holder renews it (every LEASE_MS / 3 while the request is on
 * the wire): a process that died holding permits gives them back within this time.
 */
const LEASE_MS = 15_000; // default; tests shorten it
const POLL_MS = 15;

// KEYS[1] lease set. ARGV: op ("acquire" | "release" | "renew" | "count"), lease id, permits, cap, leaseMs.
// Members are "<lease id>:<permits>". Returns permits in use after the call (acquire: -1 when refused).
const SCRIPT = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local op = ARGV[1]
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if op == 'release' then
  redis.call('ZREM', KEYS[1], ARGV[2] .. ':' .. ARGV[3])
elseif op == 'renew' then
  redis.call('ZADD', KEYS[1], 'XX', now + tonumber(ARGV[5]), ARGV[2] .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
end
local used = 0
for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do
  used = used + tonumber(string.match(m, ':(%d+)$'))
end
if op == 'acquire' then
  local want = tonumber(ARGV[3])
  local cap = tonumber(ARGV[4])
  -- A request larger than the cap may run alone, or it would never run.
  if used > 0 and used + want > cap then return -1 end
  redis.call('ZADD', KEYS[1], now + tonumber(ARGV[5]), ARGV[2] .. ':' .. ARGV[3])
  redis.call('PEXPIRE', KEYS[1], tonumber(ARGV[5]))
  return used + want
end
return used
`;

declare module "ioredis" {
  interface RedisCommander<Context> {
    gmailSyncInFlight(key: string, ...args: Array<string | number>): Result<number, Context>;
  }
}

export interface InFlightLimiter {
  /** Holds `permits` for the account while `fn` runs; waits up to maxWaitMs for them, then throws rate_limited. */
  run<T>(accountId: number, permits: number, fn: () => Promise<T>, opts?: { maxWaitMs?: number }): Promise<T>;
  /** Permits in use now (tests, metrics). */
  inUse(accountId: number): Promise<number>;
  readonly cap: number;
}

export function createInFlightLimiter(
  redis: Redis,
  opts: { prefix: string; cap: number; leaseMs?: number },
): InFlightLimiter {
  const leaseMs = opts.leaseMs ?? LEASE_MS;
  if (typeof (redis as { gmailSyncInFlight?: unknown }).gmailSyncInFlight !== "function") {
    redis.defineCommand("gmailSyncInFlight", { numberOfKeys: 1, lua: SCRIPT });
  }
  const key = (id: number) => `${opts.prefix}:inflight:acct:${id}`;
  const cap = Math.max(1, opts.cap);
  return {
    cap,
    async run(accountId, permits, fn, o = {}) {
      const want = Math.max(1, Math.ceil(permits));
      const lease = randomBytes(8).toString("hex");
      const maxWaitMs = o.maxWaitMs ?? 2000;
      const started = Date.now();
      while ((await redis.gmailSyncInFlight(key(accountId), "acquire", lease, want, cap, leaseMs)) < 0) {
        if (Date.now() - started > maxWaitMs) {
          throw new GmailError(
            "rate_limited",
            `account ${accountId} has ${cap} Gmail requests in flight; waited ${maxWaitMs} ms`,
            { reason: "localConcurrency", retryAfterMs: 250 },
          );
        }
        await new Promise((r) => setTimeout(r, POLL_MS + Math.random() * POLL_MS));
      }
      const renew = setInterval(() => {
        redis.gmailSyncInFlight(key(accountId), "renew", lease, want, cap, leaseMs).catch(() => undefined);
      }, leaseMs / 3);
      renew.unref();
      try {
        return await fn();
      } finally {
        clearInterval(renew);
        await redis.gmailSyncInFlight(key(accountId), "release", lease, want, cap, leaseMs).catch(() => undefined);
      }
    },
    async inUse(accountId) {
      return Number(await redis.gmailSyncInFlight(key(accountId), "count", "", 0, cap, leaseMs));
    },
  };
}
