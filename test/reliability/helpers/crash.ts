// Shared pieces of the crash/restart reliability tests: a real worker child process
// (bin/gmail-sync.js worker) to SIGKILL, polling that tolerates a dropped connection (the tests
// kill Redis and Postgres connections under their own feet), the process table, and the one
// convergence assertion every crash test ends with.
import { type ChildProcess, spawn } from "node:child_process";
import { readdir, readFile } from "node:fs/promises";
import { sql } from "kysely";
import { expect } from "vitest";
import { cliPath } from "../../helpers/cli.ts";
import { expectDbEqualsMailbox, type Harness } from "../../sync/harness.ts";

export interface WorkerChild {
  child: ChildProcess;
  pid: number;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output(): string;
}

const children: ChildProcess[] = [];

/** Starts `gmail-sync worker` with the harness environment plus `env`; killed by killAllWorkerChildren. */
export function startWorkerChild(h: Harness, env: Record<string, string> = {}, concurrency = 2): WorkerChild {
  let out = "";
  const child = spawn(process.execPath, [cliPath, "worker", "--concurrency", String(concurrency)], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...h.env, LOG_LEVEL: "warn", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d) => (out += d));
  child.stderr?.on("data", (d) => (out += d));
  children.push(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.on("exit", (code, signal) => r({ code, signal })),
  );
  if (child.pid === undefined) throw new Error("worker child did not start");
  return { child, pid: child.pid, exited, output: () => out };
}

/** For afterAll: no worker child of this file outlives it. */
export function killAllWorkerChildren(): void {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
}

/**
 * waitFor that counts a thrown error as "not yet": the database or Redis connection the check uses
 * may be the one the test just killed.
 */
export async function poll<T>(
  what: string,
  fn: () => Promise<T | undefined | false | null>,
  timeoutMs = 60_000,
  everyMs = 50,
): Promise<T> {
  const until = Date.now() + timeoutMs;
  let lastError: unknown;
  for (;;) {
    try {
      const v = await fn();
      if (v !== undefined && v !== false && v !== null) return v;
    } catch (err) {
      lastError = err;
    }
    if (Date.now() > until)
      throw new Error(
        `timed out after ${timeoutMs} ms waiting for ${what}${lastError ? ` (last error: ${(lastError as Error).message})` : ""}`,
      );
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** Live processes from /proc: pid, parent pid and command line. */
export async function processTable(): Promise<Array<{ pid: number; ppid: number; cmdline: string }>> {
  const out: Array<{ pid: number; ppid: number; cmdline: string }> = [];
  for (const name of await readdir("/proc")) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const [stat, cmdline] = await Promise.all([
        readFile(`/proc/${name}/stat`, "utf8"),
        readFile(`/proc/${name}/cmdline`, "utf8"),
      ]);
      // Field 4 of /proc/PID/stat, after the parenthesised command name (which may hold spaces).
      const rest = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
      if (rest[0] === "Z") continue; // a zombie has exited already
      out.push({ pid: Number(name), ppid: Number(rest[1]), cmdline: cmdline.replace(/\0/g, " ").trim() });
    } catch {
      // exited while we looked
    }
  }
  return out;
}

/** Pids of the extraction children (src/extract/child.ts) whose parent is `parentPid`. */
export async function extractionChildrenOf(parentPid: number): Promise<number[]> {
  return (await processTable())
    .filter((p) => p.ppid === parentPid && p.cmdline.includes("extract/child.ts"))
    .map((p) => p.pid);
}

export async function alive(pids: number[]): Promise<number[]> {
  const live = new Set((await processTable()).map((p) => p.pid));
  return pids.filter((p) => live.has(p));
}

export async function tempFiles(dir: string): Promise<string[]> {
  try {
    return await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") return [];
    throw err;
  }
}

const STUCK_STATES = ["waiting", "active", "delayed", "prioritized", "waiting-children"] as const;

