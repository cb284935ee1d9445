// The compose demo without Docker: the `worker` service's command (`gmail-sync serve`) runs as a
// child process with the service's environment from docker-compose.yml (defaults resolved, service
// host names replaced by local addresses), is judged healthy by the service's own healthcheck
// command, and the `traffic` service's script, verbatim, drives it against the emulator: it must
// connect both mailboxes through /oauth2/start → consent → callback, and the mail it delivers must
// reach Postgres through pushes. Then a real Prometheus (Debian's, when installed) scrapes the
// worker with prometheus/prometheus.yml and its rules, and every dashboard and alert query runs
// without error, the core panels returning data.
import { setTimeout as sleep } from "node:timers/promises";
import { type ChildProcess, spawn, spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, beforeAll, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { DEFAULT_CLIENT_SECRET, type Emulator, startEmulator } from "@gmail-sync/emulator";
import { cliPath, repoRoot } from "../helpers/cli.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";
import { waitFor } from "../sync/harness.ts";
import { parseExposition } from "./exposition.ts";
import { alertQueries, dashboardQueries, substituteGrafanaMacros } from "./promql.ts";
import { freePort, hasBinary, rel, skipNotice } from "./tools.ts";

interface ComposeService {
  command: string[];
  entrypoint?: string[];
  environment: Record<string, string>;
  healthcheck: { test: string[] };
}
const compose = parseYaml(readFileSync(rel("docker-compose.yml"), "utf8"), { merge: true }) as {
  services: Record<string, ComposeService>;
};
const service = (name: string) => compose.services[name] as ComposeService;

const ACCOUNTS = ["alice@example.com", "bob@example.com"];
const OPERATOR_TOKEN = randomBytes(32).toString("base64");
const CHANGES_TOKEN = randomBytes(32).toString("hex");
let emulator: Emulator;
let tdb: TestDatabase;
let tredis: TestRedis;
let worker: ChildProcess | undefined;
let workerOut = "";
let traffic: ChildProcess | undefined;
let trafficOut = "";
let base: string;
// The internal listener (/metrics, /healthz, /readyz); `base` is the public one.
let internalBase: string;
let prometheus: ChildProcess | undefined;
let promDir: string | undefined;
let tempDir: string | undefined;

async function metrics(): Promise<string> {
  return (await fetch(`${internalBase}/metrics`)).text();
}

beforeAll(async () => {
  const port = await freePort();
  const internalPort = await freePort();
  internalBase = `http://127.0.0.1:${internalPort}`;
  base = `http://127.0.0.1:${port}`;
  emulator = await startEmulator({ accounts: ACCOUNTS, messages: 10, seed: 5, pushEndpoint: `${base}/pubsub/push` });
  tdb = await createTestDatabase();
  tredis = await createTestRedis();
  tempDir = mkdtempSync(path.join(tmpdir(), "gmail-sync-compose-"));

  // The worker service's environment as compose would pass it with nothing set, then pointed here.
  const local = (v: string) =>
    v.replaceAll("http://emulator:8085", emulator.url).replaceAll("http://worker:9464", base);
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries(service("worker").environment)) {
    env[k] = local(String(v).replace(/\$\{\w+:-([^}]*)\}/g, "$1"));
  }
  // Compose mounts its secrets as files under /run/secrets and the service names them in X_FILE
  // variables: here the same files, with this run's values, in a private directory.
  const secretValues: Record<string, string> = {
    database_url: tdb.url,
    token_encryption_key: randomBytes(32).toString("base64"),
    google_client_secret: DEFAULT_CLIENT_SECRET, // what deploy/make-secrets.sh writes for the demo
    operator_token: OPERATOR_TOKEN,
    changes_api_token: CHANGES_TOKEN,
  };
  for (const [k, v] of Object.entries(env)) {
    const secret = /^\/run\/secrets\/(\w+)$/.exec(v)?.[1];
    if (secret === undefined) continue;
    expect(k.endsWith("_FILE"), k).toBe(true);
    expect(secretValues[secret], `a value for the secret ${secret}`).toBeDefined();
    env[k] = path.join(tempDir, `secret-${secret}`);
    writeFileSync(env[k], `${secretValues[secret]}\n`, { mode: 0o600 });
  }
  Object.assign(env, {
    REDIS_URL: tredis.url,
    QUEUE_PREFIX: `{${tredis.prefix}}`,
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: String(port),
    INTERNAL_HTTP_HOST: "127.0.0.1",
    INTERNAL_HTTP_PORT: String(internalPort),
    ATTACHMENT_TEMP_DIR: tempDir,
    // Share the two cores politely, and let the generated hostile attachments time out in 3 s
    // rather than 30: everything else is the compose file's.
    WORKER_CONCURRENCY: "2",
    EXTRACT_POOL_SIZE: "1",
    EXTRACT_TIMEOUT_MS: "3000",
    LOG_LEVEL: "warn",
  });
  expect(Object.values(env).some((v) => v.includes("emulator:") || v.includes("worker:") || v.includes("${"))).toBe(
    false,
  );

  worker = spawn(process.execPath, [cliPath, ...service("worker").command], {
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  worker.stdout?.on("data", (d) => (workerOut += String(d)));
  worker.stderr?.on("data", (d) => (workerOut += String(d)));

  // The service's healthcheck, run as Docker would (CMD form), against this port.
  const [form, ...check] = service("worker").healthcheck.test as [string, ...string[]];
  expect(form).toBe("CMD");
  expect(check[0]).toBe("node");
  await waitFor(
    "the worker healthcheck to pass",
    async () => {
      if (worker?.exitCode !== null) throw new Error(`serve exited ${worker?.exitCode}: ${workerOut}`);
      const r = spawnSync(
        process.execPath,
        check.slice(1).map((a) => a.replace("127.0.0.1:9465", `127.0.0.1:${internalPort}`)),
        { timeout: 10_000 },
      );
      return r.status === 0;
    },
    60_000,
    300,
  );

  const script = local(service("traffic").command[0] as string);
  const [cmd, ...args] = service("traffic").entrypoint as [string, ...string[]];
  expect(cmd).toBe("node");
  // With the service's environment too: the script mints its connect links with the CLI.
  traffic = spawn(process.execPath, [...args, script], {
    cwd: repoRoot,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...env },
    stdio: ["ignore", "pipe", "pipe"],
  });
  traffic.stdout?.on("data", (d) => (trafficOut += String(d)));
  traffic.stderr?.on("data", (d) => (trafficOut += String(d)));
}, 120_000);

