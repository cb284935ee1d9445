// `gmail-sync backfill EMAIL [--query Q] [--wait]`: start (or continue) a backfill of one account;
// with --wait, print progress until the run is done.
import type { Command } from "commander";
import { accountStatuses } from "../sync/status.ts";
import { describeStatus } from "./accounts.ts";
import { requireAccount, sleep, withCliApp } from "./cli-app.ts";

export function registerBackfillCommand(program: Command): void {
  program
    .command("backfill")
    .description("list and store the whole mailbox (re-listing an already synced one repairs gaps)")
    .argument("<email>", "the account")
    .option("--query <q>", "Gmail search query limiting the backfill (e.g. newer_than:2y)")
    .option("--wait", "show progress until the backfill is done")
    .action(async (email: string, opts: { query?: string; wait?: boolean }) => {
      await withCliApp(async (app) => {
        const account = await requireAccount(app, email);
        if (account.status !== "active") throw new Error(`${account.email} is ${account.status}: reconnect it first`);
        const requestedAt = Date.now();
        await app.enqueueBackfill(account.id, { reason: "manual", ...(opts.query !== undefined ? { query: opts.query } : {}) });
        console.log(`backfill of ${account.email} queued`);
        if (!opts.wait) return;
        let last = "";
        for (;;) {
          const [a] = await accountStatuses(app.db, { email: account.email });
          if (a === undefined) throw new Error(`${account.email} was removed`);
          const line = describeStatus(a);
          if (line !== last) console.log(line);
          last = line;
          const started = a.backfill.startedAt !== null && Date.parse(a.backfill.startedAt) >= requestedAt - 1000;
          if (a.backfill.done && started) {
            console.log(`done: ${a.messages} messages, ${a.attachments} attachments`);
            return;
          }
          if (a.status === "reauth_required" || a.status === "disabled") throw new Error(`${account.email} became ${a.status}`);
          await sleep(1000);
        }
      });
    });
}
