// What a test file made on the shared services, so the leak check (test/helpers/leak-check.ts) can
// tell whether it cleaned up: the Redis prefixes it used and the databases it created.
export const trackedRedisPrefixes = new Set<string>();
export const trackedDatabases = new Set<string>();

export function trackRedisPrefix(prefix: string): void {
  trackedRedisPrefixes.add(prefix);
}

export function trackDatabase(name: string): void {
  trackedDatabases.add(name);
}
