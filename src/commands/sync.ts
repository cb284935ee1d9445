// `gmail-sync sync EMAIL [--wait]`: run an incremental sync of one account now; with --wait, until
// it has committed.
import type { Command } from "commander";
import { getSyncState } from "../db/sync-state.ts";
import { requireAccount, sleep, withCliApp } from "./cli-app.ts";

export function registerSyncCommand(program: Command): void {
  program
    .command("sync")
    .description("fetch the changes since the account's cursor now (normally push-triggered)")
    .argument("<email>", "the account")
    .option("--wait", "wait until the sync has committed")
    .action(async (email: string, opts: { wait?: boolean }) => {
      await withCliApp(async (app) => {
        const account = await requireAccount(app, email);
        if (account.status !== "active") throw new Error(`${account.email} is ${account.status}: reconnect it first`);
        const before = await getSyncState(app.db, account.id);
        if (before?.history_id === null || before === undefined)
          throw new Error(`${account.email} has no cursor yet: its first backfill has not started`);
        const requestedAt = new Date();
        const { coalesced } = await app.enqueueIncremental(account.id, { reason: "manual" });
        console.log(coalesced ? "sync queued (folded into the one already queued)" : "sync queued");
        if (!opts.wait) return;
        for (;;) {
          const s = await getSyncState(app.db, account.id);
          if (s?.last_sync_at && s.last_sync_at >= requestedAt) {
            console.log(`synced: cursor ${s.history_id}`);
            return;
          }
          if (s?.last_error_at && s.last_error_at >= requestedAt)
            console.error(`sync error (${s.last_error_kind}): ${s.last_error}; retrying`);
          await sleep(500);
        }
      });
    });
}
