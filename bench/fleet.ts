// `npm run bench:fleet [-- --json]`: many mailboxes under one project's quota. On the emulator,
// BENCH_FLEET_ACCOUNTS accounts × BENCH_FLEET_MESSAGES messages connect at once and backfill through
// BENCH_FLEET_WORKERS `gmail-sync worker` processes, with the project quota (emulator and governor
// alike) scaled down to BENCH_FLEET_PROJECT_UNITS units/s so that the project bucket, not the
// machine, binds, for BENCH_FLEET_SECONDS (or until every backfill is done, if sooner: at the
// default size the fleet holds ~30 minutes of that quota, and fairness is measured while all of it
// waits). Meanwhile BENCH_FLEET_LIVE synced, watched accounts get mail at
// BENCH_FLEET_PUSH_RATE a second through signed Pub/Sub pushes to `serve` (this process), and one
// more account is connected once the newcomers' first turns are through and at least
// BENCH_FLEET_PROBE_RUNNING backfills are in progress. Then, workers stopped, BENCH_FLEET_OVERHEAD
// accounts (10,000) are inserted directly to time a /metrics scrape and the ticks, and a separate
// emulator measures a reconcile of a synced BENCH_FLEET_RECONCILE_MESSAGES mailbox. Reports:
//   - total msg/s and the project ceiling fraction (units spent per second ÷ the project's units/s);
//   - Jain's fairness index per full 1-minute window of the messages each account got, over every
//     fleet account waiting through the whole window (its first turn came before the window, its
//     backfill was not done before the window ended); and, for context, over the accounts served
//     in the window only;
//   - newcomers' first message (all connected at once: admission), and seconds from connect to the
//     first stored message of the late account;
//   - push → stored p50/p99 of the live accounts during the backfills (all, and those Gmail served
//     at once: the emulator withholds 5% for 2 s after delivery, as Gmail does);
//   - Redis bytes per account (mid-run and idle, by key kind), Postgres bytes per message and per
//     attachment row; scrape, poll-tick, watch-renew-tick and reconcile-tick times at 10,000 accounts;
//     reconcile units per listing unit.
// Not a test. --json: one JSON object, the last line of stdout.
import { connectEmulatorAccount } from "./lib/connect-account.ts";
import { startEmulatorProcess } from "./lib/emulator-process.ts";
import { type ChildProcess, spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { DEFAULT_SETTINGS, type Emulator, startEmulator, unitHash } from "@gmail-sync/emulator";
import type { Redis } from "ioredis";
import { type App, createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { insertHeldMessages, insertSyncedAccounts, markSynced } from "../src/db/bulk-fixtures.ts";
import {
  backfillFinishedAt,
  backfillPhases,
  storedGmailIds,
  storedPerAccountSecond,
  tableSizes,
} from "../src/db/fleet-stats.ts";
import { accountTotals } from "../src/db/metrics-queries.ts";
import { countMessageRows } from "../src/db/messages.ts";
import { getSyncState } from "../src/db/sync-state.ts";
import { emulatorEnv } from "../src/demo/emulator-env.ts";
import { freePort } from "../src/http.ts";
import { createLogger } from "../src/log.ts";
import { enqueueWatchRenewal } from "../src/maintenance.ts";
import { startServer } from "../src/server.ts";
import { parseKeyRing } from "../src/token-crypto.ts";
import { createBenchDatabase } from "./lib/database.ts";

const ACCOUNTS = Number(process.env.BENCH_FLEET_ACCOUNTS ?? 2000);
const MESSAGES = Number(process.env.BENCH_FLEET_MESSAGES ?? 50);
const WORKERS = Number(process.env.BENCH_FLEET_WORKERS ?? 3);
const PROJECT_UNITS = Number(process.env.BENCH_FLEET_PROJECT_UNITS ?? 450);
const FLEET_SECONDS = Number(process.env.BENCH_FLEET_SECONDS ?? 270);
const LIVE = Number(process.env.BENCH_FLEET_LIVE ?? 10);
const PUSH_RATE = Number(process.env.BENCH_FLEET_PUSH_RATE ?? 2);
const PROBE_RUNNING = Number(process.env.BENCH_FLEET_PROBE_RUNNING ?? 100);
const OVERHEAD = Number(process.env.BENCH_FLEET_OVERHEAD ?? 10_000);
const RECONCILE_MESSAGES = Number(process.env.BENCH_FLEET_RECONCILE_MESSAGES ?? 20_000);
const LATENCY_MS = Number(process.env.BENCH_FLEET_LATENCY_MS ?? 50);
const TIMEOUT_S = Number(process.env.BENCH_FLEET_TIMEOUT_S ?? 900);
const SEED = 9;
const json = process.argv.includes("--json");
const say = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`);
const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));
const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../bin/gmail-sync.js");
const round = (n: number, digits = 2) => Math.round(n * 10 ** digits) / 10 ** digits;
const benchStarted = performance.now();
const loadAtStart = os.loadavg();

const pad = (i: number, w: number) => String(i).padStart(w, "0");
const fleetEmails = Array.from({ length: ACCOUNTS }, (_, i) => `fleet${pad(i, 5)}@example.com`);
const liveEmails = Array.from({ length: LIVE }, (_, i) => `live${pad(i, 3)}@example.com`);
const PROBE = "probe@example.com";

/** Jain's fairness index: (Σx)² / (n·Σx²); 1 when all equal. */
function jain(xs: number[]): number | null {
  if (xs.length === 0) return null;
  const sum = xs.reduce((a, x) => a + x, 0);
  const squares = xs.reduce((a, x) => a + x * x, 0);
  return squares === 0 ? 1 : (sum * sum) / (xs.length * squares);
}
const pct = (sorted: number[], p: number) =>
  sorted.length === 0
    ? null
    : Math.round(sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] as number);
const mean = (xs: number[]) => (xs.length === 0 ? null : xs.reduce((a, x) => a + x, 0) / xs.length);

/**
 * Every key under the prefix with MEMORY USAGE, by kind (the key's shape with ids removed) and by
 * category: "account" (keys of one account: quota bucket, in-flight leases, parks, push time, page
 * slices, seen-set, label repair; and BullMQ de-duplication keys, which name an account), "jobs"
 * (job hashes and their locks and logs: queued ones are one per account with work, finished ones
 * are kept up to removeOnComplete/removeOnFail counts per queue), "shared" (queue lists and sets,
 * event streams, the project bucket, push-seen keys of Pub/Sub message ids).
 */
async function redisFootprint(redis: Redis, prefix: string) {
  const byKind: Record<string, { keys: number; bytes: number }> = {};
  const byCategory: Record<"account" | "jobs" | "shared", number> = { account: 0, jobs: 0, shared: 0 };
  let bytes = 0;
  let cursor = "0";
  do {
    const [next, batch] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 2000);
    cursor = next;
    if (batch.length === 0) continue;
    const pipe = redis.pipeline();
    for (const k of batch) pipe.memory("USAGE", k);
    const sizes = (await pipe.exec()) ?? [];
    batch.forEach((k, i) => {
      const size = Number(sizes[i]?.[1] ?? 0);
      const rest = k.slice(prefix.length);
      const kind = rest
        .replace(/[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}/g, "<uuid>")
        .replace(/\d+/g, "<n>");
      const category =
        /^:(quota:acct|inflight:acct|parks:acct|push-at|bf-page|seen|label-repair):/.test(rest) ||
        /^:[a-z]+:(de|dn):/.test(rest)
          ? "account"
          : /^:[a-z]+:(bf|inc|labels|reconcile|retry|watch|startup|repeat)[-:]/.test(rest) ||
              /^:[a-z]+:\d+(:|$)/.test(rest)
            ? "jobs"
            : "shared";
      const entry = (byKind[kind] ??= { keys: 0, bytes: 0 });
      entry.keys++;
      entry.bytes += size;
      byCategory[category] += size;
      bytes += size;
    });
  } while (cursor !== "0");
  const top = Object.entries(byKind)
    .sort((x, y) => y[1].bytes - x[1].bytes)
    .slice(0, 12);
  return { bytes, byCategory, top: Object.fromEntries(top) };
}

/** CPU seconds (user + system) of a live process, from /proc (Linux). */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = (await readFile(`/proc/${pid}/stat`, "utf8").catch(() => "")).split(") ")[1]?.split(" ") ?? [];
  return (Number(stat[11] ?? 0) + Number(stat[12] ?? 0)) / 100;
}

async function connectAccounts(app: App, emu: Emulator, emails: string[]): Promise<number[]> {
  const keyRing = parseKeyRing(app.config.TOKEN_ENCRYPTION_KEY as string);
  const ids: number[] = [];
  for (let i = 0; i < emails.length; i += 50) {
    const chunk = emails.slice(i, i + 50);
    ids.push(
      ...(await Promise.all(
        chunk.map(async (email) => {
          return connectEmulatorAccount(app, emu.control, keyRing, email);
        }),
      )),
    );
  }
  return ids;
}

// ---------------------------------------------------------------------------------------------
// Part 1: the fleet backfill, live pushes and the late account.

const port = await freePort();
const internalPort = await freePort();
const base = `http://127.0.0.1:${port}`;
say(
  `fleet: ${ACCOUNTS} accounts × ${MESSAGES} messages, ${WORKERS} worker processes, project quota ${PROJECT_UNITS} units/s, ${LIVE} live accounts at ${PUSH_RATE} deliveries/s`,
);
// In its own process: 2,000 mailboxes are ~4 GB of heap, whose collection would stall this
// process's push endpoint and latency probe.
const { emulator: emu, child: emuChild } = await startEmulatorProcess([
  "--accounts",
  [...fleetEmails, ...liveEmails, PROBE].join(","),
  "--messages",
  String(MESSAGES),
  "--seed",
  String(SEED),
  "--latency-ms",
  String(LATENCY_MS),
  "--project-quota-per-minute",
  String(PROJECT_UNITS * 60),
  "--push-endpoint",
  `${base}/pubsub/push`,
  "--push-audience",
  `${base}/pubsub/push`,
]);
const emuPid = emuChild.pid as number;
const bdb = await createBenchDatabase("fleet");
const prefix = `{bench-fleet-${randomBytes(3).toString("hex")}}`;
const env: Record<string, string> = {
  DATABASE_URL: bdb.url,
  REDIS_URL: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
  QUEUE_PREFIX: prefix,
  TOKEN_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
  ...emulatorEnv(emu, base),
  HTTP_HOST: "127.0.0.1",
  HTTP_PORT: String(port),
  INTERNAL_HTTP_PORT: String(internalPort),
  GMAIL_PROJECT_QUOTA_UNITS_PER_MINUTE: String(PROJECT_UNITS * 60),
  INCLUDE_SPAM_TRASH: "true",
  // Two cores for everything: one extraction child per worker process.
  EXTRACT_POOL_SIZE: process.env.EXTRACT_POOL_SIZE ?? "1",
  // Up to DATABASE_POOL_SIZE + 2 × WORKER_CONCURRENCY connections a process (26 by default): four
  // processes beside other users of a max_connections = 100 server would run out ("Capacity").
  DATABASE_POOL_SIZE: process.env.DATABASE_POOL_SIZE ?? "4",
  ATTACHMENT_TEMP_DIR: path.join(os.tmpdir(), `gmail-sync-bench-fleet-${process.pid}`),
  LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "warn",
};
const config = loadConfig(env);
const app = createApp(config, { log: createLogger(config.LOG_LEVEL) });
const server = await startServer(app, { worker: false });
const children: ChildProcess[] = [];
const stopWorkers = async () =>
  Promise.all(
    children.map(async (c) => {
      if (c.exitCode !== null) return;
      const exited = new Promise((r) => c.once("exit", r));
      c.kill("SIGTERM");
      await exited;
    }),
  );

/** Stops what this run started and removes what it made (idempotent: the finally and a signal both call it). */
let cleaning: Promise<void> | undefined;
const cleanup = (): Promise<void> =>
  (cleaning ??= (async () => {
    await stopWorkers();
    await server.close({ deadlineMs: 10_000 }).catch(() => {});
    for (const q of [app.queues.backfill, app.queues.incremental, app.queues.maintenance])
      await q.obliterate({ force: true }).catch(() => {});
    const leftover = await app.redis.keys(`${prefix}*`).catch(() => [] as string[]);
    for (let i = 0; i < leftover.length; i += 1000) await app.redis.del(...leftover.slice(i, i + 1000));
    await app.close();
    await emu.close();
    await bdb.drop();
    await rm(env.ATTACHMENT_TEMP_DIR as string, { recursive: true, force: true });
  })());
// Ctrl-C, or `npm run bench`'s timeout: the workers go at once, then the database and Redis keys.
for (const sig of ["SIGINT", "SIGTERM"] as const)
  process.once(sig, () => {
    for (const c of children) if (c.exitCode === null) c.kill("SIGKILL");
    const deadline = sleep(20_000);
    void Promise.race([cleanup().catch(() => {}), deadline]).then(() => process.exit(130));
  });

let result: Record<string, unknown> = {};
try {
  for (let i = 0; i < WORKERS; i++) {
    const child = spawn(process.execPath, [cli, "worker", "--no-http"], {
      env: { ...process.env, ...env },
      stdio: ["ignore", "pipe", "inherit"],
    });
    child.stdout?.on("data", (d: Buffer) => process.stderr.write(d));
    children.push(child);
  }
  const readyBy = Date.now() + 60_000;
  while ((await app.queues.backfill.getWorkersCount()) < WORKERS) {
    if (Date.now() > readyBy) throw new Error(`${WORKERS} workers did not attach within 60 s`);
    await sleep(100);
  }
  // The workers' start-up ticks (watch renewal of unwatched accounts) run before the accounts exist:
  // the fleet is measured without watches (100 units each: 2,000 of them would take 500 s of a
  // 400 units/s project); only the live accounts are watched, below.
  for (const until = Date.now() + 30_000; Date.now() < until; ) {
    const m = await app.queues.maintenance.getJobCounts("waiting", "active", "delayed", "prioritized");
    if (Object.values(m).every((n) => n === 0)) break;
    await sleep(200);
  }
  const connectStarted = performance.now();
  const liveIds = await connectAccounts(app, emu, liveEmails);
  const fleetIds = await connectAccounts(app, emu, fleetEmails);
  const [probeId] = await connectAccounts(app, emu, [PROBE]);
  if (probeId === undefined) throw new Error("probe account not connected");
  say(`  ${ACCOUNTS + LIVE + 1} accounts connected in ${round((performance.now() - connectStarted) / 1000, 1)} s`);

  // The live accounts: synced and watched before the fleet arrives.
  for (const id of liveIds) {
    await app.enqueueBackfill(id, { reason: "connect" });
    await enqueueWatchRenewal(app.queues.maintenance, id);
  }
  for (const until = Date.now() + 120_000; ; ) {
    const watched = Number((await accountTotals(app.db, [])).watched);
    if (((await backfillPhases(app.db)).done ?? 0) >= LIVE && watched >= LIVE) break;
    if (Date.now() > until) throw new Error("live accounts not backfilled and watched within 120 s");
    await sleep(200);
  }
  await sleep(2_000); // their after-backfill syncs

  const statsBefore = await emu.control.stats();
  const emulatorCpuBefore = await cpuSeconds(emuPid);
  const t0 = Date.now();
  for (let i = 0; i < fleetIds.length; i += 100)
    await Promise.all(fleetIds.slice(i, i + 100).map((id) => app.enqueueBackfill(id, { reason: "connect" })));
  say(`  fleet enqueued in ${round((Date.now() - t0) / 1000, 1)} s`);

  // Live deliveries and their push → stored latency.
  const raceRate = DEFAULT_SETTINGS.addedNotFoundRate;
  const raced = (id: string) => unitHash(SEED, id) < raceRate;
  const pending = new Map<string, number>();
  const pushAll: number[] = [];
  const pushAtOnce: number[] = [];
  let delivering = true;
  const deliverer = (async () => {
    for (let i = 0; delivering; i++) {
      const due = t0 + (i * 1000) / PUSH_RATE;
      if (due > Date.now()) await sleep(due - Date.now());
      if (!delivering) break;
      const at = performance.now();
      const { id } = await emu.control.deliver(liveEmails[i % LIVE] as string, { attachments: false });
      pending.set(id, at);
    }
  })();
  let polling = true;
  const poller = (async () => {
    while (polling || pending.size > 0) {
      if (pending.size > 0) {
        const stored = await storedGmailIds(app.db, [...pending.keys()]);
        const now = performance.now();
        for (const id of stored) {
          const at = pending.get(id);
          if (at === undefined) continue;
          pushAll.push(now - at);
          if (!raced(id)) pushAtOnce.push(now - at);
          pending.delete(id);
        }
      }
      await sleep(20);
    }
  })();

  // Watch the fleet; connect the late account once ≥ PROBE_RUNNING backfills are in progress and
  // the newcomers' first turns (the wait list) are through.
  let probe: { connectedAt: number; running: number; firstStoredAt?: number } | undefined;
  let midRun: Awaited<ReturnType<typeof redisFootprint>> | undefined;
  const total = ACCOUNTS + LIVE + 1;
  let lastLog = 0;
  for (;;) {
    const phases = await backfillPhases(app.db);
    const done = phases.done ?? 0;
    const listing = phases.listing ?? 0;
    const counts = await app.queues.backfill.getJobCounts("waiting", "prioritized", "active", "delayed");
    if (probe === undefined && (counts.waiting ?? 0) === 0 && listing >= Math.min(PROBE_RUNNING, ACCOUNTS / 2)) {
      probe = { connectedAt: Date.now(), running: listing };
      await app.enqueueBackfill(probeId, { reason: "connect" });
      void (async () => {
        while ((await countMessageRows(app.db, { accountId: probeId })) === 0) await sleep(50);
        if (probe) probe.firstStoredAt = Date.now();
      })();
    }
    if (midRun === undefined && (done >= LIVE + ACCOUNTS / 2 || Date.now() - t0 > (FLEET_SECONDS * 1000) / 2))
      midRun = await redisFootprint(app.redis, prefix);
    if (Date.now() - lastLog > 15_000) {
      lastLog = Date.now();
      say(
        `  ${round((Date.now() - t0) / 1000, 0)} s: ${done - LIVE} of ${ACCOUNTS} fleet backfills done, ${listing} in progress; queue waiting ${counts.waiting}, prioritized ${counts.prioritized}, active ${counts.active}, delayed ${counts.delayed}; load ${os.loadavg()[0]?.toFixed(1)}`,
      );
    }
    const timeUp = Date.now() - t0 > FLEET_SECONDS * 1000;
    if ((done >= total || timeUp) && probe?.firstStoredAt !== undefined) break;
    if (Date.now() - t0 > TIMEOUT_S * 1000)
      throw new Error(`fleet not done within ${TIMEOUT_S} s (${done} of ${total})`);
    await sleep(1_000);
  }
  const tEnd = Date.now();
  const fleetSeconds = (tEnd - t0) / 1000;
  delivering = false;
  await deliverer;
  for (const until = Date.now() + 60_000; pending.size > 0 && Date.now() < until; ) await sleep(50);
  polling = false;
  const lostPushes = pending.size;
  pending.clear();
  await poller;
  const statsAfter = await emu.control.stats();
  // Where a live sync's time goes: waiting in its queue (from enqueue, or from its last park), and running.
  const liveJobs = (await app.queues.incremental.getCompleted(0, 999)).filter(
    (j) => (j.processedOn ?? 0) >= t0 && j.finishedOn !== undefined,
  );
  const liveWait = liveJobs
    .map((j) => (j.processedOn as number) - (j.timestamp + (j.delay ?? 0)))
    .sort((a, b) => a - b);
  const liveRun = liveJobs.map((j) => (j.finishedOn as number) - (j.processedOn as number)).sort((a, b) => a - b);
  const emulatorCpu = (await cpuSeconds(emuPid)) - emulatorCpuBefore;

  // Throughput against the project ceiling (every account's units: the project's).
  const sumUnits = (s: typeof statsAfter) => Object.values(s.quotaUnits).reduce((a, u) => a + u, 0);
  const units = sumUnits(statsAfter) - sumUnits(statsBefore);
  // Rows written up to the end of the measured stretch (workers run on until they are stopped).
  const perSecond = (await storedPerAccountSecond(app.db, fleetIds)).filter((r) => r.second * 1000 < tEnd);
  const fleetStored = perSecond.reduce((a, r) => a + r.n, 0);
  const messagesPerSecond = fleetStored / fleetSeconds;
  const unitsPerSecond = units / fleetSeconds;

  // Fairness per full minute window (by the second each row was written), over every fleet account
  // waiting through the whole window: admitted (its first turn came before the window began —
  // newcomers' admission is the first-message figure) and not done before the window ended. Did
  // they get equal shares? For context, "served": only the accounts that got messages in it.
  const finishedAt = await backfillFinishedAt(app.db, fleetIds);
  const windows = Math.floor(fleetSeconds / 60);
  const fairness: Array<{ fromSecond: number; accounts: number; index: number }> = [];
  const served: number[] = [];
  const firstStored = new Map<number, number>();
  for (const r of perSecond)
    firstStored.set(r.accountId, Math.min(firstStored.get(r.accountId) ?? Infinity, r.second * 1000));
  // From the second window: no account's first turn comes before t0, and the few rows stamped in
  // t0's own second would make the first window one of three accounts.
  for (let w = 1; w < windows; w++) {
    const winStart = t0 + w * 60_000;
    const winEnd = winStart + 60_000;
    const got = new Map<number, number>();
    for (const r of perSecond)
      if (r.second * 1000 >= winStart && r.second * 1000 < winEnd)
        got.set(r.accountId, (got.get(r.accountId) ?? 0) + r.n);
    const s1 = jain([...got.values()]);
    if (s1 !== null) served.push(s1);
    const waiting = fleetIds.filter(
      (id) => (firstStored.get(id) ?? Infinity) < winStart && (finishedAt.get(id) ?? Infinity) >= winEnd,
    );
    const index = jain(waiting.map((id) => got.get(id) ?? 0));
    if (index !== null && waiting.length >= 2) fairness.push({ fromSecond: w * 60, accounts: waiting.length, index });
  }
  const firstWaits = fleetIds
    .flatMap((id) => (firstStored.has(id) ? [((firstStored.get(id) as number) - t0) / 1000] : []))
    .sort((a, b) => a - b);
  const doneAfter = fleetIds
    .flatMap((id) => (finishedAt.has(id) ? [((finishedAt.get(id) as number) - t0) / 1000] : []))
    .sort((a, b) => a - b);

  pushAll.sort((a, b) => a - b);
  pushAtOnce.sort((a, b) => a - b);
  const sizes = await tableSizes(app.db);
  const table = (name: string) => sizes.find((s) => s.table === name) ?? { table: name, bytes: 0, rows: 0 };
  const messagesTable = table("messages");
  const attachmentsTable = table("attachments");
  const dbBytes = sizes.reduce((a, s) => a + s.bytes, 0);
  const workerCpuSeconds = (await Promise.all(children.map((c) => cpuSeconds(c.pid as number)))).reduce(
    (a, x) => a + x,
    0,
  );
  await stopWorkers();
  const idle = await redisFootprint(app.redis, prefix);
  const accountsNow = total;

  // ---------------------------------------------------------------------------------------------
  // Part 2: per-account overhead at OVERHEAD accounts (inserted directly; nothing syncs them).
  say(`  overhead: inserting ${OVERHEAD} synced, quiet accounts`);
  await insertSyncedAccounts(
    app.db,
    Array.from({ length: OVERHEAD }, (_, i) => `quiet${pad(i, 6)}@example.com`),
    { historyId: "1000", watchDays: 0, quietMinutes: 60 },
  );
  const scrape = async () => {
    const started = performance.now();
    const res = await fetch(`${server.internalUrl}/metrics`);
    await res.text();
    if (!res.ok) throw new Error(`/metrics answered ${res.status}`);
    return performance.now() - started;
  };
  const scrapes: number[] = [];
  for (let i = 0; i < 3; i++) {
    await sleep(5_200); // past the collectors' 5 s reuse: each scrape queries afresh
    scrapes.push(await scrape());
  }
  const beforeTicks = await redisFootprint(app.redis, prefix);
  const timeTick = async (name: "poll-tick" | "watch-renew-tick" | "reconcile-tick") => {
    const started = performance.now();
    const r = (await app.runMaintenanceJob({ name, data: {} })) as { accounts?: number };
    return { ms: round(performance.now() - started, 1), accounts: r.accounts ?? 0 };
  };
  const pollTick = await timeTick("poll-tick");
  const watchTick = await timeTick("watch-renew-tick");
  const reconcileTick = await timeTick("reconcile-tick");
  const afterTicks = await redisFootprint(app.redis, prefix);
  const queuedBytesPerAccount = (afterTicks.bytes - beforeTicks.bytes) / (OVERHEAD + accountsNow);
  const idleAt10k = beforeTicks.byCategory.account / (OVERHEAD + accountsNow);

  result = {
    fleet: {
      accounts: ACCOUNTS,
      messagesPerAccount: MESSAGES,
      workers: WORKERS,
      projectUnitsPerSecond: PROJECT_UNITS,
      seconds: round(fleetSeconds, 1),
      messagesStored: fleetStored,
      messagesPerSecond: round(messagesPerSecond, 1),
      unitsPerSecond: round(unitsPerSecond, 1),
      projectCeilingFraction: round(unitsPerSecond / PROJECT_UNITS, 3),
      unitsPerMessage: round(units / Math.max(1, fleetStored + pushAll.length), 2),
      // The worker processes' CPU over the whole run (live syncs included; extraction children not).
      workerCpuSecondsPer1000Messages: round((workerCpuSeconds / Math.max(1, fleetStored + pushAll.length)) * 1000, 2),
      gmail429: statsAfter.rateLimited - statsBefore.rateLimited,
      // Successful Gmail requests during the fleet stretch, by method: where the units went.
      requestsByMethod: Object.fromEntries(
        Object.entries(statsAfter.requests)
          .map(([m, byStatus]) => [m, (byStatus["200"] ?? 0) - (statsBefore.requests[m]?.["200"] ?? 0)] as const)
          .filter(([, n]) => n > 0),
      ),
      emulatorCpuSeconds: round(emulatorCpu, 1),
      liveSyncs: liveJobs.length,
      liveSyncWaitP50Ms: pct(liveWait, 50),
      liveSyncWaitP99Ms: pct(liveWait, 99),
      liveSyncRunP50Ms: pct(liveRun, 50),
      liveSyncRunP99Ms: pct(liveRun, 99),
      fairnessIndex: fairness.length > 0 ? round(Math.min(...fairness.map((w) => w.index)), 3) : null,
      fairnessIndexMean: round(mean(fairness.map((w) => w.index)) ?? Number.NaN, 3),
      fairnessWindows: fairness.map((w) => ({ ...w, index: round(w.index, 3) })),
      servedFairnessIndexMin: served.length > 0 ? round(Math.min(...served), 3) : null,
      servedFairnessWindows: served.map((x) => round(x, 3)),
      newcomersServed: firstWaits.length,
      firstMessageSecondsP50: pct(firstWaits, 50),
      firstMessageSecondsP90: pct(firstWaits, 90),
      firstMessageSecondsMax: pct(firstWaits, 100),
      backfillsDone: doneAfter.length,
      doneSecondsP50: pct(doneAfter, 50),
      doneSecondsMax: pct(doneAfter, 100),
      firstMessageSeconds:
        probe?.firstStoredAt !== undefined ? round((probe.firstStoredAt - probe.connectedAt) / 1000, 2) : null,
      probeConnectedWhileRunning: probe?.running ?? null,
      probeConnectedAfterSeconds: probe ? round((probe.connectedAt - t0) / 1000, 1) : null,
      liveDeliveries: pushAll.length + lostPushes,
      livePushNotStoredWithin60s: lostPushes,
      livePushP50Ms: pct(pushAll, 50),
      livePushP99Ms: pct(pushAll, 99),
      livePushServedAtOnceP50Ms: pct(pushAtOnce, 50),
      livePushServedAtOnceP99Ms: pct(pushAtOnce, 99),
      // Per account: the keys of one account (and its de-duplication keys); queued job hashes are
      // one per account with work; retained finished jobs are bounded per queue, not per account.
      redisBytesPerAccount: Math.round(idle.byCategory.account / accountsNow),
      redisBytesPerAccountMidRun: midRun
        ? Math.round((midRun.byCategory.account + midRun.byCategory.jobs) / accountsNow)
        : null,
      redisIdle: idle,
      redisMidRun: midRun ?? null,
      postgresBytesPerMessage: Math.round(messagesTable.bytes / Math.max(1, messagesTable.rows)),
      postgresBytesPerAttachment: Math.round(attachmentsTable.bytes / Math.max(1, attachmentsTable.rows)),
      postgresBytesPerMessageAllTables: Math.round(dbBytes / Math.max(1, messagesTable.rows)),
      postgresTables: sizes,
    },
    overhead: {
      accounts: OVERHEAD + accountsNow,
      scrapeMs: scrapes.map((s) => round(s, 1)),
      pollTick,
      watchRenewTick: watchTick,
      reconcileTick,
      queuedJobBytesPerAccount: Math.round(queuedBytesPerAccount),
      redisAccountBytesPerAccount: Math.round(idleAt10k),
    },
  };
} finally {
  await cleanup();
}

// ---------------------------------------------------------------------------------------------
// Part 3: a reconcile of a synced mailbox, list-only: units per listing unit.

async function measureReconcile(): Promise<Record<string, number>> {
  const email = "reconcile@example.com";
  const NEW = 40;
  const DELETED = 25;
  const emu2 = await startEmulator({
    accounts: [email],
    messages: RECONCILE_MESSAGES,
    seed: SEED + 1,
    attachments: false,
    addedNotFoundRate: 0,
  });
  const db2 = await createBenchDatabase("fleet-reconcile");
  const prefix2 = `{bench-fleet-rc-${randomBytes(3).toString("hex")}}`;
  const app2 = createApp(
    loadConfig({
      DATABASE_URL: db2.url,
      REDIS_URL: env.REDIS_URL,
      QUEUE_PREFIX: prefix2,
      TOKEN_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
      ...emulatorEnv(emu2),
      INCLUDE_SPAM_TRASH: "true",
      LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "warn",
    }),
    { log: createLogger("warn") },
  );
  try {
    const [accountId] = await connectAccounts(app2, emu2, [email]);
    if (accountId === undefined) throw new Error("reconcile account not connected");
    const box = await emu2.control.mailbox(email);
    await insertHeldMessages(
      app2.db,
      accountId,
      box.messages.map((m) => ({
        gmailId: m.id,
        threadId: m.threadId,
        labelIds: m.labelIds,
        historyId: box.historyId,
      })),
    );
    await markSynced(app2.db, accountId, box.historyId, 7);
    for (let i = 0; i < NEW; i++) await emu2.control.deliver(email);
    for (const m of box.messages.slice(100, 100 + DELETED)) await emu2.control.deleteMessage(email, m.id);
    const ok = (s: Awaited<ReturnType<typeof emu2.control.stats>>, method: string) => s.requests[method]?.["200"] ?? 0;
    const before = await emu2.control.stats();
    const workers = app2.startWorkers({ maintenance: false });
    const started = Date.now();
    await app2.enqueueBackfill(accountId, { reason: "reconcile" });
    for (;;) {
      const s = await getSyncState(app2.db, accountId);
      if (s?.backfill_phase === "done" && (s.backfill_finished_at?.getTime() ?? 0) >= started) break;
      if (Date.now() - started > 300_000) throw new Error("reconcile did not finish within 300 s");
      await sleep(100);
    }
    const seconds = (Date.now() - started) / 1000;
    await sleep(500);
    await workers.close();
    const after = await emu2.control.stats();
    const spent = (after.quotaUnits[email] ?? 0) - (before.quotaUnits[email] ?? 0);
    const lists = ok(after, "gmail.users.messages.list") - ok(before, "gmail.users.messages.list");
    const fetchUnits =
      5 * (ok(after, "gmail.users.messages.get") - ok(before, "gmail.users.messages.get")) +
      10 * (ok(after, "gmail.users.threads.get") - ok(before, "gmail.users.threads.get")) +
      5 * (ok(after, "gmail.users.messages.attachments.get") - ok(before, "gmail.users.messages.attachments.get"));
    return {
      messages: RECONCILE_MESSAGES,
      newMessages: NEW,
      deletedMessages: DELETED,
      seconds: round(seconds, 1),
      units: spent,
      listingUnits: lists * 5,
      fetchUnitsPerNewMessage: round(fetchUnits / NEW, 2),
      reconcileUnitsPerListingUnit: round((spent - fetchUnits) / (lists * 5), 3),
      boundUnits: round(1.2 * lists * 5 + 10 * NEW),
    };
  } finally {
    for (const q of [app2.queues.backfill, app2.queues.incremental, app2.queues.maintenance])
      await q.obliterate({ force: true }).catch(() => {});
    const leftover = await app2.redis.keys(`${prefix2}*`).catch(() => [] as string[]);
    if (leftover.length > 0) await app2.redis.del(...leftover);
    await app2.close();
    await emu2.close();
    await db2.drop();
  }
}

say(`  reconcile of a synced ${RECONCILE_MESSAGES}-message mailbox ...`);
const reconcile = await measureReconcile();
const f = result.fleet as Record<string, number | null>;
const o = result.overhead as {
  accounts: number;
  scrapeMs: number[];
  pollTick: { ms: number };
  watchRenewTick: { ms: number };
  reconcileTick: { ms: number };
  queuedJobBytesPerAccount: number;
};
const summary = {
  accounts: ACCOUNTS,
  messagesPerSecond: f.messagesPerSecond,
  projectCeilingFraction: f.projectCeilingFraction,
  fairnessIndex: f.fairnessIndex,
  firstMessageSeconds: f.firstMessageSeconds,
  livePushP99Ms: f.livePushP99Ms,
  redisBytesPerAccount: f.redisBytesPerAccount,
  postgresBytesPerMessage: f.postgresBytesPerMessage,
  scrapeMs10k: Math.max(...o.scrapeMs),
  pollTickMs10k: o.pollTick.ms,
  watchRenewTickMs10k: o.watchRenewTick.ms,
  reconcileTickMs10k: o.reconcileTick.ms,
  reconcileUnitsPerListingUnit: reconcile.reconcileUnitsPerListingUnit,
  seconds: round((performance.now() - benchStarted) / 1000, 0),
  loadAverage: { start: loadAtStart.map((l) => round(l, 1)), end: os.loadavg().map((l) => round(l, 1)) },
  details: { ...result, reconcile },
};

say("");
say(`fleet benchmark (${summary.seconds} s, load ${summary.loadAverage.start[0]} → ${summary.loadAverage.end[0]})`);
say(
  `  ${ACCOUNTS} accounts × ${MESSAGES} messages by ${WORKERS} workers under ${PROJECT_UNITS} project units/s: ${f.messagesPerSecond} msg/s, ${f.unitsPerSecond} units/s = ${f.projectCeilingFraction} of the project ceiling (${f.unitsPerMessage} units/msg, ${f.gmail429} × 429)`,
);
say(
  `  fairness (every waiting account, per minute): min ${f.fairnessIndex}, mean ${f.fairnessIndexMean} (target ≥ 0.9) over ${JSON.stringify(f.fairnessWindows)}; served accounts only: min ${f.servedFairnessIndexMin}`,
);
say(
  `  newcomers' first message (${f.newcomersServed} of ${ACCOUNTS} within the run): p50 ${f.firstMessageSecondsP50} s, p90 ${f.firstMessageSecondsP90} s, last ${f.firstMessageSecondsMax} s; ${f.backfillsDone} backfills done (p50 ${f.doneSecondsP50} s, last ${f.doneSecondsMax} s)`,
);
say(
  `  late account (connected at ${f.probeConnectedAfterSeconds} s with ${f.probeConnectedWhileRunning} backfills in progress): first message after ${f.firstMessageSeconds} s (target < 10 s)`,
);
say(
  `  live push → stored: p50 ${f.livePushP50Ms} ms, p99 ${f.livePushP99Ms} ms; served at once p50 ${f.livePushServedAtOnceP50Ms} ms, p99 ${f.livePushServedAtOnceP99Ms} ms (target p99 < 2000 ms); not stored within 60 s: ${f.livePushNotStoredWithin60s}`,
);
say(
  `  worker CPU ${f.workerCpuSecondsPer1000Messages} s per 1,000 messages (${WORKERS} processes; extraction children not counted)`,
);
say(
  `  Redis bytes per account: ${f.redisBytesPerAccount} idle, ${f.redisBytesPerAccountMidRun} mid-run; queued tick jobs ${o.queuedJobBytesPerAccount} per account`,
);
say(
  `  Postgres bytes per message ${f.postgresBytesPerMessage} (all tables ${f.postgresBytesPerMessageAllTables}), per attachment row ${f.postgresBytesPerAttachment}`,
);
say(
  `  at ${o.accounts} accounts: /metrics scrape ${o.scrapeMs.join(", ")} ms; poll-tick ${o.pollTick.ms} ms, watch-renew-tick ${o.watchRenewTick.ms} ms, reconcile-tick ${o.reconcileTick.ms} ms`,
);
say(
  `  reconcile of a synced ${reconcile.messages}-message mailbox (+${reconcile.newMessages} new, −${reconcile.deletedMessages}): ${reconcile.units} units (bound ${reconcile.boundUnits}), ${reconcile.reconcileUnitsPerListingUnit}× the listing's ${reconcile.listingUnits} units besides ${reconcile.fetchUnitsPerNewMessage} units per new message, ${reconcile.seconds} s`,
);
if (json) console.log(JSON.stringify(summary));
process.exit(0);
