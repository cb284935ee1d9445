// The process's two HTTP listeners. The internal one (buildHttpServer: /metrics, /healthz, /readyz)
// binds loopback by default: what it tells (queue depths, accounts, errors) is for the operator.
// The public one (buildPublicServer) carries only what Google must reach — callers register the
// Pub/Sub push and OAuth routes on it — plus /healthz for a load balancer. Both: a body limit (413
// past HTTP_BODY_LIMIT_BYTES), request timeouts, security headers, request logging without query
// strings, and 5xx answers that say nothing about the inside (the details go to the log).
import { readFileSync } from "node:fs";
import type { Queue } from "bullmq";
import Fastify, { type FastifyBaseLogger, type FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import type { Config } from "./config.ts";
import type { Db } from "./db/database.ts";
import { migrationsApplied, pingDb } from "./db/migrate.ts";
import type { Logger } from "./log.ts";
import { registerChangesRoute } from "./feed/http-route.ts";
import { registerScrapeCollectors } from "./metrics-collect.ts";
import { buildInfo, registry } from "./metrics.ts";
import net from "node:net";

export interface HttpDeps {
  config: Config;
  log: Logger;
  db: Db;
  redis: Redis;
  queues?: { backfill: Queue; incremental: Queue; maintenance: Queue };
  /** Passed to the scrape collectors; tests use 0 to see every change. */
  metricsReuseMs?: number;
}

const CHECK_TIMEOUT_MS = 2_000;
const { version } = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as {
  version: string;
};

/** Resolves to null when the check passed, or to why it failed (never rejects, never hangs). */
async function probe(run: () => Promise<unknown>): Promise<string | null> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<string>((resolve) => {
    timer = setTimeout(() => resolve(`no answer within ${CHECK_TIMEOUT_MS} ms`), CHECK_TIMEOUT_MS);
  });
  try {
    return await Promise.race([run().then(() => null), timeout]);
  } catch (err) {
    const e = err as { code?: string; message?: string };
    return e.code ?? e.message ?? String(err);
  } finally {
    clearTimeout(timer);
  }
}

/** What every response carries: nothing here is ever HTML to render, framed, sniffed or cached. */
const SECURITY_HEADERS: Record<string, string> = {
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "content-security-policy": "default-src 'none'; frame-ancestors 'none'",
  "referrer-policy": "no-referrer",
  "cross-origin-resource-policy": "same-origin",
};

/**
 * A Fastify instance with the hardening both listeners share. (Four static headers and an error
 * handler: a helmet plugin would add HTML-page policies this JSON/text service has no use for.)
 */
function hardenedServer(deps: Pick<HttpDeps, "config" | "log">, component: string): FastifyInstance {
  const { config } = deps;
  // Request URLs are logged without their query string: the legacy Pub/Sub push mode carries its
  // shared token there, a connect link its signature. Bodies are never logged.
  const log = deps.log.child(
    { component },
    {
      serializers: {
        req: (req: { method?: string; url?: string; ip?: string }) => ({
          method: req.method,
          url: req.url?.split("?")[0],
          remoteAddress: req.ip,
        }),
      },
    },
  );
  const app: FastifyInstance = Fastify({
    loggerInstance: log as FastifyBaseLogger,
    bodyLimit: config.HTTP_BODY_LIMIT_BYTES,
    requestTimeout: config.HTTP_REQUEST_TIMEOUT_MS,
    connectionTimeout: config.HTTP_REQUEST_TIMEOUT_MS,
    keepAliveTimeout: 5_000,
    // Node checks the request timeout only this often (30 s by default): a slow client would get
    // up to twice the timeout.
    http: {
      connectionsCheckingInterval: Math.min(5_000, config.HTTP_REQUEST_TIMEOUT_MS),
      headersTimeout: config.HTTP_REQUEST_TIMEOUT_MS,
    },
  });
  app.addHook("onSend", async (_req, reply, payload) => {
    for (const [k, v] of Object.entries(SECURITY_HEADERS)) reply.header(k, v);
    return payload;
  });
  app.setErrorHandler((err: { statusCode?: number; message?: string; code?: string }, req, reply) => {
    const status =
      typeof err.statusCode === "number" && err.statusCode >= 400 && err.statusCode < 600 ? err.statusCode : 500;
    if (status >= 500) {
      req.log.error({ err: err.message, code: err.code }, "request failed");
      return reply.code(status).send({ error: "internal error" });
    }
    // A client error (bad JSON, too large, rate limited) says what was wrong with the request.
    return reply.code(status).send({ error: err.message ?? "bad request" });
  });
  return app;
}

