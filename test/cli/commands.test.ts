// The operator commands' happy paths and bad inputs, as child processes against a real database and
// Redis: accounts, backfill, sync, dead-letters, disconnect, worker. (demo, serve, search, migrate,
// auth, extract and emulator have their own files.) Every failure is one line on stderr and exit 1.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { Queue } from "bullmq";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { freePort } from "../../src/http.ts";
import { cliPath, repoRoot, runCli } from "../helpers/cli.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";

let t: TestDatabase;
let r: TestRedis;
let env: Record<string, string>;
let alice: number;

beforeAll(async () => {
  [t, r] = await Promise.all([createTestDatabase(), createTestRedis()]);
  env = {
    DATABASE_URL: t.url,
    REDIS_URL: r.url,
    QUEUE_PREFIX: `{${r.prefix}}`,
    TOKEN_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
  };
  alice = (
    await t.db.insertInto("accounts").values({ email: "alice@example.com" }).returning("id").executeTakeFirstOrThrow()
  ).id;
  await t.db
    .insertInto("sync_state")
    .values({
      account_id: alice,
      history_id: "500",
      backfill_phase: "done",
      backfill_listed: 2,
      backfill_stored: 2,
      last_sync_at: new Date(),
    })
    .execute();
  const { id: m1 } = await t.db
    .insertInto("messages")
    .values({ account_id: alice, gmail_id: "m1", thread_id: "t1", subject: "hello" })
    .returning("id")
    .executeTakeFirstOrThrow();
  await t.db
    .insertInto("messages")
    .values({ account_id: alice, gmail_id: "m2", thread_id: "t1", subject: "again" })
    .execute();
  await t.db
    .insertInto("attachments")
    .values({ message_id: m1, part_id: "1", filename: "a.txt", extracted_text: "x" })
    .execute();
  await t.db
    .insertInto("dead_letters")
    .values({ account_id: alice, gmail_id: "m9", reason: "unparsable", detail: "bad MIME", parked_at: new Date() })
    .execute();
});
afterAll(() => Promise.all([t?.drop(), r?.cleanup()]));

function expectOneLineFailure(res: { code: number; stderr: string; stdout: string }, pattern: RegExp) {
  expect(res.code).toBe(1);
  const lines = res.stderr.trim().split("\n");
  expect(lines).toHaveLength(1);
  expect(lines[0]).toMatch(pattern);
}

describe("accounts", () => {
  it("lists accounts as JSON with counts and progress", async () => {
    const res = await runCli(["accounts", "--json"], env);
    expect(res.stderr).toBe("");
    const rows = JSON.parse(res.stdout) as Array<Record<string, unknown>>;
    expect(rows).toEqual([
      expect.objectContaining({
        email: "alice@example.com",
        status: "active",
        messages: 2,
        attachments: 1,
        deadLetters: 1,
        backfill: expect.objectContaining({ listed: 2, stored: 2, done: true }),
      }),
    ]);
  });

  it("fails in one line when the database is unreachable", async () => {
    expectOneLineFailure(
      await runCli(["accounts"], { ...env, DATABASE_URL: "postgres://postgres@127.0.0.1:1/x" }),
      /^gmail-sync: cannot connect to 127\.0\.0\.1:1/,
    );
  });
});

describe("backfill and sync", () => {
  it("backfill queues one job for the account, sync one incremental job", async () => {
    expect((await runCli(["backfill", "alice@example.com", "--query", "newer_than:1y"], env)).code).toBe(0);
    expect((await runCli(["sync", "ALICE@example.com"], env)).code).toBe(0);
    const prefix = `{${r.prefix}}`;
    const backfill = new Queue("backfill", { connection: r.redis, prefix });
    const incremental = new Queue("incremental", { connection: r.redis, prefix });
    try {
      const [b] = await backfill.getJobs(["waiting", "delayed", "prioritized"]);
      expect(b?.data).toMatchObject({ accountId: alice, reason: "manual", query: "newer_than:1y" });
      const [i] = await incremental.getJobs(["waiting", "delayed", "prioritized"]);
      expect(i?.data).toMatchObject({ accountId: alice, reason: "manual" });
      // Payloads carry ids only.
      expect(JSON.stringify(b?.data)).not.toMatch(/token|body|@/i);
    } finally {
      await Promise.all([backfill.close(), incremental.close()]);
    }
  });

  it.each([["backfill"], ["sync"], ["disconnect"]])("%s: unknown account → one line, exit 1", async (cmd) => {
    expectOneLineFailure(
      await runCli([cmd, "nobody@example.com"], env),
      /^gmail-sync: unknown account nobody@example\.com/,
    );
  });
});

describe("dead-letters", () => {
  it("lists parked messages as JSON", async () => {
    const res = await runCli(["dead-letters", "--json"], env);
    expect(res.code).toBe(0);
    expect(JSON.stringify(JSON.parse(res.stdout))).toMatch(/"m9".*unparsable|unparsable.*"m9"/);
  });

  it("rejects an unknown flag", async () => {
    expectOneLineFailure(
      await runCli(["dead-letters", "--bogus"], env),
      /^gmail-sync: unknown option '--bogus' \(see --help\)$/,
    );
  });
});

describe("disconnect", () => {
  it("disables the account, forgets its tokens and keeps its mail; --purge deletes it", async () => {
    const res = await runCli(["disconnect", "alice@example.com"], env);
    expect(res.code).toBe(0);
    const account = await t.db
      .selectFrom("accounts")
      .select(["status", "refresh_token_encrypted"])
      .where("id", "=", alice)
      .executeTakeFirstOrThrow();
    expect(account).toEqual({ status: "disabled", refresh_token_encrypted: null });
    expect((await t.db.selectFrom("messages").select("id").where("account_id", "=", alice).execute()).length).toBe(2);
    expect((await runCli(["disconnect", "alice@example.com", "--purge"], env)).code).toBe(0);
    expect(await t.db.selectFrom("messages").select("id").where("account_id", "=", alice).execute()).toEqual([]);
  });
});

describe("worker", () => {
  it("runs, serves /metrics and /readyz on INTERNAL_HTTP_PORT, and exits 0 on SIGTERM", async () => {
    const port = await freePort();
    const child = spawn(path.join(repoRoot, "node_modules/.bin/node"), [cliPath, "worker"], {
      env: {
        PATH: process.env.PATH,
        ...env,
        INTERNAL_HTTP_HOST: "127.0.0.1",
        INTERNAL_HTTP_PORT: String(port),
        LOG_LEVEL: "info",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
    try {
      const end = Date.now() + 30_000;
      while (!out.includes("metrics and health endpoints listening")) {
        if (Date.now() > end) throw new Error(`worker did not start: ${out}`);
        await new Promise((r) => setTimeout(r, 50));
      }
      const metrics = await fetch(`http://127.0.0.1:${port}/metrics`);
      expect(metrics.status).toBe(200);
      expect(await metrics.text()).toContain("gmail_sync_queue_jobs");
      expect((await fetch(`http://127.0.0.1:${port}/readyz`)).status).toBe(200);
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
    } finally {
      child.kill("SIGKILL");
    }
  }, 60_000);

  it("rejects a bad --concurrency", async () => {
    expectOneLineFailure(await runCli(["worker", "--concurrency", "0"], env), /--concurrency.*must be an integer/);
  });
});
