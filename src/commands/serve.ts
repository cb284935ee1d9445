// `gmail-sync serve`: the HTTP endpoints (push, OAuth, metrics, health) and, unless --no-worker,
// the workers. SIGTERM/SIGINT: stop accepting, let running pages finish, exit 0 within 30 s.
import { type Command, InvalidArgumentError } from "commander";
import { createApp } from "../app.ts";
import { loadConfig } from "../config.ts";
import { createLogger } from "../log.ts";
import { startServer } from "../server.ts";

export function registerServeCommand(program: Command): void {
  program
    .command("serve")
    .description(
      "serve POST /pubsub/push and /oauth2/start|callback (public listener), /metrics, /healthz, /readyz (internal listener), and run the workers",
    )
    .option("--no-worker", "HTTP only; run `gmail-sync worker` elsewhere")
    .option("--port <port>", "listen on this port (default HTTP_PORT)", (v) => {
      const n = Number(v);
      if (!Number.isInteger(n) || n < 0 || n > 65535)
        throw new InvalidArgumentError(`must be a port number, got ${JSON.stringify(v)}`);
      return n;
    })
    .action(async (opts: { worker: boolean; port?: number }) => {
      const config = loadConfig(
        opts.port !== undefined ? { ...process.env, HTTP_PORT: String(opts.port) } : process.env,
      );
      const log = createLogger(config.LOG_LEVEL);
      const app = createApp(config, { log });
      let server;
      try {
        server = await startServer(app, { worker: opts.worker });
      } catch (err) {
        await app.close();
        throw err;
      }
      const signal = await new Promise<string>((resolve) => {
        process.once("SIGTERM", () => resolve("SIGTERM"));
        process.once("SIGINT", () => resolve("SIGINT"));
      });
      log.info({ signal }, "shutting down");
      const outcome = await server.close();
      if (outcome === "forced")
        log.warn("running jobs did not finish in time: abandoned (they resume from their checkpoints)");
      await app.close();
      log.info("stopped");
    });
}
