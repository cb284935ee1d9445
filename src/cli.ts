// The one entry point: parses the command line, runs a subcommand, maps failures to exit codes.
// Exit codes: 0 success; 1 failure (bad input, bad configuration, unreachable service, mismatch).
// Errors print as one line on stderr; --verbose adds the stack.
import { readFileSync } from "node:fs";
import { Command, CommanderError } from "commander";
import { createApp, createStoreApp } from "./app.ts";
import { type Config, loadConfig } from "./config.ts";
import { TICKS, upsertSchedules } from "./schedules.ts";
import { ensureDatabase, migrateDown, migrateToLatest, migrationStatus } from "./db/migrate.ts";
import { registerSearchCommand } from "./commands/search.ts";
import { registerServeCommand } from "./commands/serve.ts";
import { registerDemoCommand } from "./commands/demo.ts";
import { registerWorkerCommand } from "./commands/worker.ts";
import { registerAccountsCommand } from "./commands/accounts.ts";
import { registerBackfillCommand } from "./commands/backfill.ts";
import { registerSyncCommand } from "./commands/sync.ts";
import { registerDeadLettersCommand } from "./commands/dead-letters.ts";
import { registerDisconnectCommand } from "./commands/disconnect.ts";
import { registerExtractCommand } from "./commands/extract.ts";
import { registerAuthCommand } from "./commands/auth.ts";
import { registerEmulatorCommand } from "./commands/emulator.ts";
import { registerKeysCommand } from "./commands/keys.ts";
import { registerChangesCommand } from "./commands/changes.ts";
import { stderrLogger } from "./commands/cli-app.ts";

const pkg = JSON.parse(readFileSync(new URL("../package.json", import.meta.url), "utf8")) as { version: string };

/** Turns an error from any layer into one line a person can act on. */
export function describeError(err: unknown): string {
  const e = err as { code?: string; address?: string; port?: number; message?: string; errors?: unknown[] };
  if (e?.code === "ECONNREFUSED" || e?.code === "ENOTFOUND" || e?.code === "ETIMEDOUT" || e?.code === "EHOSTUNREACH") {
    const where = e.address !== undefined ? `${e.address}:${e.port ?? ""}` : "";
    return `cannot connect to ${where || "the service"} (${e.code})`;
  }
  if (err instanceof AggregateError && err.errors.length > 0) return describeError(err.errors[0]);
  if (e?.code === "3D000") return `database does not exist: ${e.message} (run \`gmail-sync migrate\`)`;
  if (e?.code === "28P01" || e?.code === "28000") return `database authentication failed: ${e.message}`;
  return e?.message ?? String(err);
}

async function upsertAllSchedules(config: Config): Promise<string[]> {
  const app = createApp(config, { log: stderrLogger(config.LOG_LEVEL), oneShot: true });
  try {
    await upsertSchedules(app.queues.maintenance, config);
    return Object.values(TICKS);
  } finally {
    await app.close();
  }
}

export function buildProgram(): Command {
  const program = new Command()
    .name("gmail-sync")
    .description("Mirror Gmail mailboxes into Postgres")
    .version(pkg.version, "-V, --version")
    .option("--verbose", "print stack traces with errors")
    // Usage errors as one line, like every other error (subcommands inherit this).
    .configureOutput({
      outputError: (str, write) => write(`gmail-sync: ${str.trim().replace(/^error: /, "")} (see --help)\n`),
    })
    .exitOverride();

  program
    .command("migrate")
    .description("create the database if missing and apply schema migrations")
    .option("--down", "undo the last applied migration")
    .option("--status", "list migrations and whether each is applied")
    .option("--json", "print the result as JSON")
    .option("--no-schedules", "do not create/update the job schedulers in Redis (database only)")
    .action(async (opts: { down?: boolean; status?: boolean; json?: boolean; schedules: boolean }) => {
      const config = loadConfig();
      const created = await ensureDatabase(config.DATABASE_URL);
      const { db, close } = createStoreApp(config, { log: stderrLogger(config.LOG_LEVEL) });
      try {
        if (opts.status) {
          const status = await migrationStatus(db);
          if (opts.json) console.log(JSON.stringify(status));
          else for (const m of status) console.log(`${m.executedAt ? "applied" : "pending"}  ${m.name}`);
          return;
        }
        const names = opts.down ? await migrateDown(db) : await migrateToLatest(db);
        // The init step is the one place the job schedulers are upserted (src/schedules.ts says why).
        const schedules = !opts.down && opts.schedules ? await upsertAllSchedules(config) : [];
        if (opts.json)
          console.log(
            JSON.stringify({
              databaseCreated: created,
              [opts.down ? "reverted" : "applied"]: names,
              ...(opts.down ? {} : { schedules }),
            }),
          );
        else {
          if (created) console.log(`created database ${new URL(config.DATABASE_URL).pathname.slice(1)}`);
          if (names.length === 0) console.log(opts.down ? "nothing to undo" : "schema is up to date");
          for (const n of names) console.log(`${opts.down ? "reverted" : "applied"}  ${n}`);
          if (schedules.length > 0) console.log(`schedules  ${schedules.join(", ")}`);
        }
      } finally {
        await close();
      }
    });

  registerSearchCommand(program);
  registerServeCommand(program);
  registerDemoCommand(program);
  registerWorkerCommand(program);
  registerAccountsCommand(program);
  registerBackfillCommand(program);
  registerSyncCommand(program);
  registerDeadLettersCommand(program);
  registerKeysCommand(program);
  registerDisconnectCommand(program);
  registerChangesCommand(program);
  registerExtractCommand(program);
  registerAuthCommand(program);
  registerEmulatorCommand(program);
  return program;
}

export async function main(argv: string[]): Promise<number> {
  const program = buildProgram();
  try {
    await program.parseAsync(argv, { from: "user" });
    return 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      // --help and --version exit through here with code 0; usage errors were already printed.
      return err.exitCode === 0 ? 0 : 1;
    }
    const verbose = argv.includes("--verbose");
    console.error(`gmail-sync: ${describeError(err)}`);
    if (verbose && err instanceof Error && err.stack) console.error(err.stack);
    return 1;
  }
}

/** Runs the CLI and ends the process with its exit code (bin/gmail-sync.js and `node src/cli.ts`). */
export async function runAndExit(argv: string[]): Promise<never> {
  const code = await main(argv);
  // Long-running commands (worker, serve, emulator) keep their handles open and return only when
  // told to stop; a one-shot command ends here even if a pooled socket lingers.
  process.exit(code);
}

if (import.meta.main) await runAndExit(process.argv.slice(2));
