// `gmail-sync dead-letters [--retry] [--json]`: messages parked in the retry ledger after a permanent
// failure or repeated failures over 30 minutes (the worker still tries them hourly). --retry
// fetches them again now and stores the ones that succeed.
import type { Command } from "commander";
import { dueMessages, listDeadLetters } from "../db/dead-letters.ts";
import { LOCK_WAIT_MS, withSyncLock } from "../sync/lock.ts";
import { RETRY_BATCH, retryMessages } from "../sync/retry-messages.ts";
import { withCliApp } from "./cli-app.ts";

export function registerDeadLettersCommand(program: Command): void {
  program
    .command("dead-letters")
    .description("list messages parked after failing to sync; --retry fetches them again")
    .option("--retry", "fetch every parked message again and store the ones that succeed")
    .option("--json", "print JSON")
    .action(async (opts: { retry?: boolean; json?: boolean }) => {
      await withCliApp(async (app) => {
        const rows = await listDeadLetters(app.db, { parkedOnly: true });
        if (!opts.retry) {
          if (opts.json) console.log(JSON.stringify(rows));
          else if (rows.length === 0) console.log("no dead letters");
          else
            for (const r of rows)
              console.log(`${r.email}  ${r.gmailId}  ${r.reason}  ${r.attempts} attempts  ${r.detail ?? ""}`);
          return;
        }
        const byAccount = new Map<number, { email: string; ids: string[] }>();
        for (const r of rows) {
          const e = byAccount.get(r.accountId) ?? { email: r.email, ids: [] };
          e.ids.push(r.gmailId);
          byAccount.set(r.accountId, e);
        }
        const summary = { retried: 0, stored: 0, gone: 0, failed: 0 };
        for (const [accountId, { email, ids }] of byAccount) {
          // The retry step the worker runs (same store step, same lock), for every parked row now
          // rather than at its hourly turn.
          await withSyncLock(
            app.db,
            "incremental",
            accountId,
            async () => {
              const gmail = await app.gmailFactory({ id: accountId, email });
              const wanted = new Set(ids);
              const rows = (
                await dueMessages(app.db, accountId, { limit: 100_000, includeNotDue: true, parkedOnly: true })
              ).filter((r) => wanted.has(r.gmailId));
              for (let i = 0; i < rows.length; i += RETRY_BATCH) {
                const r = await retryMessages(app, gmail, accountId, rows.slice(i, i + RETRY_BATCH));
                summary.retried += r.retried;
                summary.stored += r.stored;
                summary.gone += r.gone;
                summary.failed += r.retrying + r.parked;
              }
            },
            { waitMs: LOCK_WAIT_MS },
          );
        }
        if (opts.json) console.log(JSON.stringify(summary));
        else
          console.log(
            `retried ${summary.retried}: ${summary.stored} stored, ${summary.gone} gone from Gmail, ${summary.failed} still failing`,
          );
      });
    });
}
