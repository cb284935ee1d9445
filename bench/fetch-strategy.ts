// `npm run bench:fetch`: messages per second of the two getMessages strategies (HTTP batch vs
// bounded parallel GETs) at the same quota, against the emulator with its per-user quota and
// concurrency cap on, and our governor set to the same rate. Not a test: prints a table.
//   BENCH_MESSAGES (default 600)  BENCH_QUOTA (units/s, default 250)  BENCH_LATENCY_MS (default 150,
//   the emulator's per-request latency: Gmail's own is 100–300 ms)
import { startEmulator } from "@gmail-sync/emulator";
import { isGmailError } from "../src/errors.ts";
import { createGmailPort, DEFAULT_FETCH_STRATEGY } from "../src/gmail/client.ts";
import type { App } from "../src/app.ts";
import { QUOTA_COST } from "../src/gmail/quota.ts";
import { OAuth2Client } from "google-auth-library";
import { createLogger } from "../src/log.ts";
import { apiRequestDurationSeconds } from "../src/metrics.ts";
import { withQuotaApp } from "./lib/quota-app.ts";

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 600);
const QUOTA = Number(process.env.BENCH_QUOTA ?? 250);
const LATENCY_MS = Number(process.env.BENCH_LATENCY_MS ?? 150);
const EMAIL = "bench@example.com";
const log = createLogger("silent");

const emu = await startEmulator({
  accounts: [EMAIL],
  messages: MESSAGES,
  seed: 7,
  attachments: true,
  userQuotaUnitsPerMinute: QUOTA * 60,
  latencyMs: LATENCY_MS,
});

async function idsOf(): Promise<string[]> {
  return (await emu.control.mailbox(EMAIL)).messages.map((m) => m.id);
}

/** Our HTTP requests so far (a batch counts once, not per sub-request): the latency histogram's counts. */
async function httpRequestsSent(): Promise<number> {
  const m = await apiRequestDurationSeconds.get();
  return m.values
    .filter(
      (v) => v.metricName?.endsWith("_count") && (v.labels.method === "batch" || v.labels.method === "messages.get"),
    )
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

async function run(
  label: string,
  opts: { fetchStrategy: "batch" | "parallel"; concurrency: number; batchSize?: number },
  accountId: number,
  app: App,
): Promise<Row> {
  const { quota, inFlight } = app;
  const auth = new OAuth2Client({
    clientId: emu.clientId,
    clientSecret: emu.clientSecret,
    endpoints: { oauth2TokenUrl: emu.tokenUrl },
  });
  auth.setCredentials({ refresh_token: await emu.control.issueRefreshToken(EMAIL) });
  // The product's two gates: the quota governor and the in-flight cap (a batch holds one permit a part).
  const gmail = createGmailPort({ auth, accountId, quota, inFlight, rootUrl: emu.gmailRootUrl, log, ...opts });
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
  rows.push(
    await withQuotaApp(QUOTA, log, (app) =>
      run("default (batch)", { fetchStrategy: DEFAULT_FETCH_STRATEGY, concurrency: 2 }, acct++, app),
    ),
  );
  rows.push(
    await withQuotaApp(QUOTA, log, (app) =>
      run("batch-50 x2", { fetchStrategy: "batch", concurrency: 2, batchSize: 50 }, acct++, app),
    ),
  );
  rows.push(
    await withQuotaApp(QUOTA, log, (app) =>
      run("batch-25 x3", { fetchStrategy: "batch", concurrency: 3, batchSize: 25 }, acct++, app),
    ),
  );
  rows.push(
    await withQuotaApp(QUOTA, log, (app) =>
      run("parallel x10", { fetchStrategy: "parallel", concurrency: 10 }, acct++, app),
    ),
  );
  rows.push(
    await withQuotaApp(QUOTA, log, (app) =>
      run("parallel x5", { fetchStrategy: "parallel", concurrency: 5 }, acct++, app),
    ),
  );
} finally {
  await emu.close();
}
console.log(
  `getMessages at ${QUOTA} units/s (ceiling ${QUOTA / 5} messages/s), ${MESSAGES} messages, ${LATENCY_MS} ms latency, emulator quota + concurrency cap on`,
);
console.table(rows);
