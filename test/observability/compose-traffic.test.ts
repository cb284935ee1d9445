// The compose demo without Docker: the `traffic` service's script, taken verbatim from
// docker-compose.yml with only the service host names replaced, runs against a local stack built
// the way the worker service is (HTTP server with the OAuth and push routes, workers, the emulator
// pushing signed notifications). It must connect both mailboxes through /oauth2/start → consent →
// callback, and the mail it delivers must reach Postgres through pushes. Then a real Prometheus
// (Debian's, when installed) scrapes that server with prometheus/prometheus.yml's rules, and every
// dashboard and alert query runs without error, the core panels returning data.
import { type ChildProcess, spawn } from "node:child_process";
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import type { FastifyInstance } from "fastify";
import { readFileSync } from "node:fs";
import { afterAll, beforeAll, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { DEFAULT_PUSH_SERVICE_ACCOUNT } from "../../src/emulator/server.ts";
import { buildHttpServer, listen } from "../../src/http.ts";
import { createLogger } from "../../src/log.ts";
import { registerOAuthRoutes } from "../../src/oauth-routes.ts";
import { createPushAuthenticator } from "../../src/pubsub.ts";
import { registerPushRoute } from "../../src/push-route.ts";
import { parseKeyRing } from "../../src/token-crypto.ts";
import { renewWatch } from "../../src/watch.ts";
import type { RunningWorkers } from "../../src/worker.ts";
import { type Harness, startHarness, waitFor } from "../sync/harness.ts";
import { parseExposition } from "./exposition.ts";
import { alertQueries, dashboardQueries, substituteGrafanaMacros } from "./promql.ts";
import { freePort, hasBinary, rel, skipNotice } from "./tools.ts";

const ACCOUNTS = ["alice@example.com", "bob@example.com"];
let h: Harness;
let server: FastifyInstance;
let workers: RunningWorkers;
let traffic: ChildProcess | undefined;
let trafficOut = "";
let base: string;
let prometheus: ChildProcess | undefined;
let promDir: string | undefined;

beforeAll(async () => {
  const port = await freePort();
  base = `http://127.0.0.1:${port}`;
  h = await startHarness({
    emulator: { accounts: ACCOUNTS, messages: 10, seed: 5, pushEndpoint: `${base}/pubsub/push` },
    env: {
      HTTP_HOST: "127.0.0.1",
      HTTP_PORT: String(port),
      GOOGLE_OAUTH_REDIRECT_URI: `${base}/oauth2/callback`,
      PUBSUB_TOPIC: "projects/gmail-sync-emulator/topics/gmail",
      PUBSUB_AUDIENCE: `${base}/pubsub/push`,
      PUBSUB_SERVICE_ACCOUNT: DEFAULT_PUSH_SERVICE_ACCOUNT,
      INCLUDE_SPAM_TRASH: "true",
      EXTRACT_TIMEOUT_MS: "3000",
    },
  });
  const { app } = h;
  const log = createLogger("silent");
  server = buildHttpServer({ config: app.config, log, db: app.db, redis: app.redis, queues: app.queues });
  registerOAuthRoutes(server, {
    db: app.db,
    redis: app.redis,
    config: app.config,
    keyRing: parseKeyRing(h.env.TOKEN_ENCRYPTION_KEY as string),
    log,
    onConnected: async (id) => {
      await app.enqueueBackfill(id, { reason: "connect" });
      await renewWatch({ db: app.db, config: app.config, log, gmailFactory: app.gmailFactory }, id);
    },
  });
  registerPushRoute(server, {
    db: app.db,
    redis: app.redis,
    log,
    keyPrefix: app.config.QUEUE_PREFIX,
    authenticate: createPushAuthenticator({ certsUrl: app.config.GOOGLE_CERTS_URL, audience: app.config.PUBSUB_AUDIENCE, serviceAccount: app.config.PUBSUB_SERVICE_ACCOUNT, verificationToken: undefined }),
    enqueueIncremental: (id, opts) => app.enqueueIncremental(id, opts),
  });
  expect(await listen(server, app.config)).toBe(base);
  workers = app.startWorkers({ maintenance: false });

  const compose = parseYaml(readFileSync(rel("docker-compose.yml"), "utf8")) as { services: { traffic: { command: string[]; entrypoint: string[] } } };
  const script = (compose.services.traffic.command[0] as string).replaceAll("http://worker:9464", base).replaceAll("http://emulator:8085", h.emulator.url);
  const [cmd, ...args] = compose.services.traffic.entrypoint as [string, ...string[]];
  expect(cmd).toBe("node");
  traffic = spawn(process.execPath, [...args, script], { stdio: ["ignore", "pipe", "pipe"] });
  traffic.stdout?.on("data", (d) => (trafficOut += String(d)));
  traffic.stderr?.on("data", (d) => (trafficOut += String(d)));
}, 120_000);

afterAll(async () => {
  prometheus?.kill("SIGTERM");
  traffic?.kill("SIGTERM");
  await workers?.close();
  await server?.close();
  await h?.close();
  if (promDir) rmSync(promDir, { recursive: true, force: true });
});

it("connects both mailboxes through the OAuth flow and delivered mail reaches Postgres by push", async () => {
  await waitFor("the script to report both connections", async () => trafficOut.includes("connect bob@example.com: HTTP"), 30_000, 200);
  expect(trafficOut).toContain("connect alice@example.com: HTTP 200");
  expect(trafficOut).toContain("connect bob@example.com: HTTP 200");
  const accounts = await h.app.db.selectFrom("accounts").select(["email", "status", "refresh_token_encrypted"]).orderBy("email").execute();
  expect(accounts.map((a) => [a.email, a.status])).toEqual(ACCOUNTS.map((e) => [e, "active"]));
  expect(accounts.every((a) => a.refresh_token_encrypted?.startsWith("v1."))).toBe(true);

  // The script delivers one message every 2 s, alternating mailboxes: at least one per mailbox
  // arrives through an accepted push and an incremental sync.
  await waitFor("pushed mail stored for both accounts", async () => {
    const rows = await h.app.db
      .selectFrom("messages")
      .innerJoin("accounts", "accounts.id", "messages.account_id")
      .select(["accounts.email", (eb) => eb.fn.countAll<number>().as("n")])
      .groupBy("accounts.email")
      .execute();
    const stored = new Map(rows.map((r) => [r.email, Number(r.n)]));
    return ACCOUNTS.every((e) => (stored.get(e) ?? 0) > 10);
  }, 60_000, 500);
  await waitFor("an accepted push", async () => {
    const res = await server.inject({ method: "GET", url: "/metrics" });
    return parseExposition(res.body).some((x) => x.name === "gmail_sync_push_requests_total" && x.labels.outcome === "accepted" && x.value > 0);
  }, 30_000, 500);
  expect(traffic?.exitCode).toBeNull(); // still running: it loops until stopped
}, 120_000);

it("a real Prometheus scraping it runs every dashboard and alert query; the core panels have data", async (ctx) => {
  if (!hasBinary("prometheus")) {
    skipNotice("prometheus", "prometheus");
    ctx.skip();
  }
  // prometheus/prometheus.yml with the worker found on 127.0.0.1 instead of compose DNS, scraped every second.
  const promPort = await freePort();
  const workerPort = new URL(base).port;
  promDir = mkdtempSync(path.join(tmpdir(), "gmail-sync-prom-"));
  const config = readFileSync(rel("prometheus/prometheus.yml"), "utf8")
    .replace(/scrape_interval: 15s/, "scrape_interval: 1s")
    .replace(/evaluation_interval: 15s/, "evaluation_interval: 1s")
    .replace(/dns_sd_configs:\n\s+- names: \[worker\]\n\s+type: A\n\s+port: 9464\n\s+refresh_interval: 30s/, `static_configs:\n      - targets: ["127.0.0.1:${workerPort}"]`)
    .replace(/localhost:9090/, `127.0.0.1:${promPort}`);
  expect(config).toContain(`127.0.0.1:${workerPort}`);
  writeFileSync(path.join(promDir, "prometheus.yml"), config);
  writeFileSync(path.join(promDir, "alerts.yml"), readFileSync(rel("prometheus/alerts.yml")));
  prometheus = spawn("prometheus", [`--config.file=${path.join(promDir, "prometheus.yml")}`, `--storage.tsdb.path=${path.join(promDir, "data")}`, `--web.listen-address=127.0.0.1:${promPort}`], { stdio: "ignore" });
  const api = `http://127.0.0.1:${promPort}/api/v1`;
  const query = async (q: string): Promise<{ status: string; error?: string; data?: { result: unknown[] } }> => {
    const res = await fetch(`${api}/query?query=${encodeURIComponent(q)}`);
    return (await res.json()) as { status: string; error?: string; data?: { result: unknown[] } };
  };
  // Enough scrapes for rate() over Grafana's 1m $__rate_interval substitute to have two points.
  await waitFor("Prometheus to scrape the worker", async () => {
    try {
      const r = await query('up{job="gmail-sync"} == 1');
      return (r.data?.result.length ?? 0) > 0;
    } catch {
      return false;
    }
  }, 30_000, 250);
  await new Promise((r) => setTimeout(r, 4000));

  const failures: string[] = [];
  const empty: string[] = [];
  for (const q of [...dashboardQueries(), ...alertQueries()]) {
    const r = await query(substituteGrafanaMacros(q.expr));
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
}, 90_000);