/** Job counts of the sync queues that would mean a stuck job, plus failed ones. */
export async function syncQueueCounts(
  h: Harness,
): Promise<{ stuck: number; failed: number; byQueue: Record<string, Record<string, number>> }> {
  const byQueue: Record<string, Record<string, number>> = {};
  let stuck = 0;
  let failed = 0;
  for (const q of [h.app.queues.backfill, h.app.queues.incremental]) {
    const counts = await q.getJobCounts(...STUCK_STATES, "failed");
    byQueue[q.name] = counts;
    for (const s of STUCK_STATES) stuck += counts[s] ?? 0;
    failed += counts.failed ?? 0;
  }
  return { stuck, failed, byQueue };
}

/**
 * The end state every crash test asserts: the database equals the mailbox (live ids, threads,
 * labels, deletions, one attachment row per part), no duplicate row (the unique constraints exist
 * and hold), no file left in ATTACHMENT_TEMP_DIR, no job waiting/running/delayed and none failed.
 * The harness must run with INCLUDE_SPAM_TRASH=true (its mailbox comparison includes them).
 */
export async function expectConverged(
  h: Harness,
  accountId: number,
  email: string,
): Promise<{ messages: number; attachments: number }> {
  expect(h.app.config.INCLUDE_SPAM_TRASH, "crash tests compare spam and trash too").toBe(true);
  const counts = await expectDbEqualsMailbox(h, accountId, email);

  // Deletions: every stored row of a message Gmail no longer has is soft-deleted.
  const box = await h.emulator.control.mailbox(email);
  const liveIds = new Set(box.messages.map((m) => m.id));
  const rows = await h.app.db
    .selectFrom("messages")
    .select(["gmail_id", "deleted_at"])
    .where("account_id", "=", accountId)
    .execute();
  const notDeleted = rows.filter((r) => !liveIds.has(r.gmail_id) && r.deleted_at === null).map((r) => r.gmail_id);
  expect(notDeleted, "rows of deleted messages still live").toEqual([]);

  // No duplicates: the constraints exist (a test that cannot fail would prove nothing), and hold.
  const uniques = await sql<{ def: string }>`
    SELECT pg_get_constraintdef(oid) AS def FROM pg_constraint
    WHERE contype = 'u' AND conrelid IN ('messages'::regclass, 'attachments'::regclass)`.execute(h.app.db);
  const defs = uniques.rows.map((r) => r.def);
  expect(defs).toContain("UNIQUE (account_id, gmail_id)");
  expect(defs).toContain("UNIQUE (message_id, part_id)");
  const dupMessages = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM (SELECT gmail_id FROM messages WHERE account_id = ${accountId} GROUP BY gmail_id HAVING count(*) > 1) d`.execute(
    h.app.db,
  );
  expect(dupMessages.rows[0]?.n).toBe(0);
  const attachmentRows = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM attachments a JOIN messages m ON m.id = a.message_id
    WHERE m.account_id = ${accountId} AND m.deleted_at IS NULL`.execute(h.app.db);
  expect(attachmentRows.rows[0]?.n).toBe(counts.attachments);
  // An attachment a crash interrupted is stored with its text or a reason, never as neither.
  const unexplained = await sql<{ n: number }>`
    SELECT count(*)::int AS n FROM attachments a JOIN messages m ON m.id = a.message_id
    WHERE m.account_id = ${accountId} AND a.extracted_text IS NULL AND a.skipped_reason IS NULL`.execute(h.app.db);
  expect(unexplained.rows[0]?.n, "attachment rows with neither text nor skipped_reason").toBe(0);

  expect(await tempFiles(h.app.config.ATTACHMENT_TEMP_DIR), "files left in ATTACHMENT_TEMP_DIR").toEqual([]);

  const q = await syncQueueCounts(h);
  expect(q.stuck, `stuck jobs: ${JSON.stringify(q.byQueue)}`).toBe(0);
  if (q.failed > 0) {
    const failed = [...(await h.app.queues.backfill.getFailed()), ...(await h.app.queues.incremental.getFailed())];
    expect.fail(`failed jobs: ${failed.map((j) => `${j.name} ${j.id}: ${j.failedReason}`).join("; ")}`);
  }
  return counts;
}

/** Total requests the emulator served for the Gmail methods whose name contains `method`. */
export function countRequests(stats: { requests: Record<string, Record<string, number>> }, method: string): number {
  let n = 0;
  for (const [name, byStatus] of Object.entries(stats.requests))
    if (name.includes(method)) for (const c of Object.values(byStatus)) n += c;
  return n;
}