afterAll(async () => {
  prometheus?.kill("SIGTERM");
  traffic?.kill("SIGTERM");
  if (worker && worker.exitCode === null) {
    const exited = new Promise((r) => worker?.once("exit", r));
    worker.kill("SIGTERM");
    await Promise.race([exited, sleep(30_000, undefined, { ref: false })]);
    if (worker.exitCode === null) worker.kill("SIGKILL");
  }
  await emulator?.close();
  await tredis?.cleanup();
  await tdb?.drop();
  for (const d of [promDir, tempDir]) if (d) rmSync(d, { recursive: true, force: true });
});

it("connects both mailboxes through the OAuth flow and delivered mail reaches Postgres by push", async () => {
  await waitFor(
    "the script to report both connections",
    async () => trafficOut.includes("connect bob@example.com: HTTP"),
    30_000,
    200,
  );
  expect(trafficOut).toContain("connect alice@example.com: HTTP 200");
  expect(trafficOut).toContain("connect bob@example.com: HTTP 200");
  const accounts = await tdb.db
    .selectFrom("accounts")
    .select(["email", "status", "refresh_token_encrypted"])
    .orderBy("email")
    .execute();
  expect(accounts.map((a) => [a.email, a.status])).toEqual(ACCOUNTS.map((e) => [e, "active"]));
  expect(accounts.every((a) => a.refresh_token_encrypted?.startsWith("v1."))).toBe(true);

  // The script delivers one message every 2 s, alternating mailboxes: at least one per mailbox
  // arrives through an accepted push and an incremental sync.
  await waitFor(
    "pushed mail stored for both accounts",
    async () => {
      const rows = await tdb.db
        .selectFrom("messages")
        .innerJoin("accounts", "accounts.id", "messages.account_id")
        .select(["accounts.email", (eb) => eb.fn.countAll<number>().as("n")])
        .groupBy("accounts.email")
        .execute();
      const stored = new Map(rows.map((r) => [r.email, Number(r.n)]));
      if (process.env.OBS_DEBUG) {
        const m = parseExposition(await metrics()).filter(
          (x) =>
            /push_requests|messages_total|watch_renewals|gmail_sync_accounts$|queue_jobs/.test(x.name) && x.value > 0,
        );
        console.log(
          JSON.stringify([...stored]),
          JSON.stringify(m.map((x) => [x.name, x.labels, x.value])),
          workerOut.slice(-1500),
          trafficOut.slice(-300),
        );
      }
      return ACCOUNTS.every((e) => (stored.get(e) ?? 0) > 10);
    },
    60_000,
    1000,
  );
  await waitFor(
    "an accepted push",
    async () => {
      return parseExposition(await metrics()).some(
        (x) => x.name === "gmail_sync_push_requests_total" && x.labels.outcome === "accepted" && x.value > 0,
      );
    },
    30_000,
    500,
  );
  expect(traffic?.exitCode).toBeNull(); // still running: it loops until stopped
  expect(worker?.exitCode).toBeNull();
}, 120_000);

