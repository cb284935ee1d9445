// The compose demo without Docker: the `traffic` service's script, taken verbatim from
// docker-compose.yml with only the service host names replaced, runs against a local stack built
// the way the worker service is (HTTP server with the OAuth and push routes, workers, the emulator
// pushing signed notifications). It must connect both mailboxes through /oauth2/start → consent →
// callback, and the mail it delivers must reach Postgres through pushes.
import { type ChildProcess, spawn } from "node:child_process";
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
import { freePort, rel } from "./tools.ts";

const ACCOUNTS = ["alice@example.com", "bob@example.com"];
let h: Harness;
let server: FastifyInstance;
let workers: RunningWorkers;
let traffic: ChildProcess | undefined;
let trafficOut = "";

beforeAll(async () => {
  const port = await freePort();
  const base = `http://127.0.0.1:${port}`;
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
  traffic?.kill("SIGTERM");
  await workers?.close();
  await server?.close();
  await h?.close();
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
