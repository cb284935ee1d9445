// Each test file uses its own key prefix on the shared Redis and deletes its keys afterwards.
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { redisUrl } from "./env.ts";
import { trackRedisPrefix } from "./leaks.ts";

export interface TestRedis {
  prefix: string;
  url: string;
  redis: Redis;
  cleanup(): Promise<void>;
}

export async function createTestRedis(): Promise<TestRedis> {
  const prefix = `test-${randomBytes(5).toString("hex")}`;
  trackRedisPrefix(prefix);
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: null });
  return {
    prefix,
    url: redisUrl,
    redis,
    async cleanup() {
      let cursor = "0";
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", `*${prefix}*`, "COUNT", 1000);
        cursor = next;
        if (keys.length > 0) await redis.del(...keys);
      } while (cursor !== "0");
      redis.disconnect();
    },
  };
}
