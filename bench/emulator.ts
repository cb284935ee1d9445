// `npm run bench:emulator`: how fast the emulator serves messages.get format=full with quota off
// (it must never be the bottleneck of a sync benchmark), and how long `gmail-sync emulator
// --messages N` takes to be ready. The emulator runs as its own process (the CLI), so the load
// generator here does not share its event loop. Not a test: prints figures.
//   BENCH_SECONDS (default 8) per measurement  BENCH_CONCURRENCY (default 16)
//   BENCH_MESSAGES (default 2000, mailbox for the request-rate runs)  BENCH_READY_MESSAGES (default 20000; 0 skips)
//   --json: also prints one JSON object as the last line of stdout (requestsPerSecond = messages.get
//   full over keep-alive fetch, the warm-cache figure).
import { gmail } from "@googleapis/gmail";
import { OAuth2Client } from "google-auth-library";
import { startEmulatorProcess } from "./lib/emulator-process.ts";

const SECONDS = Number(process.env.BENCH_SECONDS ?? 8);
const CONCURRENCY = Number(process.env.BENCH_CONCURRENCY ?? 16);
const MESSAGES = Number(process.env.BENCH_MESSAGES ?? 2000);
const READY_MESSAGES = Number(process.env.BENCH_READY_MESSAGES ?? 20000);

/** Runs `worker` from CONCURRENCY loops for SECONDS; returns completed calls per second. */
async function rate(worker: (i: number) => Promise<void>): Promise<{ perSecond: number; errors: number }> {
  const end = performance.now() + SECONDS * 1000;
  let done = 0;
  let errors = 0;
  let n = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      while (performance.now() < end) {
        try {
          await worker(n++);
          done++;
        } catch {
          errors++;
        }
      }
    }),
  );
  return { perSecond: done / SECONDS, errors };
}

const rows: Array<Record<string, string | number>> = [];

{
  // Serving capacity is what is measured here, so Gmail's per-user and per-project limits and the
  // concurrency cap are off by name; every other realistic behaviour (pretty JSON, varying
  // attachment ids, converted charsets, expanded forwarded mail) stays on.
  const { emulator: info } = await startEmulatorProcess([
    "--messages",
    String(MESSAGES),
    "--user-quota-per-minute",
    "0",
    "--project-quota-per-minute",
    "0",
    "--max-concurrent",
    "0",
    "--added-not-found-rate",
    "0",
    "--seed",
    "3",
  ]);
  try {
    const email = info.accounts[0] as string;
    const { control } = info;
    const ids = (await control.mailbox(email)).messages.map((m) => m.id);
    const auth = new OAuth2Client({
      clientId: info.clientId,
      clientSecret: info.clientSecret,
      endpoints: { oauth2TokenUrl: info.tokenUrl },
    });
    auth.setCredentials({ refresh_token: await control.issueRefreshToken(email) });
    const token = (await auth.getAccessToken()).token as string;
    const headers = { authorization: `Bearer ${token}` };

    // Warm the per-message render cache once, as a sync run's first pass would.
    const warm = await rate(
      async (i) =>
        void (await (
          await fetch(`${info.url}/gmail/v1/users/me/messages/${ids[i % ids.length]}?format=full`, { headers })
        ).arrayBuffer()),
    );
    rows.push({
      measure: "messages.get full, fetch keep-alive (first pass incl. MIME parse)",
      concurrency: CONCURRENCY,
      "req/s": Math.round(warm.perSecond),
      errors: warm.errors,
    });
    const hot = await rate(async (i) => {
      const res = await fetch(`${info.url}/gmail/v1/users/me/messages/${ids[i % ids.length]}?format=full`, { headers });
      if (res.status !== 200) throw new Error(String(res.status));
      await res.arrayBuffer();
    });
    rows.push({
      measure: "messages.get full, fetch keep-alive",
      concurrency: CONCURRENCY,
      "req/s": Math.round(hot.perSecond),
      errors: hot.errors,
    });
    // HTTP batch of 50 messages.get (what a sync's getMessages sends): messages per second.
    const boundary = "bench";
    const batchOf = (i: number) =>
      `${Array.from({ length: 50 }, (_, k) => `--${boundary}\r\nContent-Type: application/http\r\nContent-ID: <${k}>\r\n\r\nGET /gmail/v1/users/me/messages/${ids[(i * 50 + k) % ids.length]}?format=full HTTP/1.1\r\n\r\n`).join("")}--${boundary}--\r\n`;
    const batched = await rate(async (i) => {
      const res = await fetch(`${info.url}/batch`, {
        method: "POST",
        headers: { ...headers, "content-type": `multipart/mixed; boundary=${boundary}` },
        body: batchOf(i),
      });
      if (res.status !== 200) throw new Error(String(res.status));
      await res.arrayBuffer();
    });
    rows.push({
      measure: "messages.get full in 50-part batches (messages/s)",
      concurrency: CONCURRENCY,
      "req/s": Math.round(batched.perSecond * 50),
      errors: batched.errors,
    });
    const api = gmail({ version: "v1", rootUrl: info.gmailRootUrl, auth });
    const viaClient = await rate(
      async (i) =>
        void (await api.users.messages.get({ userId: "me", id: ids[i % ids.length] as string, format: "full" })),
    );
    rows.push({
      measure: "messages.get full, @googleapis/gmail client",
      concurrency: CONCURRENCY,
      "req/s": Math.round(viaClient.perSecond),
      errors: viaClient.errors,
    });
  } finally {
    await info.close();
  }
}

if (READY_MESSAGES > 0) {
  const ready = await startEmulatorProcess(["--messages", String(READY_MESSAGES), "--seed", "1"]);
  rows.push({
    measure: `ready with --messages ${READY_MESSAGES} (process start → JSON line)`,
    "ms (wall)": Math.round(ready.wallMs),
    "ms (readyMs)": ready.readyMs,
  });
  await ready.emulator.close();
}

console.table(rows);
if (process.argv.includes("--json")) {
  const rateOf = (measure: string) => rows.find((r) => r.measure === measure)?.["req/s"] ?? null;
  console.log(
    JSON.stringify({
      emulator: {
        requestsPerSecond: rateOf("messages.get full, fetch keep-alive"),
        firstPassRequestsPerSecond: rateOf("messages.get full, fetch keep-alive (first pass incl. MIME parse)"),
        batchedMessagesPerSecond: rateOf("messages.get full in 50-part batches (messages/s)"),
        clientRequestsPerSecond: rateOf("messages.get full, @googleapis/gmail client"),
        errors: rows.reduce((n, r) => n + (typeof r.errors === "number" ? r.errors : 0), 0),
        concurrency: CONCURRENCY,
        secondsPerMeasure: SECONDS,
        mailboxMessages: MESSAGES,
      },
    }),
  );
}
