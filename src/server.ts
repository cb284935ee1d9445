// The long-running service (`gmail-sync serve`, and the demo): the public listener with the Pub/Sub
// push endpoint and the OAuth routes, the internal listener with /metrics, /healthz and /readyz,
// plus — unless told otherwise — the workers in the same process. Built on an App from src/app.ts;
// owns nothing else.
import type { App } from "./app.ts";
import { buildHttpServer, buildPublicServer, listen } from "./http.ts";
import { enqueueWatchRenewal } from "./maintenance.ts";
import { registerOAuthRoutes } from "./oauth-routes.ts";
import { registerOperatorPage } from "./operator/routes.ts";
import { createPushAuthenticator } from "./pubsub.ts";
import { registerPushRoute } from "./push-route.ts";
import { enqueueStartupTicks, ensureSchedules } from "./schedules.ts";
import type { RunningWorkers } from "./worker.ts";

export interface RunningServer {
  /** The public listener (push, OAuth): what Google reaches. */
  url: string;
  /** The internal listener (/metrics, /healthz, /readyz). */
  internalUrl: string;
  workers: RunningWorkers | undefined;
  /** Stops accepting requests, then lets running jobs finish (force after the deadline). */
  close(opts?: { deadlineMs?: number }): Promise<"closed" | "forced">;
}

/** A newly connected account: its first backfill, and a watch so pushes start flowing. */
export async function accountConnected(app: App, accountId: number): Promise<void> {
  await app.enqueueBackfill(accountId, { reason: "connect" });
  await enqueueWatchRenewal(app.queues.maintenance, accountId);
}

export async function startServer(app: App, opts: { worker: boolean; concurrency?: number }): Promise<RunningServer> {
  const { config, log, db, redis } = app;
  const http = buildPublicServer({ config, log });
  const internal = buildHttpServer({ config, log, db, redis, queues: app.queues });
  // The operator page (accounts, queues, actions) on the internal listener: only with credentials.
  const operator = registerOperatorPage(internal, app);
  registerPushRoute(http, {
    db,
    redis,
    log,
    rateLimitPerMinute: config.PUSH_RATE_LIMIT_PER_MINUTE,
    keyPrefix: config.QUEUE_PREFIX,
    authenticate: createPushAuthenticator({
      certsUrl: config.GOOGLE_CERTS_URL,
      audience: config.PUBSUB_AUDIENCE,
      serviceAccount: config.PUBSUB_SERVICE_ACCOUNT,
      verificationToken: config.PUBSUB_VERIFICATION_TOKEN,
    }),
    enqueueIncremental: (accountId, o) => app.enqueueIncremental(accountId, o),
  });
  if (app.keyRing !== null) {
    registerOAuthRoutes(http, {
      db,
      redis,
      config,
      keyRing: app.keyRing,
      log,
      onConnected: (id) => accountConnected(app, id),
    });
  } else {
    log.warn("TOKEN_ENCRYPTION_KEY is not set: /oauth2/* is disabled and no account can be synced");
  }
  const workers = opts.worker
    ? app.startWorkers(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {})
    : undefined;
  // Watches that lapse within a day and orphans left by a crash are handled now, not at the next tick.
  await ensureSchedules(app.queues.maintenance, app.redis, config, log);
  await enqueueStartupTicks(app.queues.maintenance);
  const url = await listen(http, config, "public");
  const internalUrl = await listen(internal, config, "internal").catch(async (err: unknown) => {
    await http.close();
    throw err;
  });
  log.info(
    { url, internalUrl, worker: opts.worker, operatorPage: operator ? `${internalUrl}/operator/accounts` : "off" },
    "serving",
  );

  return {
    url,
    internalUrl,
    workers,
    async close(closeOpts = {}) {
      await http.close();
      await internal.close();
      if (workers === undefined) return "closed";
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<"forced">((r) => {
        timer = setTimeout(() => r("forced"), closeOpts.deadlineMs ?? 25_000);
      });
      const outcome = await Promise.race([workers.close().then(() => "closed" as const), deadline]);
      clearTimeout(timer);
      if (outcome === "forced") await workers.close({ force: true }).catch(() => {});
      return outcome;
    },
  };
}
