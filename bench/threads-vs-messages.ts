// `npm run bench:threads`: is fetching a mailbox thread by thread (threads.get format=full, 10 units
// for the whole thread) cheaper per message than message by message (messages.get, 5 units each)?
// The same generated mailbox, the same quota for the emulator and our Redis governor, real clients:
// messages through the product's Gmail port (createGmailPort: batch, its default, and parallel
// GETs), threads through @googleapis/gmail's users.threads.get with the same governor charging 10
// units a call. Listing (messages.list 5 / threads.list 10 units a page of 500) is included. Every
// fetched message is run through parseGmailMessage, so only storable messages count. Measures
// only: the product's fetch path is not changed. Not a test: prints a table.
//   BENCH_MESSAGES (default 1000)  BENCH_QUOTA (units/s, default 250)  BENCH_LATENCY_MS (default 100)
import { gmail as gmailApi } from "@googleapis/gmail";
import { OAuth2Client } from "google-auth-library";
import { startEmulator } from "@gmail-sync/emulator";
import { isGmailError } from "../src/errors.ts";
import { classifyGmailError } from "../src/gmail/classify-error.ts";
import { createGmailPort } from "../src/gmail/client.ts";
import { parseGmailMessage } from "../src/gmail/parse-message.ts";
import type { GmailMessage } from "../src/gmail/port.ts";
import type { App } from "../src/app.ts";
import { QUOTA_COST, type QuotaGovernor } from "../src/gmail/quota.ts";
import { createLogger } from "../src/log.ts";
import { withQuotaApp } from "./lib/quota-app.ts";

const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 1000);
const QUOTA = Number(process.env.BENCH_QUOTA ?? 250);
const LATENCY_MS = Number(process.env.BENCH_LATENCY_MS ?? 100);
const EMAIL = "bench@example.com";
const log = createLogger("silent");

const emu = await startEmulator({
  accounts: [EMAIL],
  messages: MESSAGES,
  seed: 7,
  attachments: true,
  hostile: false,
  userQuotaUnitsPerMinute: QUOTA * 60,
  latencyMs: LATENCY_MS,
});
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Row {
  method: string;
  messages: number;
  calls: number;
  quotaUnits: number;
  messagesPerUnit: number;
  seconds: number;
  messagesPerSecond: number;
  gmail429: number;
}

function storable(m: GmailMessage): boolean {
  try {
    parseGmailMessage(m);
    return true;
  } catch {
    return false;
  }
}

async function authClient(): Promise<OAuth2Client> {
  const auth = new OAuth2Client({
    clientId: emu.clientId,
    clientSecret: emu.clientSecret,
    endpoints: { oauth2TokenUrl: emu.tokenUrl },
  });
  auth.setCredentials({ refresh_token: await emu.control.issueRefreshToken(EMAIL) });
  await auth.getAccessToken(); // outside the timing
  return auth;
}

/** Starts from empty buckets (ours and the emulator's): steady state, no free burst. */
async function drain(quota: QuotaGovernor, accountId: number): Promise<void> {
  await quota.acquire(accountId, QUOTA, { maxWaitMs: 5000 });
  await sleep(1100);
  await quota.acquire(accountId, QUOTA, { maxWaitMs: 5000 });
}

async function measure(
  method: string,
  quota: QuotaGovernor,
  accountId: number,
  fetchAll: () => Promise<{ messages: number; calls: number }>,
): Promise<Row> {
  await drain(quota, accountId);
  const before = await emu.control.stats();
  const t0 = performance.now();
  const { messages, calls } = await fetchAll();
  const seconds = (performance.now() - t0) / 1000;
  const after = await emu.control.stats();
  const units = (after.quotaUnits[EMAIL] ?? 0) - (before.quotaUnits[EMAIL] ?? 0);
  return {
    method,
    messages,
    calls,
    quotaUnits: units,
    messagesPerUnit: Number((messages / units).toFixed(4)),
    seconds: Number(seconds.toFixed(2)),
    messagesPerSecond: Number((messages / seconds).toFixed(1)),
    gmail429: after.rateLimited - before.rateLimited,
  };
}

