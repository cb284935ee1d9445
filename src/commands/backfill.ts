// `gmail-sync backfill EMAIL [--query Q] [--restart] [--wait]`: start a backfill of one account, or
// continue the run in progress; --query or --restart start a new run even while one is listing
// (a run keeps the scope it started with, so a new scope needs a new run). With --wait, print
// progress until the run is done.
import type { Command } from "commander";
import { getSyncState } from "../db/sync-state.ts";
import { type RunScope, runScope } from "../sync/run-scope.ts";
import { accountStatuses } from "../sync/status.ts";
import { describeStatus } from "./accounts.ts";
import { requireAccount, sleep, withCliApp } from "./cli-app.ts";

export function registerBackfillCommand(program: Command): void {
  program
    .command("backfill")
    .description("list and store the whole mailbox (re-listing an already synced one repairs gaps)")
    .argument("<email>", "the account")
    .option(
      "--query <q>",
      'Gmail search query limiting a new run (e.g. newer_than:2y; "" for none); starts a new run even while one is listing',
    )
    .option("--restart", "start a new run (with the configured scope) even while one is listing")
    .option("--wait", "show progress until the backfill is done")
    .action(async (email: string, opts: { query?: string; restart?: boolean; wait?: boolean }) => {
      await withCliApp(async (app) => {
        const account = await requireAccount(app, email);
        if (account.status !== "active") throw new Error(`${account.email} is ${account.status}: reconnect it first`);
        const state = await getSyncState(app.db, account.id);
        const listing = state?.backfill_phase === "listing" && state.backfill_started_at !== null ? state : undefined;
        const fresh = opts.restart === true || opts.query !== undefined;
        const requestedAt = Date.now();
        await app.enqueueBackfill(account.id, {
          reason: "manual",
          ...(opts.query !== undefined ? { query: opts.query } : {}),
          ...(fresh ? { restart: true } : {}),
        });
        const newScope =
          opts.query === undefined
            ? "the configured scope"
            : opts.query === ""
              ? "no query"
              : `query ${JSON.stringify(opts.query)}`;
        if (listing === undefined) console.log(`backfill of ${account.email} queued: a new run (${newScope})`);
        else {
          const run = `the run in progress (started ${new Date(listing.backfill_started_at as Date).toISOString()}, ${listing.backfill_pages} page(s) listed, ${describeScope(runScope(app.config, listing))})`;
          if (fresh)
            console.log(`backfill of ${account.email}: restart queued: a new run (${newScope}) replaces ${run}`);
          else console.log(`backfill of ${account.email}: continuing ${run}; --restart or --query starts a new run`);
        }
        if (!opts.wait) return;
        // Continuing: the run in progress is the one to wait for; otherwise the run the job starts.
        const since =
          listing !== undefined && !fresh ? (listing.backfill_started_at as Date).getTime() : requestedAt - 1000;
        let last = "";
        for (;;) {
          const [a] = await accountStatuses(app.db, { email: account.email });
          if (a === undefined) throw new Error(`${account.email} was removed`);
          const line = describeStatus(a);
          if (line !== last) console.log(line);
          last = line;
          const started = a.backfill.startedAt !== null && Date.parse(a.backfill.startedAt) >= since;
          if (a.backfill.done && started) {
            console.log(`done: ${a.messages} messages, ${a.attachments} attachments`);
            return;
          }
          if (a.status === "reauth_required" || a.status === "disabled")
            throw new Error(`${account.email} became ${a.status}`);
          await sleep(1000);
        }
      });
    });
}

function describeScope(scope: RunScope): string {
  const parts = [
    scope.query !== null ? `query ${JSON.stringify(scope.query)}` : "no query",
    ...(scope.labelIds.length > 0 ? [`labels ${scope.labelIds.join(",")}`] : []),
    ...(scope.includeSpamTrash ? ["spam and trash included"] : []),
  ];
  return parts.join(", ");
}
