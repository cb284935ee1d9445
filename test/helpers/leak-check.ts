// Runs in every test file (vitest setupFiles) and fails the file when it leaves something behind:
// handles that keep the event loop alive (sockets, servers, timers, child process handles), child
// processes still running, files in its temp directory, Redis keys under its prefixes, databases
// it created. Each leak is named in the failure, then removed so it cannot spill into the next file.
import { mkdtempSync, readdirSync, readFileSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { Redis } from "ioredis";
import pg from "pg";
import { afterAll, beforeAll } from "vitest";
import { adminUrl, redisUrl } from "./env.ts";
import { trackedDatabases, trackedRedisPrefixes } from "./leaks.ts";

// A temp directory of this file's own: the product and the tests put their temp files under
// os.tmpdir(), which follows TMPDIR, so whatever is left there after the file is this file's.
const tmpRoot = mkdtempSync(path.join(os.tmpdir(), "gmail-sync-test-tmp-"));
process.env.TMPDIR = tmpRoot;

// Closing is asynchronous (a socket's close, a child's exit): give it this long to settle.
const SETTLE_MS = 5_000;

function children(): number[] {
  const pids: number[] = [];
  try {
    for (const task of readdirSync(`/proc/${process.pid}/task`)) {
      const list = readFileSync(`/proc/${process.pid}/task/${task}/children`, "utf8").trim();
      if (list) pids.push(...list.split(/\s+/).map(Number));
    }
  } catch {
    // Not Linux: no child-process check.
  }
  return pids;
}

function alive(pid: number): boolean {
  try {
    // A zombie (exited, not yet reaped by its parent) is not running anything.
    return !/^\S+ \(.*\) Z/.test(readFileSync(`/proc/${pid}/stat`, "utf8"));
  } catch {
    return false;
  }
}

function resourceCounts(): Map<string, number> {
  const counts = new Map<string, number>();
  for (const r of process.getActiveResourcesInfo()) counts.set(r, (counts.get(r) ?? 0) + 1);
  return counts;
}

function extraResources(before: Map<string, number>): string[] {
  const extra: string[] = [];
  for (const [type, n] of resourceCounts()) {
    const more = n - (before.get(type) ?? 0);
    if (more > 0) extra.push(`${more} × ${type}`);
  }
  return extra;
}

function filesUnder(dir: string): string[] {
  try {
    return (readdirSync(dir, { recursive: true, withFileTypes: true }) as import("node:fs").Dirent[])
      .filter((d) => !d.isDirectory())
      .map((d) => path.relative(dir, path.join(d.parentPath, d.name)));
  } catch {
    return [];
  }
}

async function until(check: () => boolean, ms: number): Promise<void> {
  const end = Date.now() + ms;
  while (!check() && Date.now() < end) await new Promise((r) => setTimeout(r, 50).unref());
}

async function leftRedisKeys(): Promise<string[]> {
  if (trackedRedisPrefixes.size === 0) return [];
  const redis = new Redis(redisUrl, { maxRetriesPerRequest: 1 });
  try {
    const left: string[] = [];
    for (const prefix of trackedRedisPrefixes) {
      let cursor = "0";
      do {
        const [next, keys] = await redis.scan(cursor, "MATCH", `*${prefix}*`, "COUNT", 1000);
        cursor = next;
        if (keys.length > 0) {
          left.push(...keys);
          await redis.del(...keys);
        }
      } while (cursor !== "0");
    }
    return left;
  } finally {
    redis.disconnect();
  }
}

async function leftDatabases(): Promise<string[]> {
  if (trackedDatabases.size === 0) return [];
  const client = new pg.Client({ connectionString: adminUrl });
  await client.connect();
  try {
    const res = await client.query<{ datname: string }>("SELECT datname FROM pg_database WHERE datname = ANY($1)", [
      [...trackedDatabases],
    ]);
    for (const row of res.rows)
      await client.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(row.datname)} WITH (FORCE)`);
    return res.rows.map((r) => r.datname);
  } finally {
    await client.end();
  }
}

let resourcesBefore = new Map<string, number>();
let childrenBefore = new Set<number>();

beforeAll(() => {
  resourcesBefore = resourceCounts();
  childrenBefore = new Set(children());
});

afterAll(async () => {
  const leaks: string[] = [];
  const newChildren = () => children().filter((pid) => !childrenBefore.has(pid) && alive(pid));
  await until(() => newChildren().length === 0 && extraResources(resourcesBefore).length === 0, SETTLE_MS);

  const running = newChildren();
  if (running.length > 0) {
    leaks.push(
      `child processes still running: ${running.map((pid) => `${pid} (${readFileSync(`/proc/${pid}/cmdline`, "utf8").replaceAll("\0", " ").trim().slice(0, 120)})`).join(", ")}`,
    );
    for (const pid of running) process.kill(pid, "SIGKILL");
  }
  const resources = extraResources(resourcesBefore);
  if (resources.length > 0) leaks.push(`handles keeping the event loop alive: ${resources.join(", ")}`);
  const files = filesUnder(tmpRoot);
  if (files.length > 0)
    leaks.push(
      `temp files left: ${files.slice(0, 10).join(", ")}${files.length > 10 ? ` and ${files.length - 10} more` : ""}`,
    );
  rmSync(tmpRoot, { recursive: true, force: true });
  const keys = await leftRedisKeys();
  if (keys.length > 0) leaks.push(`Redis keys left: ${keys.length} (${keys.slice(0, 5).join(", ")}…)`);
  const dbs = await leftDatabases();
  if (dbs.length > 0) leaks.push(`databases left: ${dbs.join(", ")}`);
  if (leaks.length > 0) throw new Error(`this test file leaks:\n  - ${leaks.join("\n  - ")}`);
});
