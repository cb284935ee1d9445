// `gmail-sync changes [--after SEQ] [--account EMAIL] [--follow] [--json] [--limit N]`: the change
// feed, oldest first — one JSON object per line with --json (README "Change feed"). --follow keeps
// printing as changes commit, woken by NOTIFY on a dedicated LISTEN connection (polling each second
// while that connection is down); SIGINT or SIGTERM ends it with exit 0. A cursor older than
// retention kept ends with exit 1 and one line saying so.
import type { Command } from "commander";
import { findAccountIdByEmail, normalizeEmail } from "../db/accounts.ts";
import { createChangeNotifier } from "../feed/notifier.ts";
import { type ChangeEnvelope, followChanges } from "../feed/read.ts";
import { withStoreApp } from "./cli-app.ts";
import { printable } from "./printable.ts";

function nonNegativeInt(flag: string, min: number) {
  return (v: string): number => {
    if (!/^\d{1,18}$/.test(v) || Number(v) < min) throw new Error(`${flag} must be an integer >= ${min}`);
    return Number(v);
  };
}

/** One line a person reads: seq, time, account, kind, then what changed. */
export function describeChange(e: ChangeEnvelope): string {
  const parts = [String(e.seq), e.at, e.account ?? `account ${e.accountId}`, e.kind];
  if (e.gmailId !== undefined) parts.push(e.gmailId);
  if (e.partId !== undefined) parts.push(`part ${e.partId}`);
  const labels = [...(e.labelsAdded ?? []).map((l) => `+${l}`), ...(e.labelsRemoved ?? []).map((l) => `-${l}`)];
  if (labels.length > 0) parts.push(labels.join(" "));
  if (e.status !== undefined) parts.push(`${e.status}${e.reason ? ` (${e.reason})` : ""}`);
  if (e.historic) parts.push("historic");
  return printable(parts.join("  "));
}

/** Writes a line, waiting while stdout's buffer is full (a slow pipe must not grow our memory). */
function writeLine(line: string, signal: AbortSignal): Promise<void> | undefined {
  if (signal.aborted || process.stdout.write(`${line}\n`)) return undefined;
  return new Promise((resolve) => {
    const done = () => {
      process.stdout.off("drain", done);
      signal.removeEventListener("abort", done);
      resolve();
    };
    process.stdout.once("drain", done);
    signal.addEventListener("abort", done, { once: true });
  });
}

export function registerChangesCommand(program: Command): void {
  program
    .command("changes")
    .description("print the change feed (what changed in the mirror), oldest first; --follow waits for more")
    .option("--after <seq>", "only changes after this seq (the last one you processed)", nonNegativeInt("--after", 0))
    .option("--account <email>", "only this account's changes")
    .option("--follow", "keep printing changes as they commit (SIGINT/SIGTERM ends it with exit 0)")
    .option("--limit <n>", "stop after n changes", nonNegativeInt("--limit", 1))
    .option("--json", "one JSON object per line")
    .action(async (opts: { after?: number; account?: string; follow?: boolean; limit?: number; json?: boolean }) => {
      await withStoreApp(async (app) => {
        let accountId: number | undefined;
        if (opts.account !== undefined) {
          accountId = await findAccountIdByEmail(app.db, normalizeEmail(opts.account));
          if (accountId === undefined) throw new Error(`unknown account ${opts.account} (see \`gmail-sync accounts\`)`);
        }
        const stop = new AbortController();
        const onSignal = () => stop.abort();
        process.once("SIGINT", onSignal);
        process.once("SIGTERM", onSignal);
        // A reader that went away (`| head`) ends the command quietly.
        const onStdoutError = () => stop.abort();
        process.stdout.on("error", onStdoutError);
        const notifier = opts.follow ? createChangeNotifier(app.config.DATABASE_URL, { log: app.log }) : undefined;
        let readErrors = 0;
        try {
          await followChanges(
            app.db,
            {
              follow: opts.follow === true,
              signal: stop.signal,
              ...(notifier !== undefined ? { notifier } : {}),
              ...(opts.after !== undefined ? { after: opts.after } : {}),
              ...(accountId !== undefined ? { accountId } : {}),
              ...(opts.limit !== undefined ? { limit: opts.limit } : {}),
              onReadError: (err) => {
                if (readErrors++ % 30 === 0)
                  app.log.warn({ err: err.message }, "reading the change feed failed: retrying");
              },
            },
            (e) => writeLine(opts.json ? JSON.stringify(e) : describeChange(e), stop.signal),
          );
        } finally {
          process.off("SIGINT", onSignal);
          process.off("SIGTERM", onSignal);
          process.stdout.off("error", onStdoutError);
          await notifier?.close();
        }
      });
    });
}
