// `npm run bench:backfill`: backfill throughput through the real queue, worker, Gmail client,
// quota governor, attachment pipeline and Postgres, against the emulator's realistic defaults
// (Gmail's per-minute user quota, 10 requests in flight, converted charsets, forwarded mail,
// drafts…). Not a test: prints one JSON object.
//   BENCH_MESSAGES (default 2000)  BENCH_QUOTA (units/s, default 250: our governor's rate and
//   the emulator's per-minute window of 60 × that)  BENCH_LATENCY_MS (emulator per-request latency, default 100)
//   BENCH_ATTACHMENTS (default true)  BENCH_HOSTILE (default false: ordinary attachments, as a
//   real mailbox; true adds the generator's hostile files — among them a PDF built to hit the
//   extraction timeout, which holds its page for that long)
// Reports messages/s as a fraction of the quota ceiling (quota / 5 units per messages.get), quota
// units spent per message stored (the emulator's own count), CPU seconds per 1,000 messages (this
// process; extraction children separately), peak RSS, failed jobs and 429s, the threads.get and
// messages.get calls made, and the threads.get vs messages.get quota arithmetic for the mailbox.
//   BACKFILL_FETCH_THREADS=false: the messages.get-only path, for comparison in the same conditions.
import { connectEmulatorAccount } from "./lib/connect-account.ts";
import { randomBytes } from "node:crypto";
import { rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { createApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { countMessageRows } from "../src/db/messages.ts";
import { getSyncState } from "../src/db/sync-state.ts";
import { startEmulator } from "@gmail-sync/emulator";
import { createLogger } from "../src/log.ts";
import { parseKeyRing } from "../src/token-crypto.ts";
import { emulatorEnv } from "../src/demo/emulator-env.ts";
import { createBenchDatabase } from "./lib/database.ts";

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 2000);
const QUOTA = Number(process.env.BENCH_QUOTA ?? 250);
const LATENCY_MS = Number(process.env.BENCH_LATENCY_MS ?? 100);
const ATTACHMENTS = (process.env.BENCH_ATTACHMENTS ?? "true") !== "false";
const HOSTILE = (process.env.BENCH_HOSTILE ?? "false") === "true";
const EMAIL = "bench@example.com";
const bdb = await createBenchDatabase("backfill");

const emu = await startEmulator({
  accounts: [EMAIL],
  messages: MESSAGES,
  seed: 7,
  attachments: ATTACHMENTS,
  hostile: HOSTILE,
  userQuotaUnitsPerMinute: QUOTA * 60,
  latencyMs: LATENCY_MS,
});
const prefix = `{bench-${randomBytes(4).toString("hex")}}`;
const env = {
  DATABASE_URL: bdb.url,
  REDIS_URL: process.env.REDIS_URL ?? "redis://127.0.0.1:6379",
  QUEUE_PREFIX: prefix,
  TOKEN_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
  ...emulatorEnv(emu),
  GMAIL_QUOTA_UNITS_PER_SECOND: String(QUOTA),
  INCLUDE_SPAM_TRASH: "true",
  ATTACHMENT_TEMP_DIR: path.join(os.tmpdir(), `gmail-sync-bench-${process.pid}`),
  LOG_LEVEL: process.env.BENCH_LOG_LEVEL ?? "warn",
  // Extraction limits pass through (e.g. EXTRACT_TIMEOUT_MS): the generated mailbox holds a PDF
  // built to hit the timeout, which holds its page for that long.
  ...Object.fromEntries(
    Object.entries(process.env).filter(([k]) => k.startsWith("EXTRACT_")) as Array<[string, string]>,
  ),
  // BACKFILL_FETCH_THREADS=false measures the messages.get-only path on the same mailbox.
  ...(process.env.BACKFILL_FETCH_THREADS ? { BACKFILL_FETCH_THREADS: process.env.BACKFILL_FETCH_THREADS } : {}),
};
const config = loadConfig(env);
const app = createApp(config, { log: createLogger(config.LOG_LEVEL) });

const keyRing = parseKeyRing(env.TOKEN_ENCRYPTION_KEY);
const account = { id: await connectEmulatorAccount(app, emu.control, keyRing, EMAIL) };

const box = await emu.control.mailbox(EMAIL);
const workers = app.startWorkers({ maintenance: false });
const cpu0 = process.cpuUsage();
const t0 = performance.now();
await app.enqueueBackfill(account.id, { reason: "connect" });
for (;;) {
  const s = await getSyncState(app.db, account.id);
  if (s?.backfill_phase === "done") break;
  await new Promise((r) => setTimeout(r, 50));
}
const seconds = (performance.now() - t0) / 1000;
const cpu = process.cpuUsage(cpu0);
const stats = await emu.control.stats();
const failed = (await app.queues.backfill.getJobCounts("failed")).failed ?? 0;
const stored = await countMessageRows(app.db, { accountId: account.id });
const units = stats.quotaUnits[EMAIL] ?? 0;
// The ceiling: quota / units per message stored (messages.get plus the attachments.get
// calls a mailbox with attachments needs); the bare messages.get ceiling is quota / 5.
const unitsPerMessage = units / stored;
const ceiling = QUOTA / unitsPerMessage;
const threads = new Set(box.messages.map((m) => m.threadId)).size;
const usage = process.resourceUsage();

await workers.close();
await app.queues.backfill.obliterate({ force: true }).catch(() => {});
await app.queues.incremental.obliterate({ force: true }).catch(() => {});
await app.close();
await emu.close();
// The run's private attachment temp dir (empty by now: the pipeline deletes every file).
await rm(env.ATTACHMENT_TEMP_DIR, { recursive: true, force: true });
await bdb.drop();

console.log(
  JSON.stringify(
    {
      messages: stored,
      seconds: Number(seconds.toFixed(2)),
      messagesPerSecond: Number((stored / seconds).toFixed(2)),
      quotaUnitsPerSecond: QUOTA,
      ceilingMessagesPerSecond: Number(ceiling.toFixed(2)),
      fractionOfCeiling: Number((stored / seconds / ceiling).toFixed(3)),
      fractionOfMessagesGetCeiling: Number((stored / seconds / (QUOTA / 5)).toFixed(3)),
      quotaUnitsSpent: units,
      quotaUnitsPerMessage: Number(unitsPerMessage.toFixed(3)),
      cpuSecondsPer1000Messages: Number((((cpu.user + cpu.system) / 1e6 / stored) * 1000).toFixed(2)),
      peakRssMb: Math.round(usage.maxRSS / 1024),
      failedJobs: failed,
      gmail429: stats.rateLimited,
      emulatorLatencyMs: LATENCY_MS,
      attachments: ATTACHMENTS,
      hostile: HOSTILE,
      extractTimeoutMs: config.EXTRACT_TIMEOUT_MS,
      fetchThreads: config.BACKFILL_FETCH_THREADS,
      threadsGetCalls: stats.requests["gmail.users.threads.get"]?.["200"] ?? 0,
      messagesGetCalls: stats.requests["gmail.users.messages.get"]?.["200"] ?? 0,
      // threads.get costs 10 units for a whole thread, messages.get 5 a message.
      threadsVsMessages: {
        threads,
        messagesGetUnits: 5 * box.messages.length,
        threadsGetUnits: 10 * threads,
        messagesPerThread: Number((box.messages.length / threads).toFixed(2)),
      },
    },
    null,
    2,
  ),
);
process.exit(0);
