// `gmail-sync dead-letters [--retry] [--json]`: messages the sync parked after repeated or permanent
// failures (they no longer hold the cursor back). --retry fetches them again now and stores the
// ones that succeed.
import type { Command } from "commander";
import { listDeadLetters } from "../db/dead-letters.ts";
import { commitPrepared } from "../sync/commit-prepared.ts";
import { withSyncLock } from "../sync/lock.ts";
import { fetchAndPrepare } from "../sync/store-message.ts";
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
          else for (const r of rows) console.log(`${r.email}  ${r.gmailId}  ${r.reason}  ${r.attempts} attempts  ${r.detail ?? ""}`);
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
          // Under the account's incremental lock, so a running sync and the retry never write the
          // same rows at once; stored through the sync's own store step (gone → soft-deleted,
          // each failure counted as what it is).
          await withSyncLock(app.db, "incremental", accountId, async () => {
            const gmail = await app.gmailFactory({ id: accountId, email });
            const prepared = await fetchAndPrepare({ gmail, pipeline: app.pipeline, log: app.log }, ids);
            const c = await app.db.transaction().execute((trx) => commitPrepared(trx, accountId, prepared));
            if (prepared.abort !== undefined) throw prepared.abort;
            summary.retried += ids.length;
            summary.stored += c.stored;
            summary.gone += prepared.gone.length;
            summary.failed += prepared.failed.length;
          });
        }
        if (opts.json) console.log(JSON.stringify(summary));
        else console.log(`retried ${summary.retried}: ${summary.stored} stored, ${summary.gone} gone from Gmail, ${summary.failed} still failing`);
      });
    });
}
