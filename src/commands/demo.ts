// `gmail-sync demo` (= `npm run demo`): see src/demo/run-demo.ts. Exit 1 when the database does not
// match the mailbox.
import { type Command, InvalidArgumentError } from "commander";
import pino from "pino";
import { loadConfig } from "../config.ts";
import { createLogger } from "../log.ts";

export function registerDemoCommand(program: Command): void {
  program
    .command("demo")
    .description("run the whole product against the bundled Gmail emulator: OAuth, backfill, push-driven sync, summary")
    .option(
      "--messages <n>",
      "messages per generated mailbox",
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 10 || n > 100_000)
          throw new InvalidArgumentError(`must be an integer from 10 to 100000, got ${JSON.stringify(v)}`);
        return n;
      },
      1000,
    )
    .option(
      "--seed <n>",
      "mailbox generator seed",
      (v) => {
        const n = Number(v);
        if (!Number.isInteger(n) || n < 0)
          throw new InvalidArgumentError(`must be a non-negative integer, got ${JSON.stringify(v)}`);
        return n;
      },
      1,
    )
    .option("--keep-running", "leave the emulator, server and workers up afterwards (Ctrl-C stops them)")
    .option("--json", "print the summary as one JSON object on the last line of stdout")
    .action(async (opts: { messages: number; seed: number; keepRunning?: boolean; json?: boolean }) => {
      const config = loadConfig();
      // Loaded here, not at the top: the production image has no src/demo/ nor the packages it
      // uses (nodemailer, the emulator's mail generator), and every other command must start there.
      const { runDemo } = await import("../demo/run-demo.ts");
      const { formatSummary } = await import("../demo/summary.ts");
      // Logs (warnings and up, unless LOG_LEVEL says otherwise) go to stderr: stdout is the demo's.
      const log = createLogger(process.env.LOG_LEVEL ?? "warn", pino.destination({ dest: 2, sync: true }));
      const say = opts.json
        ? (line: string) => process.stderr.write(`${line}\n`)
        : (line: string) => process.stdout.write(`${line}\n`);
      const { summary, done } = await runDemo({
        messages: opts.messages,
        seed: opts.seed,
        keepRunning: opts.keepRunning === true,
        tty: !opts.json && process.stdout.isTTY === true,
        say,
        log,
      });
      say(formatSummary(summary));
      if (opts.json) console.log(JSON.stringify(summary));
      if (opts.keepRunning) {
        say(`still running (database ${new URL(config.DATABASE_URL).pathname.slice(1)}); Ctrl-C to stop`);
        await done;
      }
      if (!summary.match) throw new Error("the database does not match the mailbox (see the summary)");
      if (summary.tempFilesLeft !== 0) throw new Error(`${summary.tempFilesLeft} temp files were left behind`);
    });
}
