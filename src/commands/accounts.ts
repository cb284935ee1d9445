// `gmail-sync accounts [--json]`: every account's sync status (backfilling with progress, active,
// throttled until T, resyncing with reason, reauth_required, disabled) and its counts.
import type { Command } from "commander";
import { withStoreApp } from "./cli-app.ts";
import { accountStatuses, type AccountStatusView } from "../sync/status.ts";

export function describeStatus(a: AccountStatusView): string {
  switch (a.status) {
    case "backfilling": {
      const est = a.backfill.estimate !== null ? `/~${a.backfill.estimate}` : "";
      return `backfilling ${a.backfill.stored}${est} (page ${a.backfill.pages}, ${a.backfill.listed} listed)`;
    }
    case "resyncing":
      return `resyncing (${a.resyncReason}) ${a.backfill.stored}/${a.backfill.listed} listed`;
    case "throttled":
      return `throttled until ${a.throttledUntil}`;
    case "reauth_required":
      return `reauth_required${a.statusReason ? ` (${a.statusReason})` : ""}`;
    default:
      return a.status;
  }
}

export function registerAccountsCommand(program: Command): void {
  program
    .command("accounts")
    .description("list connected accounts with their sync status")
    .option("--json", "print an array of objects")
    .action(async (opts: { json?: boolean }) => {
      await withStoreApp(async ({ db }) => {
        const rows = await accountStatuses(db);
        if (opts.json) {
          console.log(JSON.stringify(rows));
          return;
        }
        if (rows.length === 0) console.log("no accounts (connect one with `gmail-sync auth`)");
        for (const a of rows) {
          const age = a.cursorAgeSeconds === null ? "no cursor" : `cursor ${a.cursorAgeSeconds}s old`;
          const dl = a.deadLetters > 0 ? `, ${a.deadLetters} dead letters` : "";
          console.log(
            `${a.email}  ${describeStatus(a)}  ${a.messages} messages, ${a.attachments} attachments, ${age}${dl}`,
          );
          if (a.lastError) console.log(`    last error (${a.lastError.kind}): ${a.lastError.message}`);
        }
      });
    });
}
