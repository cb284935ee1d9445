// `npm run bench:fetch`: messages per second of the two getMessages strategies (HTTP batch vs
// bounded parallel GETs) at the same quota, against the emulator with its per-user quota and
// concurrency cap on, and our governor set to the same rate. Not a test: prints a table.
//   BENCH_MESSAGES (default 600)  BENCH_QUOTA (units/s, default 250)  BENCH_LATENCY_MS (default 150,
//   the emulator's per-request latency: Gmail's own is 100–300 ms)
import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { startEmulator } from "@gmail-sync/emulator";
import { isGmailError } from "../src/errors.ts";
import { createGmailPort, DEFAULT_FETCH_STRATEGY } from "../src/gmail/client.ts";
import { createQuotaGovernor, QUOTA_COST } from "../src/gmail/quota.ts";
import { OAuth2Client } from "google-auth-library";
import { createLogger } from "../src/log.ts";
import { apiRequestDurationSeconds } from "../src/metrics.ts";

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 600);
const QUOTA = Number(process.env.BENCH_QUOTA ?? 250);
const LATENCY_MS = Number(process.env.BENCH_LATENCY_MS ?? 150);
const EMAIL = "bench@example.com";
const log = createLogger("silent");

const emu = await startEmulator({ accounts: [EMAIL], messages: MESSAGES, seed: 7, attachments: true, userQuotaUnitsPerMinute: QUOTA * 60, latencyMs: LATENCY_MS });
const redis = new Redis(process.env.REDIS_URL ?? "redis://127.0.0.1:6379", { maxRetriesPerRequest: null });
const prefix = `bench-${randomBytes(4).toString("hex")}`;

async function idsOf(): Promise<string[]> {
  return (await emu.control.mailbox(EMAIL)).messages.map((m) => m.id);
}

/** Our HTTP requests so far (a batch counts once, not per sub-request): the latency histogram's counts. */
async function httpRequestsSent(): Promise<number> {
  const m = await apiRequestDurationSeconds.get();
  return m.values
    .filter((v) => v.metricName?.endsWith("_count") && (v.labels.method === "batch" || v.labels.method === "messages.get"))
    .reduce((n, v) => n + v.value, 0);
}

interface Row {
  strategy: string;
  messages: number;
  seconds: number;
  perSecond: number;
  ofCeiling: number;
  gmail429: number;
  httpRequests: number;
  failed: number;
  parked: number;
}

async function run(label: string, opts: { fetchStrategy: "batch" | "parallel"; concurrency: number; batchSize?: number }, accountId: number): Promise<Row> {
  const auth = new OAuth2Client({ clientId: emu.clientId, clientSecret: emu.clientSecret, endpoints: { oauth2TokenUrl: emu.tokenUrl } });
  auth.setCredentials({ refresh_token: await emu.control.issueRefreshToken(EMAIL) });
  const quota = createQuotaGovernor(redis, { prefix: `${prefix}:${label}`, unitsPerSecond: QUOTA, projectUnitsPerMinute: 1_200_000 });
  const gmail = createGmailPort({ auth, accountId, quota, rootUrl: emu.gmailRootUrl, log, ...opts });
  await gmail.getProfile(); // token fetched outside the timing
  // Start every run from an empty bucket (no free burst): steady state is what a backfill sees.
  await quota.acquire(accountId, QUOTA, { maxWaitMs: 5000 });
  await new Promise((r) => setTimeout(r, 1100)); // the emulator's bucket refills too
  await quota.acquire(accountId, QUOTA, { maxWaitMs: 5000 });
  const ids = await idsOf();
  const before = await emu.control.stats();
  const sentBefore = await httpRequestsSent();
  const started = process.hrtime.bigint();
  let failed = 0;
  // Pages of 100 ids, as the backfill hands them over.
  let parked = 0;
  for (let i = 0; i < ids.length; i += 100) {
    for (;;) {
      try {
        const res = await gmail.getMessages(ids.slice(i, i + 100));
        failed += res.filter((f) => f.error).length;
        break;
      } catch (err) {
        // What the worker does with a rate-limited job: park it for retryAfterMs, then redo it.
        if (!isGmailError(err, "rate_limited")) throw err;
        parked++;
        await new Promise((r) => setTimeout(r, err.retryAfterMs ?? 1000));
      }
    }
  }
  const seconds = Number(process.hrtime.bigint() - started) / 1e9;
  const perSecond = ids.length / seconds;
  const ceiling = QUOTA / (QUOTA_COST["messages.get"] ?? 5);
  const after = await emu.control.stats();
  return {
    strategy: label,
    messages: ids.length,
    seconds: Number(seconds.toFixed(2)),
    perSecond: Number(perSecond.toFixed(1)),
    ofCeiling: Number((perSecond / ceiling).toFixed(3)),
    gmail429: after.rateLimited - before.rateLimited,
    httpRequests: (await httpRequestsSent()) - sentBefore,
    failed,
    parked,
  };
}

const rows: Row[] = [];
try {
  let acct = 1;
  rows.push(await run("default (batch)", { fetchStrategy: DEFAULT_FETCH_STRATEGY, concurrency: 2 }, acct++));
  rows.push(await run("batch-50 x2", { fetchStrategy: "batch", concurrency: 2, batchSize: 50 }, acct++));
  rows.push(await run("batch-25 x3", { fetchStrategy: "batch", concurrency: 3, batchSize: 25 }, acct++));
  rows.push(await run("parallel x10", { fetchStrategy: "parallel", concurrency: 10 }, acct++));
  rows.push(await run("parallel x5", { fetchStrategy: "parallel", concurrency: 5 }, acct++));
} finally {
  await emu.close();
  const keys = await redis.keys(`${prefix}*`);
  if (keys.length > 0) await redis.del(...keys);
  redis.disconnect();
}
console.log(`getMessages at ${QUOTA} units/s (ceiling ${QUOTA / 5} messages/s), ${MESSAGES} messages, ${LATENCY_MS} ms latency, emulator quota + concurrency cap on`);
console.table(rows);
