// Following the change feed, on real Postgres: `gmail-sync changes --follow --json` as a child
// process is woken by NOTIFY on each commit (not its 30 s safety poll), keeps going by polling when its LISTEN
// connection is killed (and listens again), and ends with exit 0 on SIGTERM; GET /changes on the
// internal listener is refused without its token (404 with none configured), long-polls until a
// change commits, and answers 410 to a pruned cursor, as the CLI exits 1.
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { sql } from "kysely";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { appendChanges, changeFeedBounds, pruneChanges } from "../../src/db/changes.ts";
import { buildHttpServer, listen } from "../../src/http.ts";
import { createLogger } from "../../src/log.ts";
import { cliPath, runCli } from "../helpers/cli.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";

const TOKEN = randomBytes(24).toString("hex");
let tdb: TestDatabase;
let tredis: TestRedis;
let accountId: number;
let server: FastifyInstance;
let base: string;
const children: ChildProcess[] = [];

/** Commits one change in a transaction of its own; resolves when the commit returned. */
async function commitChange(gmailId: string): Promise<void> {
  await tdb.db
    .transaction()
    .execute((trx) =>
      appendChanges(trx, [{ accountId, kind: "message.labels_changed", historic: false, gmailId, labelsAdded: ["X"] }]),
    );
}

/** Backend pids LISTENing for the feed (their last statement was the LISTEN). */
async function listeners(): Promise<number[]> {
  const { rows } = await sql<{ pid: number }>`
    SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND query LIKE 'LISTEN gmail_sync_changes%'`.execute(
    tdb.db,
  );
  return rows.map((r) => r.pid);
}

async function waitUntil<T>(what: string, fn: () => Promise<T | null | undefined | false>, ms = 10_000): Promise<T> {
  const end = Date.now() + ms;
  for (;;) {
    const v = await fn();
    if (v !== null && v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 20));
  }
}

function follower(args: string[]) {
  const child = spawn(process.execPath, [cliPath, "changes", "--follow", "--json", ...args], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, DATABASE_URL: tdb.url, LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  children.push(child);
  const lines: Array<{ change: { seq: number; gmailId?: string } }> = [];
  let buf = "";
  let stderr = "";
  child.stdout?.on("data", (d: Buffer) => {
    buf += d.toString();
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      lines.push({ change: JSON.parse(buf.slice(0, i)) });
      buf = buf.slice(i + 1);
    }
  });
  child.stderr?.on("data", (d: Buffer) => (stderr += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.on("exit", (code, signal) => r({ code, signal })),
  );
  return { child, lines, exited, stderr: () => stderr };
}

beforeAll(async () => {
  [tdb, tredis] = await Promise.all([createTestDatabase(), createTestRedis()]);
  accountId = (
    await tdb.db
      .insertInto("accounts")
      .values({ email: "follow@example.com" })
      .returning("id")
      .executeTakeFirstOrThrow()
  ).id;
  const config = loadConfig({
    DATABASE_URL: tdb.url,
    REDIS_URL: tredis.url,
    INTERNAL_HTTP_PORT: "0",
    CHANGES_API_TOKEN: TOKEN,
    LOG_LEVEL: "silent",
  });
  server = buildHttpServer({ config, log: createLogger("silent"), db: tdb.db, redis: tredis.redis });
  base = await listen(server, config, "internal");
});

afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await server?.close();
  await tdb?.drop();
  await tredis?.cleanup();
});

describe("gmail-sync changes --follow", () => {
  it("prints each commit when NOTIFY wakes it, polls when LISTEN is lost, and exits 0 on SIGTERM", {
    timeout: 60_000,
  }, async () => {
    await commitChange("before");
    const head = (await changeFeedBounds(tdb.db)).head;
    const f = follower(["--after", String(head - 1)]);
    // The change before the follower started comes first (the cursor, not a notification, decides).
    await waitUntil("the backlog", async () => f.lines.length === 1);
    expect(f.lines[0]?.change.gmailId).toBe("before");
    await waitUntil("the LISTEN connection", async () => (await listeners()).length === 1);

    // Woken by NOTIFY: while LISTEN is connected the only other wake is the 30 s safety poll, so
    // each change arriving within the 5 s wait below shows the notification woke the follower.
    for (let i = 0; i < 40; i++) {
      await commitChange(`c${i}`);
      await waitUntil(
        `change c${i} (woken by NOTIFY, not the 30 s safety poll)`,
        async () => f.lines.length === i + 2,
        5_000,
      );
    }
    expect(f.lines.map((l) => l.change.gmailId)).toEqual(["before", ...Array.from({ length: 40 }, (_, i) => `c${i}`)]);

    // The LISTEN connection dies: the follower polls meanwhile (within about a second) and listens again.
    const [pid] = await listeners();
    await sql`SELECT pg_terminate_backend(${pid}::int)`.execute(tdb.db);
    await commitChange("while-lost");
    await waitUntil(
      "the change committed while LISTEN was lost",
      async () => f.lines.at(-1)?.change.gmailId === "while-lost",
      10_000,
    );
    const again = await waitUntil("a new LISTEN connection", async () => {
      const now = await listeners();
      return now.length === 1 && now[0] !== pid ? now : null;
    });
    expect(again).toHaveLength(1);
    const t0 = performance.now();
    await commitChange("after-reconnect");
    await waitUntil(
      "the change after the reconnect",
      async () => f.lines.at(-1)?.change.gmailId === "after-reconnect",
      5_000,
    );
    expect(performance.now() - t0).toBeLessThan(1_000);
    expect(new Set(f.lines.map((l) => l.change.seq)).size).toBe(f.lines.length); // none twice

    f.child.kill("SIGTERM");
    expect(await f.exited).toEqual({ code: 0, signal: null });
    expect(f.stderr()).not.toMatch(/error/i);
  });

  it("without --follow prints what is there (--limit caps it) and exits 0; text lines name seq and kind", async () => {
    const json = await runCli(["changes", "--json", "--limit", "3"], { DATABASE_URL: tdb.url });
    expect(json.code).toBe(0);
    const lines = json.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as { seq: number; kind: string; account: string });
    expect(lines).toHaveLength(3);
    expect(lines[0]).toMatchObject({ kind: "message.labels_changed", account: "follow@example.com", historic: false });
    const text = await runCli(
      ["changes", "--account", "follow@example.com", "--after", String(lines[1]!.seq), "--limit", "1"],
      {
        DATABASE_URL: tdb.url,
      },
    );
    expect(text.code).toBe(0);
    expect(text.stdout.trim()).toMatch(
      new RegExp(`^${lines[2]!.seq}  \\S+  follow@example.com  message.labels_changed  \\S+  \\+X$`),
    );
    const unknown = await runCli(["changes", "--account", "nobody@example.com"], { DATABASE_URL: tdb.url });
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toMatch(/unknown account/);
  });
});

