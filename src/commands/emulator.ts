// `gmail-sync emulator`: runs the local Gmail emulator (Gmail API, OAuth2, Pub/Sub push, control
// API) until SIGINT/SIGTERM, printing one JSON line with its URLs when it is ready.
import type { Command } from "commander";
import { startEmulator } from "../emulator/server.ts";

function int(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isInteger(n) || n < 0) throw new Error(`--${name} must be a non-negative integer`);
    return n;
  };
}

function rate(name: string) {
  return (v: string) => {
    const n = Number(v);
    if (!Number.isFinite(n) || n < 0 || n > 1) throw new Error(`--${name} must be between 0 and 1`);
    return n;
  };
}

interface EmulatorCliOptions {
  port: number;
  host: string;
  seed: number;
  messages: number;
  accounts: string;
  attachments: boolean;
  largeAttachment?: boolean;
  hostile: boolean;
  quotaUnitsPerSecond: number;
  historyRetentionHours: number;
  latencyMs: number;
  faultRate: number;
  pushEndpoint?: string;
  pushAudience?: string;
  pushDropRate: number;
  pushDuplicateRate: number;
  pushDelayMs: number;
  publicUrl?: string;
}

export function registerEmulatorCommand(program: Command): void {
  program
    .command("emulator")
    .description("run the local Gmail emulator (Gmail API v1, OAuth2, Pub/Sub push, control API)")
    .option("--port <n>", "port to listen on", int("port"), 8085)
    .option("--host <host>", "address to bind", "127.0.0.1")
    .option("--public-url <url>", "origin clients use to reach it, for the printed URLs (default http://<host>:<port>)")
    .option("--seed <n>", "seed for generated mail, ids and faults", int("seed"), 1)
    .option("--messages <n>", "messages generated per account at start", int("messages"), 0)
    .option("--accounts <list>", "comma-separated mailbox addresses", "alice@example.com")
    .option("--no-attachments", "generated mail has no attachments")
    .option("--no-hostile", "generated mail has only ordinary attachments (no timeout PDF, zip bomb…)")
    .option("--large-attachment", "generated mailboxes include one 60 MB attachment")
    .option("--quota-units-per-second <n>", "per-user quota (0 = off)", int("quota-units-per-second"), 250)
    .option("--history-retention-hours <n>", "how long history records are kept", int("history-retention-hours"), 168)
    .option("--latency-ms <n>", "delay added to every answer", int("latency-ms"), 0)
    .option("--fault-rate <r>", "share of Gmail requests answered 500/503 or dropped", rate("fault-rate"), 0)
    .option("--push-endpoint <url>", "where Pub/Sub push notifications are POSTed")
    .option("--push-audience <aud>", "aud claim of push tokens (default: the push endpoint)")
    .option("--push-drop-rate <r>", "share of notifications never delivered", rate("push-drop-rate"), 0)
    .option("--push-duplicate-rate <r>", "share of notifications delivered twice", rate("push-duplicate-rate"), 0)
    .option("--push-delay-ms <n>", "delay before a notification's first delivery", int("push-delay-ms"), 0)
    .action(async (opts: EmulatorCliOptions) => {
      const started = performance.now();
      const emu = await startEmulator({
        port: opts.port,
        host: opts.host,
        seed: opts.seed,
        messages: opts.messages,
        accounts: opts.accounts.split(",").map((a) => a.trim()).filter(Boolean),
        attachments: opts.attachments,
        hostile: opts.hostile,
        largeAttachment: opts.largeAttachment ?? false,
        quotaUnitsPerSecond: opts.quotaUnitsPerSecond,
        historyRetentionHours: opts.historyRetentionHours,
        latencyMs: opts.latencyMs,
        faultRate: opts.faultRate,
        pushDropRate: opts.pushDropRate,
        pushDuplicateRate: opts.pushDuplicateRate,
        pushDelayMs: opts.pushDelayMs,
        ...(opts.pushEndpoint !== undefined ? { pushEndpoint: opts.pushEndpoint } : {}),
        ...(opts.pushAudience !== undefined ? { pushAudience: opts.pushAudience } : {}),
        ...(opts.publicUrl !== undefined ? { publicUrl: opts.publicUrl } : {}),
      });
      const { control: _control, close, ...info } = emu;
      console.log(JSON.stringify({ ...info, readyMs: Math.round(performance.now() - started) }));
      await new Promise<void>((resolve) => {
        const stop = () => {
          process.off("SIGINT", stop);
          process.off("SIGTERM", stop);
          void close().then(resolve, resolve);
        };
        process.on("SIGINT", stop);
        process.on("SIGTERM", stop);
      });
    });
}