/** messages.list + messages.get through the product's port (its quota, retries, batching). */
async function viaMessages(label: string, strategy: "batch" | "parallel", accountId: number, app: App): Promise<Row> {
  const { quota, inFlight } = app;
  const port = createGmailPort({
    auth: await authClient(),
    accountId,
    quota,
    inFlight,
    rootUrl: emu.gmailRootUrl,
    log,
    fetchStrategy: strategy,
    ...(strategy === "parallel" ? { concurrency: 5 } : {}),
  });
  return measure(label, quota, accountId, async () => {
    let messages = 0;
    let calls = 0;
    let pageToken: string | undefined;
    do {
      const page = await port.listMessages({
        maxResults: 500,
        includeSpamTrash: true,
        ...(pageToken ? { pageToken } : {}),
      });
      calls++;
      pageToken = page.nextPageToken;
      const ids = page.messages.map((m) => m.id);
      for (let i = 0; i < ids.length; i += 100) {
        for (;;) {
          try {
            const got = await port.getMessages(ids.slice(i, i + 100));
            calls += got.length;
            messages += got.filter((f) => f.message !== undefined && storable(f.message)).length;
            break;
          } catch (err) {
            // What the worker does with a rate-limited job: park it, then redo it.
            if (!isGmailError(err, "rate_limited")) throw err;
            await sleep(err.retryAfterMs ?? 1000);
          }
        }
      }
    } while (pageToken);
    return { messages, calls };
  });
}

/** threads.list + threads.get format=full: the real client, our governor charging 10 units a call, 5 in flight. */
async function viaThreads(label: string, accountId: number, { quota }: App): Promise<Row> {
  const api = gmailApi({ version: "v1", rootUrl: emu.gmailRootUrl, auth: await authClient() });
  async function governed<T>(method: string, fn: () => Promise<T>): Promise<T> {
    for (;;) {
      try {
        await quota.acquire(accountId, QUOTA_COST[method] ?? 10, { maxWaitMs: 30_000 });
        return await fn();
      } catch (raw) {
        const err = classifyGmailError(raw, { method });
        if (err.kind !== "rate_limited" && err.kind !== "transient") throw err;
        if (err.kind === "rate_limited") await quota.penalize(accountId, err.retryAfterMs);
        await sleep(err.retryAfterMs ?? 500);
      }
    }
  }
  return measure(label, quota, accountId, async () => {
    const threadIds: string[] = [];
    let calls = 0;
    let pageToken: string | undefined;
    do {
      const res = await governed("threads.list", () =>
        api.users.threads.list(
          { userId: "me", maxResults: 500, includeSpamTrash: true, ...(pageToken ? { pageToken } : {}) },
          { retry: false },
        ),
      );
      calls++;
      for (const t of res.data.threads ?? []) if (t.id) threadIds.push(t.id);
      pageToken = res.data.nextPageToken ?? undefined;
    } while (pageToken);
    let messages = 0;
    let next = 0;
    const worker = async () => {
      while (next < threadIds.length) {
        const id = threadIds[next++] as string;
        const res = await governed("threads.get", () =>
          api.users.threads.get({ userId: "me", id, format: "full" }, { retry: false }),
        );
        calls++;
        messages += (res.data.messages ?? []).filter(storable).length;
      }
    };
    await Promise.all(Array.from({ length: 5 }, worker));
    return { messages, calls };
  });
}

const box = await emu.control.mailbox(EMAIL);
const threads = new Set(box.messages.map((m) => m.threadId)).size;
const rows: Row[] = [];
try {
  rows.push(
    await withQuotaApp(QUOTA, log, (app) => viaMessages("messages.get (batch, product default)", "batch", 1, app)),
  );
  rows.push(await withQuotaApp(QUOTA, log, (app) => viaMessages("messages.get (parallel x5)", "parallel", 2, app)));
  rows.push(await withQuotaApp(QUOTA, log, (app) => viaThreads("threads.get (parallel x5)", 3, app)));
} finally {
  await emu.close();
}
console.log(
  `${box.messages.length} messages in ${threads} threads (${(box.messages.length / threads).toFixed(2)} a thread), ${QUOTA} units/s for the emulator and our governor, ${LATENCY_MS} ms latency`,
);
console.table(rows);
console.log(
  JSON.stringify({
    messages: box.messages.length,
    threads,
    userQuotaUnitsPerMinute: QUOTA * 60,
    latencyMs: LATENCY_MS,
    rows,
  }),
);
process.exit(0);