/** The public listener: register the push and OAuth routes on it, then listen(…, "public"). */
export function buildPublicServer(deps: Pick<HttpDeps, "config" | "log">): FastifyInstance {
  const app = hardenedServer(deps, "http-public");
  app.get("/healthz", { logLevel: "warn" }, async () => ({ status: "ok" }));
  return app;
}

/** The internal listener: /metrics, /healthz and /readyz. */
export function buildHttpServer(deps: HttpDeps): FastifyInstance {
  const { config } = deps;
  const app = hardenedServer(deps, "http");
  const log = deps.log.child({ component: "http" });

  const collect = registerScrapeCollectors({
    db: deps.db,
    config,
    log,
    // Only the three queues: callers may pass the whole Queues bundle from src/jobs.ts.
    ...(deps.queues
      ? {
          queues: {
            backfill: deps.queues.backfill,
            incremental: deps.queues.incremental,
            maintenance: deps.queues.maintenance,
          },
        }
      : {}),
    ...(deps.metricsReuseMs !== undefined ? { reuseMs: deps.metricsReuseMs } : {}),
  });
  buildInfo.set({ version, node_version: process.version }, 1);

  // Scrapes and probes arrive every few seconds: log them only when something goes wrong.
  const quiet = { logLevel: "warn" as const };

  app.get("/metrics", quiet, async (_req, reply) => {
    await collect();
    const body = await registry.metrics();
    return reply.header("content-type", registry.contentType).send(body);
  });

  app.get("/healthz", quiet, async () => ({ status: "ok" }));

  app.get("/readyz", quiet, async (_req, reply) => {
    const [postgres, redis] = await Promise.all([probe(() => pingDb(deps.db)), probe(() => deps.redis.ping())]);
    let migrations: string | null = postgres === null ? null : "skipped: postgres unavailable";
    if (postgres === null) {
      migrations = await probe(async () => {
        if (!(await migrationsApplied(deps.db))) throw new Error("pending migrations (run `gmail-sync migrate`)");
      });
    }
    const checks = { postgres: postgres ?? "ok", redis: redis ?? "ok", migrations: migrations ?? "ok" };
    const ready = postgres === null && redis === null && migrations === null;
    if (!ready) log.warn({ checks }, "not ready");
    return reply.code(ready ? 200 : 503).send({ status: ready ? "ready" : "not_ready", checks });
  });

  // GET /changes: the change feed, behind its bearer token (404 when none is configured).
  registerChangesRoute(app, { config, db: deps.db, log });

  return app;
}

/**
 * A TCP port free right now on 127.0.0.1 — `preferred` if it is, else any — for servers whose URL
 * must be known before they listen (an OAuth redirect URI, a push audience).
 */
export function freePort(preferred = 0): Promise<number> {
  const tryListen = (port: number) =>
    new Promise<number>((resolve, reject) => {
      const s = net.createServer();
      s.unref();
      s.once("error", reject);
      s.listen(port, "127.0.0.1", () => {
        const p = (s.address() as net.AddressInfo).port;
        s.close(() => resolve(p));
      });
    });
  return tryListen(preferred).catch(() => tryListen(0));
}

/**
 * Starts listening — the public listener on HTTP_HOST:HTTP_PORT, the internal one on
 * INTERNAL_HTTP_HOST:INTERNAL_HTTP_PORT (0 = any free port) — and returns the base URL.
 */
export async function listen(
  app: FastifyInstance,
  config: Config,
  which: "public" | "internal" = "internal",
): Promise<string> {
  const host = which === "public" ? config.HTTP_HOST : config.INTERNAL_HTTP_HOST;
  const port = which === "public" ? config.HTTP_PORT : config.INTERNAL_HTTP_PORT;
  await app.listen({ host, port });
  const address = app.server.address();
  if (address === null || typeof address === "string") return String(address);
  const shownHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : address.address;
  const shown = shownHost.includes(":") ? `[${shownHost}]` : shownHost;
  return `http://${shown}:${address.port}`;
}
