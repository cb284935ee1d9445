import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { unusedDatabaseUrl } from "../helpers/database.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";

const target = unusedDatabaseUrl();
let r: TestRedis;
beforeAll(async () => {
  r = await createTestRedis();
});
afterAll(() => Promise.all([target.drop(), r?.cleanup()]));

describe("gmail-sync migrate", () => {
  it("creates the database and schema, is a no-op again, and --down undoes the last step", async () => {
    const env = { DATABASE_URL: target.url, REDIS_URL: r.url, QUEUE_PREFIX: `{${r.prefix}}` };
    const ticks = [
      "watch-renew-tick",
      "poll-tick",
      "reconcile-tick",
      "temp-sweep",
      "retry-ledger-tick",
      "changes-prune-tick",
    ];
    const first = await runCli(["migrate", "--json"], env);
    expect(first.stderr).toBe("");
    expect(JSON.parse(first.stdout)).toEqual({
      databaseCreated: true,
      applied: ["0001_initial_schema", "0002_retry_ledger_and_run_scope", "0003_change_feed"],
      schedules: ticks,
    });

    // Run again: the schedulers are upserted, never duplicated (one pending job per tick).
    const again = await runCli(["migrate", "--json"], env);
    expect(JSON.parse(again.stdout)).toEqual({ databaseCreated: false, applied: [], schedules: ticks });
    const queue = new Queue("maintenance", { connection: r.redis, prefix: `{${r.prefix}}` });
    try {
      expect((await queue.getJobSchedulers()).map((s) => s.key).sort()).toEqual([...ticks].sort());
      const pending = await queue.getJobs(["delayed", "waiting", "prioritized"]);
      expect(pending.map((j) => j.name).sort()).toEqual([...ticks].sort());
    } finally {
      await queue.close();
    }
    const dbOnly = await runCli(["migrate", "--json", "--no-schedules"], env);
    expect(JSON.parse(dbOnly.stdout)).toEqual({ databaseCreated: false, applied: [], schedules: [] });

    const status = await runCli(["migrate", "--status", "--json"], env);
    const rows = JSON.parse(status.stdout) as { name: string; executedAt: string | null }[];
    expect(rows.map((r) => [r.name, r.executedAt !== null])).toEqual([
      ["0001_initial_schema", true],
      ["0002_retry_ledger_and_run_scope", true],
      ["0003_change_feed", true],
    ]);

    const down = await runCli(["migrate", "--down"], env);
    expect(down.code).toBe(0);
    expect(down.stdout).toContain("reverted  0003_change_feed");
    const after = await runCli(["migrate", "--status"], env);
    expect(after.stdout.trim()).toBe(
      "applied  0001_initial_schema\napplied  0002_retry_ledger_and_run_scope\npending  0003_change_feed",
    );
  });

  it("prints --version and --help", async () => {
    const v = await runCli(["--version"]);
    expect(v.code).toBe(0);
    expect(v.stdout.trim()).toMatch(/^\d+\.\d+\.\d+$/);
    const h = await runCli(["migrate", "--help"]);
    expect(h.code).toBe(0);
    expect(h.stdout).toContain("--down");
  });

  it.each([
    [
      { DATABASE_URL: "mysql://root@localhost/x" },
      /^gmail-sync: invalid configuration: DATABASE_URL must be a postgres:\/\/ URL/,
    ],
    [
      { DATABASE_URL: "postgres://postgres@127.0.0.1:1/gmail_sync" },
      /^gmail-sync: cannot connect to 127\.0\.0\.1:1 \(ECONNREFUSED\)$/,
    ],
  ])("fails with one clear line and exit 1 on bad input %#", async (env, pattern) => {
    const r = await runCli(["migrate"], env);
    expect(r.code).toBe(1);
    expect(r.stdout).toBe("");
    expect(r.stderr.trim().split("\n")).toHaveLength(1);
    expect(r.stderr.trim()).toMatch(pattern);
  });

  it("rejects an unknown flag with exit 1", async () => {
    const r = await runCli(["migrate", "--bogus"]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain("unknown option '--bogus'");
  });
});
