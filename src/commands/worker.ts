// `gmail-sync worker`: runs the backfill, incremental and maintenance processors until SIGTERM or
// SIGINT, then shuts down gracefully: stop taking jobs, let the running page/sync finish and
// commit (or, past the deadline, abandon it: it resumes from its checkpoint elsewhere), close
// Redis and Postgres, exit 0 — all within 30 s (a container's stop grace period).
import { type Command, InvalidArgumentError } from "commander";
import { createApp } from "../app.ts";
import { loadConfig } from "../config.ts";
import { buildHttpServer, listen } from "../http.ts";
import { createLogger } from "../log.ts";
import { enqueueStartupTicks, ensureSchedules } from "../schedules.ts";

const SHUTDOWN_DEADLINE_MS = 25_000;

export function registerWorkerCommand(program: Command): void {
  program
    .command("worker")
    .description("run the sync workers (any number of them, on any number of machines)")
    .option("--concurrency <n>", "jobs per queue at once in this process (default WORKER_CONCURRENCY)", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 1 || n > 256)
        throw new InvalidArgumentError(`must be an integer from 1 to 256, got ${JSON.stringify(v)}`);
      return n;
    })
    .option("--no-http", "do not serve /metrics, /healthz and /readyz on INTERNAL_HTTP_PORT")
    .action(async (opts: { concurrency?: number; http: boolean }) => {
      const config = loadConfig();
      const log = createLogger(config.LOG_LEVEL);
      const app = createApp(config, { log });
      // Redis may have lost the schedulers (and everything else): recreate them, start-up ticks too.
      await ensureSchedules(app.queues.maintenance, app.redis, config, log);
      await enqueueStartupTicks(app.queues.maintenance);
      const workers = app.startWorkers(opts.concurrency !== undefined ? { concurrency: opts.concurrency } : {});
      log.info(
        { concurrency: opts.concurrency ?? config.WORKER_CONCURRENCY, prefix: config.QUEUE_PREFIX },
        "worker started",
      );
      // Every process exposes /metrics, /healthz and /readyz. A port already taken (several workers
      // on one host) costs the endpoint, not the worker: warn and keep working.
      const http = opts.http
        ? buildHttpServer({ config, log, db: app.db, redis: app.redis, queues: app.queues })
        : undefined;
      if (http !== undefined) {
        try {
          log.info({ url: await listen(http, config, "internal") }, "metrics and health endpoints listening");
        } catch (err) {
          log.warn(
            { err: (err as Error).message, port: config.INTERNAL_HTTP_PORT },
            "metrics endpoint not started (set INTERNAL_HTTP_PORT, or --no-http)",
          );
        }
      }
      const signal = await new Promise<string>((resolve) => {
        process.once("SIGTERM", () => resolve("SIGTERM"));
        process.once("SIGINT", () => resolve("SIGINT"));
      });
      log.info({ signal }, "shutting down: finishing the running jobs");
      await http?.close().catch(() => {});
      let timer: NodeJS.Timeout | undefined;
      const deadline = new Promise<"timeout">((r) => {
        timer = setTimeout(() => r("timeout"), SHUTDOWN_DEADLINE_MS);
      });
      const outcome = await Promise.race([workers.close().then(() => "closed" as const), deadline]);
      clearTimeout(timer);
      if (outcome === "timeout") {
        log.warn("running jobs did not finish in time: abandoning them (they resume from their checkpoints)");
        await workers.close({ force: true }).catch(() => {});
      }
      await app.close();
      log.info("worker stopped");
      log.flush?.();
    });
}
