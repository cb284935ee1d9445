// The HTTP server against real Postgres, Redis and BullMQ: probes, the body limit, and /metrics with
// the scrape-time gauges computed from seeded rows, linted by promtool.
import { readFileSync } from "node:fs";
import { Queue } from "bullmq";
import type { FastifyInstance } from "fastify";
import { Redis } from "ioredis";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { createDb } from "../../src/db/database.ts";
import { buildHttpServer, listen } from "../../src/http.ts";
import { createLogger } from "../../src/log.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";
import { parseExposition, sampleValue } from "./exposition.ts";
import { hasBinary, promtoolLint, rel, skipNotice } from "./tools.ts";

const log = createLogger("silent");
let tdb: TestDatabase;
let tredis: TestRedis;
let app: FastifyInstance;
let base: string;
let queues: { backfill: Queue; incremental: Queue; maintenance: Queue };
const config = loadConfig({
  HTTP_HOST: "127.0.0.1",
  HTTP_PORT: "0",
  // Not the default 9465: the demo (test/cli/demo.test.ts) takes that port when it is free.
  INTERNAL_HTTP_PORT: "0",
  HTTP_BODY_LIMIT_BYTES: "2048",
  GMAIL_QUOTA_UNITS_PER_SECOND: "250",
});

async function seed(): Promise<void> {
  const db = tdb.db;
  const ago = (seconds: number) => sql<Date>`now() - make_interval(secs => ${seconds})`;
  const ahead = (seconds: number) => sql<Date>`now() + make_interval(secs => ${seconds})`;
  const ids = await db
    .insertInto("accounts")
    .values([
      { email: "done@example.com", status: "active" },
      { email: "filling@example.com", status: "active", created_at: ago(7200) },
      { email: "revoked@example.com", status: "reauth_required" },
      { email: "off@example.com", status: "disabled" },
    ])
    .returning("id")
    .execute();
  const [done, filling, revoked, off] = ids.map((r) => r.id) as [number, number, number, number];
  await db
    .insertInto("sync_state")
    .values([
      {
        account_id: done,
        backfill_phase: "done",
        backfill_listed: 100,
        backfill_stored: 100,
        history_id: "900",
        cursor_advanced_at: ago(600),
        last_sync_at: ago(120),
        watch_expiration: ahead(3 * 86400),
      },
      {
        account_id: filling,
        backfill_phase: "listing",
        backfill_listed: 50,
        backfill_stored: 20,
        watch_expiration: ahead(5 * 3600),
      },
      { account_id: revoked, backfill_phase: "done", history_id: "5", cursor_advanced_at: ago(6 * 86400) },
      {
        account_id: off,
        backfill_phase: "done",
        history_id: "7",
        cursor_advanced_at: ago(30 * 86400),
        watch_expiration: ago(86400),
      },
    ])
    .execute();
  await db
    .insertInto("dead_letters")
    .values([
      { account_id: done, gmail_id: "a1", reason: "parse", parked_at: ago(60) },
      { account_id: done, gmail_id: "a2", reason: "parse", parked_at: ago(60) },
      { account_id: done, gmail_id: "a3", reason: "parse" }, // still being retried: not a dead letter yet
      { account_id: done, gmail_id: "a4", reason: "parse", parked_at: ago(60), resolved_at: ago(30) },
    ])
    .execute();
}

beforeAll(async () => {
  tdb = await createTestDatabase();
  tredis = await createTestRedis();
  const opts = { connection: tredis.redis, prefix: tredis.prefix };
  queues = {
    backfill: new Queue("backfill", opts),
    incremental: new Queue("incremental", opts),
    maintenance: new Queue("maintenance", opts),
  };
  await queues.backfill.add("page", { accountId: 1 });
  await queues.backfill.add("page", { accountId: 2 });
  await queues.incremental.add("sync", { accountId: 1 }, { delay: 60_000 });
  await seed();
  app = buildHttpServer({ config, log, db: tdb.db, redis: tredis.redis, queues, metricsReuseMs: 0 });
  app.post("/echo", async (req) => ({ bytes: JSON.stringify(req.body).length }));
  base = await listen(app, config);
});

afterAll(async () => {
  await app?.close();
  await Promise.all(Object.values(queues ?? {}).map((q) => q.close()));
  await tredis?.cleanup();
  await tdb?.drop();
});

