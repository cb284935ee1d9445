// A real worker child process (bin/gmail-sync.js worker) SIGKILLed in the middle of a backfill;
// a second one takes over the orphaned job from the last committed page, not page one (the
// emulator's request count shows it), and is stopped with SIGTERM while paging (exit 0 within
// 30 s); a third finishes with no duplicate and no missing message, then stops on SIGTERM too.
import { type ChildProcess, spawn } from "node:child_process";
import { afterAll, beforeAll, expect, it } from "vitest";
import { cliPath, runCli } from "../helpers/cli.ts";
import {
  backfillDone,
  connectTestAccount,
  expectDbEqualsMailbox,
  type Harness,
  queuesIdle,
  startHarness,
  syncState,
  waitFor,
} from "./harness.ts";

const EMAIL = "carol@example.com";
const MESSAGES = 2000; // 4 pages of 500
let h: Harness;
const children: ChildProcess[] = [];

beforeAll(async () => {
  h = await startHarness({
    emulator: { accounts: [EMAIL], messages: MESSAGES, seed: 5, attachments: false },
    env: { INCLUDE_SPAM_TRASH: "true" },
  });
});
afterAll(async () => {
  for (const c of children) if (c.exitCode === null && c.signalCode === null) c.kill("SIGKILL");
  await h?.close();
});

function startWorker(): {
  child: ChildProcess;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  output: () => string;
} {
  let out = "";
  const child = spawn(process.execPath, [cliPath, "worker", "--concurrency", "2"], {
    // A quota low enough that a page takes about a second: the kill lands mid-backfill.
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      ...h.env,
      GMAIL_QUOTA_UNITS_PER_SECOND: "2000",
      LOG_LEVEL: "warn",
    },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d) => (out += d));
  child.stderr?.on("data", (d) => (out += d));
  children.push(child);
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) =>
    child.on("exit", (code, signal) => r({ code, signal })),
  );
  return { child, exited, output: () => out };
}

function countRequests(stats: { requests: Record<string, Record<string, number>> }, method: string): number {
  let n = 0;
  for (const [name, byStatus] of Object.entries(stats.requests))
    if (name.includes(method)) for (const c of Object.values(byStatus)) n += c;
  return n;
}

it("SIGKILL mid-backfill, restart: resumes from the checkpoint, no duplicate, none missing; SIGTERM exits 0", {
  timeout: 100_000,
}, async () => {
  const accountId = await connectTestAccount(h, EMAIL);
  await h.app.enqueueBackfill(accountId, { reason: "connect" });

  const first = startWorker();
  await waitFor("a committed page", async () => (await syncState(h, accountId)).backfill_pages >= 1, 60_000, 10);
  first.child.kill("SIGKILL");
  expect((await first.exited).signal).toBe("SIGKILL");
  const atKill = await syncState(h, accountId);
  expect(atKill.backfill_phase).toBe("listing"); // really mid-backfill
  const committedPages = atKill.backfill_pages;

  // The second worker takes the orphaned job over; SIGTERM it while it pages: it finishes (or
  // abandons to its checkpoint) the page in flight and exits 0 within 30 s.
  const second = startWorker();
  await waitFor(
    "progress after the restart",
    async () => (await syncState(h, accountId)).backfill_pages > committedPages,
    60_000,
    10,
  );
  const busy = await syncState(h, accountId);
  if (busy.backfill_phase === "listing") {
    const t = Date.now();
    second.child.kill("SIGTERM");
    const exit = await second.exited;
    expect(exit.code, second.output()).toBe(0);
    expect(Date.now() - t).toBeLessThan(30_000);
  }

  const third = startWorker();
  await waitFor("backfill to finish after the restarts", () => backfillDone(h, accountId), 60_000, 100);
  await waitFor("queues to drain", () => queuesIdle(h), 30_000);

  const pages = Math.ceil(MESSAGES / 500);
  const state = await syncState(h, accountId);
  expect(state.backfill_pages).toBe(pages);
  // Every page listed once, plus at most the one that was in flight when the first worker died
  // (the SIGTERMed one finishes its page); a restart from page one would add `committedPages`.
  const lists = countRequests(await h.emulator.control.stats(), "messages.list");
  expect(lists).toBeLessThanOrEqual(pages + 1);
  expect(committedPages).toBeGreaterThanOrEqual(1);
  await expectDbEqualsMailbox(h, accountId, EMAIL);

  // What users see, through the real CLI (while the second worker still runs).
  const cliEnv = { ...h.env, LOG_LEVEL: "warn" };
  const accounts = await runCli(["accounts", "--json"], cliEnv);
  expect(accounts.code, accounts.stderr).toBe(0);
  const [view] = JSON.parse(accounts.stdout) as Array<Record<string, unknown>>;
  expect(view).toMatchObject({ email: EMAIL, status: "active", messages: MESSAGES, attachments: 0, deadLetters: 0 });
  expect(view?.backfill).toMatchObject({ listed: MESSAGES, stored: MESSAGES, estimate: MESSAGES, done: true });
  expect(typeof view?.cursorAgeSeconds).toBe("number");
  expect(typeof view?.lastSyncAt).toBe("string");
  const sync = await runCli(["sync", EMAIL, "--wait"], cliEnv, 30_000);
  expect(sync.code, sync.stderr).toBe(0);
  expect(sync.stdout).toContain("synced");
  const dead = await runCli(["dead-letters", "--json"], cliEnv);
  expect(JSON.parse(dead.stdout)).toEqual([]);

  const t0 = Date.now();
  third.child.kill("SIGTERM");
  const exit = await third.exited;
  expect(exit.code, third.output()).toBe(0);
  expect(Date.now() - t0).toBeLessThan(30_000);
});
