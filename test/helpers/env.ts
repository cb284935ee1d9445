// Where the tests find the real services. Same defaults as the app; override with TEST_* vars.
const base = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";

export const adminUrl = base;
export const redisUrl = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export function databaseUrlFor(name: string): string {
  const u = new URL(base);
  u.pathname = `/${name}`;
  return u.toString();
}