describe("probes", () => {
  it("listen returns a reachable base URL and /healthz answers", async () => {
    expect(base).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const res = await fetch(`${base}/healthz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok" });
  });

  it("/readyz is 200 when Postgres and Redis answer and migrations are applied", async () => {
    const res = await fetch(`${base}/readyz`);
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ready", checks: { postgres: "ok", redis: "ok", migrations: "ok" } });
  });

  it("/readyz is 503 naming postgres when the database is unreachable", async () => {
    const db = createDb("postgres://postgres@127.0.0.1:1/nowhere", 1);
    const other = buildHttpServer({ config, log, db, redis: tredis.redis });
    try {
      const res = await other.inject({ method: "GET", url: "/readyz" });
      expect(res.statusCode).toBe(503);
      const body = res.json();
      expect(body.status).toBe("not_ready");
      expect(body.checks.postgres).toBe("ECONNREFUSED");
      expect(body.checks.redis).toBe("ok");
      expect(body.checks.migrations).toMatch(/skipped/);
    } finally {
      await other.close();
      await db.destroy();
    }
  });

  it("/readyz is 503 naming migrations on an unmigrated database", async () => {
    const empty = await createTestDatabase({ empty: true });
    const other = buildHttpServer({ config, log, db: empty.db, redis: tredis.redis });
    try {
      const res = await other.inject({ method: "GET", url: "/readyz" });
      expect(res.statusCode).toBe(503);
      expect(res.json().checks).toMatchObject({
        postgres: "ok",
        redis: "ok",
        migrations: expect.stringMatching(/pending migrations/),
      });
    } finally {
      await other.close();
      await empty.drop();
    }
  });

  it("/readyz is 503 naming redis when Redis is unreachable", async () => {
    const redis = new Redis("redis://127.0.0.1:1", {
      lazyConnect: true,
      maxRetriesPerRequest: 0,
      retryStrategy: () => null,
    });
    redis.on("error", () => {});
    const other = buildHttpServer({ config, log, db: tdb.db, redis });
    try {
      const res = await other.inject({ method: "GET", url: "/readyz" });
      expect(res.statusCode).toBe(503);
      expect(res.json().checks).toMatchObject({ postgres: "ok", migrations: "ok" });
      expect(res.json().checks.redis).not.toBe("ok");
    } finally {
      await other.close();
      redis.disconnect();
    }
  });
});

describe("request logging", () => {
  it("logs method and path but never the query string (legacy push token) or the body", async () => {
    const lines: string[] = [];
    const capture = createLogger("info", { write: (l: string) => void lines.push(l) });
    const other = buildHttpServer({ config, log: capture, db: tdb.db, redis: tredis.redis });
    other.post("/pubsub/push", async () => ({ ok: true }));
    try {
      const res = await other.inject({
        method: "POST",
        url: "/pubsub/push?token=s3cret-push-token",
        payload: { message: { data: "Ym9keS1zZWNyZXQ=" } },
      });
      expect(res.statusCode).toBe(200);
      const text = lines.join("");
      expect(text).toContain('"url":"/pubsub/push"');
      expect(text).not.toContain("s3cret-push-token");
      expect(text).not.toContain("Ym9keS1zZWNyZXQ=");
    } finally {
      await other.close();
    }
  });
});

describe("body limit", () => {
  it("accepts a body under HTTP_BODY_LIMIT_BYTES and answers 413 over it", async () => {
    const small = await fetch(`${base}/echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ x: "a".repeat(1000) }),
    });
    expect(small.status).toBe(200);
    const big = await fetch(`${base}/echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ x: "a".repeat(4000) }),
    });
    expect(big.status).toBe(413);
  });
});

describe("/metrics", () => {
  let text: string;
  beforeAll(async () => {
    const res = await fetch(`${base}/metrics`);
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toMatch(/^text\/plain; version=0\.0\.4/);
    text = await res.text();
  });

  it("exports the seed's five names and default process metrics", () => {
    for (const name of [
      "gmail_sync_messages_total",
      "gmail_sync_errors_total",
      "gmail_attachment_processing_seconds",
      "temp_file_cleanup_total",
      "orphaned_temp_files_gauge",
      "process_cpu_seconds_total",
      "nodejs_eventloop_lag_seconds",
    ]) {
      expect(text).toContain(`# TYPE ${name} `);
    }
  });

  it("computes account, backfill, cursor, watch, success and dead-letter gauges from Postgres", () => {
    const s = parseExposition(text);
    expect(sampleValue(s, "gmail_sync_accounts", { status: "active" })).toBe(1);
    expect(sampleValue(s, "gmail_sync_accounts", { status: "backfilling" })).toBe(1);
    expect(sampleValue(s, "gmail_sync_accounts", { status: "reauth_required" })).toBe(1);
    expect(sampleValue(s, "gmail_sync_accounts", { status: "disabled" })).toBe(1);
    expect(sampleValue(s, "gmail_sync_backfill_messages", { stage: "listed" })).toBe(150);
    expect(sampleValue(s, "gmail_sync_backfill_messages", { stage: "stored" })).toBe(120);
    // The disabled account's 30-day-old cursor is not counted; the reauth_required one's is.
    expect(sampleValue(s, "gmail_sync_cursor_age_max_seconds")).toBeGreaterThanOrEqual(6 * 86400);
    expect(sampleValue(s, "gmail_sync_cursor_age_max_seconds")).toBeLessThan(6 * 86400 + 60);
    expect(sampleValue(s, "gmail_sync_accounts_by_cursor_age", { age: "lt_5m" })).toBe(0);
    expect(sampleValue(s, "gmail_sync_accounts_by_cursor_age", { age: "5m_1h" })).toBe(1);
    expect(sampleValue(s, "gmail_sync_accounts_by_cursor_age", { age: "5d_7d" })).toBe(1);
    expect(sampleValue(s, "gmail_sync_accounts_by_cursor_age", { age: "gt_7d" })).toBe(0);
    // Active accounts only; the never-synced one counts from its connection two hours ago.
    expect(sampleValue(s, "gmail_sync_last_success_age_max_seconds")).toBeGreaterThanOrEqual(7200);
    expect(sampleValue(s, "gmail_sync_last_success_age_max_seconds")).toBeLessThan(7260);
    expect(sampleValue(s, "gmail_sync_accounts_stale")).toBe(1);
    const watch = sampleValue(s, "gmail_sync_watch_expiry_soonest_seconds");
    expect(watch).toBeGreaterThan(5 * 3600 - 60);
    expect(watch).toBeLessThanOrEqual(5 * 3600);
    expect(sampleValue(s, "gmail_sync_accounts_watched")).toBe(2);
    expect(sampleValue(s, "gmail_sync_dead_letters_open", { reason: "parse" })).toBe(2);
    expect(sampleValue(s, "gmail_sync_quota_limit_units_per_second", { scope: "user" })).toBe(250);
    expect(sampleValue(s, "gmail_sync_metrics_collect_errors_total", { collector: "database" })).toBe(0);
    expect(s.some((x) => x.name === "gmail_sync_account_cursor_age_seconds")).toBe(false); // per-account off by default
    expect(
      sampleValue(s, "gmail_sync_build_info", {
        version: JSON.parse(readFileSync(rel("package.json"), "utf8")).version,
        node_version: process.version,
      }),
    ).toBe(1);
  });

  it("exports BullMQ job counts by queue and state", () => {
    const s = parseExposition(text);
    expect(sampleValue(s, "gmail_sync_queue_jobs", { queue: "backfill", state: "waiting" })).toBe(2);
    expect(sampleValue(s, "gmail_sync_queue_jobs", { queue: "incremental", state: "delayed" })).toBe(1);
    expect(sampleValue(s, "gmail_sync_queue_jobs", { queue: "maintenance", state: "waiting" })).toBe(0);
    expect(sampleValue(s, "gmail_sync_metrics_collect_errors_total", { collector: "queues" })).toBe(0);
  });

  it("passes promtool check metrics except the allow-listed names", (ctx) => {
    if (!hasBinary("promtool")) {
      skipNotice("promtool", "prometheus");
      ctx.skip();
    }
    const lint = promtoolLint(text);
    expect(lint.problems).toEqual([]);
    // The allow-list is not hiding a clean run: the known problems are really reported.
    expect(lint.all.some((l) => l.startsWith("orphaned_temp_files_gauge "))).toBe(true);
  });

  it("adds per-account series (by account id, enabled accounts only) when METRICS_PER_ACCOUNT is on", async () => {
    const perAccount = loadConfig({ METRICS_PER_ACCOUNT: "true" });
    const other = buildHttpServer({ config: perAccount, log, db: tdb.db, redis: tredis.redis, metricsReuseMs: 0 });
    try {
      const s = parseExposition((await other.inject({ method: "GET", url: "/metrics" })).body);
      const ids = await tdb.db.selectFrom("accounts").select(["id", "email"]).execute();
      const id = (email: string) => String(ids.find((r) => r.email === email)?.id);
      // The never-advanced cursor has no age; the disabled account has no series at all.
      expect(
        s
          .filter((x) => x.name === "gmail_sync_account_cursor_age_seconds")
          .map((x) => x.labels.account_id)
          .sort(),
      ).toEqual([id("done@example.com"), id("revoked@example.com")].sort());
      expect(s.filter((x) => x.name === "gmail_sync_account_last_success_age_seconds").length).toBe(3);
      expect(
        sampleValue(s, "gmail_sync_account_last_success_age_seconds", { account_id: id("filling@example.com") }),
      ).toBeGreaterThanOrEqual(7200);
      expect(sampleValue(s, "gmail_sync_metrics_accounts_truncated")).toBe(0);
      expect(s.some((x) => x.labels.account_id === id("off@example.com"))).toBe(false);
    } finally {
      await other.close();
    }
  });

  it("reflects a change on the next scrape and counts a failing collector instead of failing", async () => {
    await tdb.db
      .updateTable("accounts")
      .set({ status: "reauth_required" })
      .where("email", "=", "done@example.com")
      .execute();
    let s = parseExposition(await (await fetch(`${base}/metrics`)).text());
    expect(sampleValue(s, "gmail_sync_accounts", { status: "reauth_required" })).toBe(2);

    const db = createDb("postgres://postgres@127.0.0.1:1/nowhere", 1);
    const other = buildHttpServer({ config, log, db, redis: tredis.redis, metricsReuseMs: 0 });
    try {
      const res = await other.inject({ method: "GET", url: "/metrics" });
      expect(res.statusCode).toBe(200);
      s = parseExposition(res.body);
      expect(
        sampleValue(s, "gmail_sync_metrics_collect_errors_total", { collector: "database" }),
      ).toBeGreaterThanOrEqual(1);
      expect(sampleValue(s, "gmail_sync_accounts", { status: "reauth_required" })).toBe(2); // previous values kept
    } finally {
      await other.close();
      await db.destroy();
    }
  });
});