it("serves the operator page and the change feed on the internal listener, each behind its own token", async () => {
  const get = (p: string, token?: string) =>
    fetch(`${internalBase}${p}`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  expect((await get("/operator/accounts")).status).not.toBe(200);
  const page = await get("/operator/accounts", OPERATOR_TOKEN);
  expect(page.status).toBe(200);
  expect(await page.text()).toContain("alice@example.com");
  expect((await get("/changes?limit=1")).status).toBe(401);
  expect((await get("/changes?limit=1", "x".repeat(32))).status).toBe(401);
  const feed = await get("/changes?limit=5", CHANGES_TOKEN);
  expect(feed.status).toBe(200);
  expect(((await feed.json()) as { changes: unknown[] }).changes.length).toBeGreaterThan(0);
});

it("a real Prometheus scraping it runs every dashboard and alert query; the core panels have data", async (ctx) => {
  if (!hasBinary("prometheus")) {
    skipNotice("prometheus", "prometheus");
    ctx.skip();
  }
  // prometheus/prometheus.yml with the worker found on 127.0.0.1 instead of compose DNS, scraped every
  // second, and twice under two instance names: two replicas, as `--scale worker=2` gives, which
  // export the same state gauges (both read the one Postgres and Redis).
  const promPort = await freePort();
  const workerPort = new URL(internalBase).port;
  promDir = mkdtempSync(path.join(tmpdir(), "gmail-sync-prom-"));
  const config = readFileSync(rel("prometheus/prometheus.yml"), "utf8")
    .replace(/scrape_interval: 15s/, "scrape_interval: 1s")
    .replace(/evaluation_interval: 15s/, "evaluation_interval: 1s")
    .replace(
      /dns_sd_configs:\n\s+- names: \[worker\]\n\s+type: A\n\s+# [^\n]*\n\s+port: 9465\n\s+refresh_interval: 30s/,
      `static_configs:\n      - targets: ["127.0.0.1:${workerPort}"]\n        labels: { instance: w1 }\n      - targets: ["127.0.0.1:${workerPort}"]\n        labels: { instance: w2 }`,
    )
    .replace(/localhost:9090/, `127.0.0.1:${promPort}`);
  expect(config).toContain(`127.0.0.1:${workerPort}`);
  writeFileSync(path.join(promDir, "prometheus.yml"), config);
  writeFileSync(path.join(promDir, "alerts.yml"), readFileSync(rel("prometheus/alerts.yml")));
  prometheus = spawn(
    "prometheus",
    [
      `--config.file=${path.join(promDir, "prometheus.yml")}`,
      `--storage.tsdb.path=${path.join(promDir, "data")}`,
      `--web.listen-address=127.0.0.1:${promPort}`,
    ],
    { stdio: "ignore" },
  );
  const api = `http://127.0.0.1:${promPort}/api/v1`;
  const query = async (q: string): Promise<{ status: string; error?: string; data?: { result: unknown[] } }> => {
    const res = await fetch(`${api}/query?query=${encodeURIComponent(q)}`);
    return (await res.json()) as { status: string; error?: string; data?: { result: unknown[] } };
  };
  // Enough scrapes for rate() over Grafana's 1m $__rate_interval substitute to have two points.
  await waitFor(
    "Prometheus to scrape the worker",
    async () => {
      try {
        const r = await query('up{job="gmail-sync"} == 1');
        return (r.data?.result.length ?? 0) > 0;
      } catch {
        return false;
      }
    },
    30_000,
    250,
  );
  await new Promise((r) => setTimeout(r, 4000));

  await waitFor(
    "both replicas scraped",
    async () => ((await query('up{job="gmail-sync"} == 1')).data?.result.length ?? 0) === 2,
    30_000,
    250,
  );

  const failures: string[] = [];
  const empty: string[] = [];
  const results = new Map<string, Array<{ metric: Record<string, string>; value: [number, string] }>>();
  for (const q of [...dashboardQueries(), ...alertQueries()]) {
    const r = await query(substituteGrafanaMacros(q.expr));
    results.set(q.expr, (r.data?.result ?? []) as Array<{ metric: Record<string, string>; value: [number, string] }>);
    if (r.status !== "success") failures.push(`${q.where}: ${r.error} in ${q.expr}`);
    else if ((r.data?.result.length ?? 0) === 0) empty.push(q.where);
  }
  if (process.env.OBS_DEBUG) console.log(`queries without data: ${empty.join(", ")}`);
  expect(failures).toEqual([]);
  // Panels that must show data after this run (others depend on events it did not cause: 429s, resyncs…).
  for (const panel of [
    "Sync throughput by direction",
    "Accounts by status",
    "Queue depth by queue and state",
    "API request rate by method and code",
    "Quota units/s vs configured limit",
    "Push outcomes",
    "Attachments by route",
    "Attachment processing time (heatmap)",
    "Watch expiry (soonest)",
    "Backfill progress (summed)",
  ]) {
    expect(empty, `panel "${panel}" has no data`).not.toContain(`panel "${panel}"`);
  }

  // Two replicas do not double the state gauges: the panels count the two accounts, not four.
  const byTitle = (title: string) =>
    dashboardQueries()
      .filter((q) => q.where === `panel "${title}"`)
      .map((q) => results.get(q.expr) ?? []);
  const total = (rows: Array<{ value: [number, string] }>) => rows.reduce((a, r) => a + Number(r.value[1]), 0);
  expect(total(byTitle("Accounts by status")[0] ?? [])).toBe(ACCOUNTS.length);
  expect(total(byTitle("Accounts syncing")[0] ?? [])).toBe(ACCOUNTS.length);
}, 90_000);