describe("GET /changes", () => {
  const get = (path: string, token: string | null = TOKEN) =>
    fetch(`${base}${path}`, token === null ? {} : { headers: { authorization: `Bearer ${token}` } });

  it("is refused without the token, and absent (404) when no token is configured", async () => {
    expect((await get("/changes", null)).status).toBe(401);
    expect((await get("/changes", "wrong-token-wrong-token")).status).toBe(401);
    expect((await get("/changes?limit=0")).status).toBe(400);
    const config = loadConfig({
      DATABASE_URL: tdb.url,
      REDIS_URL: tredis.url,
      INTERNAL_HTTP_PORT: "0",
      LOG_LEVEL: "silent",
    });
    const closed = buildHttpServer({ config, log: createLogger("silent"), db: tdb.db, redis: tredis.redis });
    try {
      const url = await listen(closed, config, "internal");
      expect((await fetch(`${url}/changes`, { headers: { authorization: `Bearer ${TOKEN}` } })).status).toBe(404);
    } finally {
      await closed.close();
    }
  });

  it("pages by cursor and long-polls until a change commits", async () => {
    const all = (await (await get("/changes?after=0&limit=1000")).json()) as {
      changes: { seq: number }[];
      next: number;
    };
    expect(all.changes.length).toBeGreaterThan(40);
    expect(all.next).toBe(all.changes.at(-1)?.seq);
    const two = (await (await get("/changes?after=0&limit=2")).json()) as { changes: { seq: number }[]; next: number };
    expect(two.changes.map((c) => c.seq)).toEqual(all.changes.slice(0, 2).map((c) => c.seq));

    const started = performance.now();
    const pending = get(`/changes?after=${all.next}&wait=20`);
    await new Promise((r) => setTimeout(r, 300));
    const committedAt = performance.now();
    await commitChange("long-poll");
    const res = await pending;
    const answeredAt = performance.now();
    expect(res.status).toBe(200);
    const body = (await res.json()) as { changes: { gmailId: string }[]; next: number };
    expect(body.changes.map((c) => c.gmailId)).toEqual(["long-poll"]);
    expect(committedAt - started).toBeGreaterThan(250); // it did wait
    expect(answeredAt - committedAt).toBeLessThan(1_000); // and answered on the commit, not the timeout

    // Nothing comes: an empty page after `wait` seconds, the cursor unchanged.
    const t0 = performance.now();
    const empty = (await (await get(`/changes?after=${body.next}&wait=1`)).json()) as {
      changes: unknown[];
      next: number;
    };
    expect(empty).toEqual({ changes: [], next: body.next });
    expect(performance.now() - t0).toBeGreaterThan(900);
  });

  it("answers 410 to a cursor older than retention kept, as the CLI exits 1 with one line", async () => {
    const head = (await changeFeedBounds(tdb.db)).head;
    await sql`UPDATE changes SET created_at = now() - interval '30 days' WHERE seq <= ${head - 5}`.execute(tdb.db);
    const pruned = await pruneChanges(tdb.db, 14);
    expect(pruned.prunedThrough).toBe(head - 5);
    const gone = await get("/changes?after=1");
    expect(gone.status).toBe(410);
    expect(await gone.json()).toMatchObject({ error: "cursor_expired", after: 1, prunedThrough: head - 5 });
    expect((await get(`/changes?after=${head - 5}`)).status).toBe(200);
    const cli = await runCli(["changes", "--after", "1"], { DATABASE_URL: tdb.url });
    expect(cli.code).toBe(1);
    expect(cli.stderr.trim().split("\n")).toHaveLength(1);
    expect(cli.stderr).toMatch(/cursor 1 is older than the change feed keeps/);
  });
});
