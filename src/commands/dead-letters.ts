// `gmail-sync dead-letters [--retry] [--json]`: messages the sync parked after repeated or permanent
// failures (they no longer hold the cursor back). --retry fetches them again now and stores the
// ones that succeed.
import type { Command } from "commander";
import { listDeadLetters, recordMessageFailure, resolveDeadLetters } from "../db/dead-letters.ts";
import { upsertMessages } from "../db/messages.ts";
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
          const gmail = await app.gmailFactory({ id: accountId, email });
          const prepared = await fetchAndPrepare({ gmail, pipeline: app.pipeline, log: app.log }, ids);
          await app.db.transaction().execute(async (trx) => {
            summary.stored += await upsertMessages(trx, accountId, prepared.records);
            await resolveDeadLetters(trx, accountId, [...prepared.records.map((m) => m.gmailId), ...prepared.gone]);
            for (const f of prepared.failed) await recordMessageFailure(trx, accountId, f.id, { reason: f.reason, detail: f.detail, permanent: true });
          });
          if (prepared.abort !== undefined) throw prepared.abort;
          summary.retried += ids.length;
          summary.gone += prepared.gone.length;
          summary.failed += prepared.failed.length;
        }
        if (opts.json) console.log(JSON.stringify(summary));
        else console.log(`retried ${summary.retried}: ${summary.stored} stored, ${summary.gone} gone from Gmail, ${summary.failed} still failing`);
      });
    });
}
