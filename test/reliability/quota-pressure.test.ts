// Quota pressure: three `gmail-sync worker` child processes share Redis and Postgres and sync ten
// accounts whose per-user Gmail quota is 50 units/s — the emulator enforces it (429 over its
// bucket: 50 units/s with one second of burst) and the workers are configured with the same
// GMAIL_QUOTA_UNITS_PER_SECOND. The shared quota governor must keep every account under its quota
// although three processes work on it (the emulator hardly ever answers 429, and no account spent
// more than 50 units/s over the run plus one second of burst), and every account must finish with
// the database equal to its mailbox and no failed or stuck job.
import { setTimeout as sleep } from "node:timers/promises";
import { type ChildProcess, spawn } from "node:child_process";
import { readdir } from "node:fs/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import { cliPath } from "../helpers/cli.ts";
import {
  connectTestAccount,
  expectDbEqualsMailbox,
  type Harness,
  queuesIdle,
  startHarness,
  syncState,
  waitFor,
} from "../sync/harness.ts";

const QUOTA = 50;
const ACCOUNTS = Array.from({ length: 10 }, (_, i) => `quota${i}@example.com`);
const WORKERS = 3;
let h: Harness;
const workers: Array<{ child: ChildProcess; output: () => string }> = [];

beforeAll(async () => {
  h = await startHarness({
    emulator: { accounts: ACCOUNTS, messages: 20, seed: 5050, attachments: false, quotaUnitsPerSecond: QUOTA },
    env: { INCLUDE_SPAM_TRASH: "true", GMAIL_QUOTA_UNITS_PER_SECOND: String(QUOTA) },
  });
});
afterAll(async () => {
  await Promise.all(
    workers.map(async ({ child }) => {
      if (child.exitCode !== null || child.signalCode !== null) return;
      const exited = new Promise((r) => child.once("exit", r));
      child.kill("SIGTERM");
      await Promise.race([exited, sleep(10_000, undefined, { ref: false })]);
      if (child.exitCode === null && child.signalCode === null) child.kill("SIGKILL");
    }),
  );
  await h?.close();
});

function startWorker(): void {
  let out = "";
  const child = spawn(process.execPath, [cliPath, "worker", "--concurrency", "2"], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...h.env, LOG_LEVEL: "warn" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  child.stdout?.on("data", (d) => (out += d));
  child.stderr?.on("data", (d) => (out += d));
  workers.push({ child, output: () => out });
}

it("3 workers, 10 accounts at 50 units/s: no account over its quota, every account finishes", {
  timeout: 90_000,
}, async () => {
  const ids = new Map<string, number>();
  for (const email of ACCOUNTS) ids.set(email, await connectTestAccount(h, email));
  for (let i = 0; i < WORKERS; i++) startWorker();
  const started = Date.now();
  for (const id of ids.values()) await h.app.enqueueBackfill(id, { reason: "connect" });

  // Units charged per account, sampled while the run goes: any window's spend is checked below.
  const samples: Array<{ at: number; units: Record<string, number> }> = [];
  await waitFor(
    "every account to finish its backfill",
    async () => {
      samples.push({ at: Date.now(), units: (await h.emulator.control.stats()).quotaUnits });
      for (const id of ids.values()) if ((await syncState(h, id)).backfill_phase !== "done") return false;
      return queuesIdle(h);
    },
    70_000,
    200,
  );
  const seconds = (Date.now() - started) / 1000;
  const stats = await h.emulator.control.stats();

  for (const [i, w] of workers.entries())
    expect(w.child.exitCode, `worker ${i} exited:\n${w.output().slice(-2000)}`).toBeNull();
  for (const [email, id] of ids) {
    const counts = await expectDbEqualsMailbox(h, id, email);
    expect(counts.messages, email).toBeGreaterThan(0);
    expect((await syncState(h, id)).history_id, `${email} has a cursor`).not.toBeNull();
  }
  // The emulator's own bucket is the judge: a 429 means an account went over 50 units/s beyond its
  // one second of burst. Our bucket charges a request when it is sent, Gmail's when it arrives: a
  // request held up on a loaded machine lands in the same second as the next one, so a few 429s
  // happen (1–5% of the ~210 messages.get, more when the machine is busier); batches bigger than
  // the burst gave ~200 (40%) here. The limit is 10%.
  const gets = Object.values(stats.requests["gmail.users.messages.get"] ?? {}).reduce((a, b) => a + b, 0);
  expect(stats.rateLimited, `429s from the emulator: ${JSON.stringify(stats.requests)}`).toBeLessThanOrEqual(
    Math.ceil(0.1 * gets),
  );
  let busiest = { email: "", units: 0, windowS: 0 };
  for (const email of ACCOUNTS) {
    const units = stats.quotaUnits[email] ?? 0;
    expect(units, `${email} spent quota`).toBeGreaterThan(0);
    expect(units / seconds, `${email}: ${units} units in ${seconds.toFixed(1)} s`).toBeLessThanOrEqual(
      QUOTA + QUOTA / seconds,
    );
    // Every window between two samples: at most 50 units/s plus the one second of burst (and a
    // fifth of a second of slack: a sample's clock is read after the stats call returns). The
    // emulator only counts units it accepted, so this is its view; the 429 count above is ours.
    for (let i = 0; i < samples.length; i++) {
      for (let j = i + 1; j < samples.length; j++) {
        const spent = (samples[j]!.units[email] ?? 0) - (samples[i]!.units[email] ?? 0);
        const windowS = (samples[j]!.at - samples[i]!.at) / 1000;
        if (spent - QUOTA * windowS > busiest.units - QUOTA * busiest.windowS)
          busiest = { email, units: spent, windowS };
        expect(spent, `${email}: ${spent} units in ${windowS.toFixed(2)} s`).toBeLessThanOrEqual(
          QUOTA * windowS + QUOTA + QUOTA / 5,
        );
      }
    }
  }
  console.log(
    `quota pressure: ${ACCOUNTS.length} accounts, ${WORKERS} workers, ${seconds.toFixed(1)} s, ${stats.rateLimited} x 429; busiest window ${busiest.email} ${busiest.units} units in ${busiest.windowS.toFixed(2)} s`,
  );
  for (const q of [h.app.queues.backfill, h.app.queues.incremental]) {
    const c = await q.getJobCounts("failed", "active", "waiting", "delayed");
    expect(c, q.name).toEqual({ failed: 0, active: 0, waiting: 0, delayed: 0 });
  }
  const dead = await h.app.db
    .selectFrom("dead_letters")
    .select(["gmail_id", "reason"])
    .where("resolved_at", "is", null)
    .execute();
  expect(dead).toEqual([]);
  expect(await readdir(h.app.config.ATTACHMENT_TEMP_DIR).catch((): string[] => [])).toEqual([]);
});
