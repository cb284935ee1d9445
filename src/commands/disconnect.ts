// `gmail-sync disconnect EMAIL [--purge]`: stop syncing an account. Calls users.stop (best effort:
// a revoked token cannot), forgets the tokens and the watch, and marks the account disabled —
// its mail stays in the database and its queued jobs turn into no-ops. --purge deletes the account
// and everything stored for it instead.
import type { Command } from "commander";
import { sql } from "kysely";
import { requireAccount, withCliApp } from "./cli-app.ts";

export function registerDisconnectCommand(program: Command): void {
  program
    .command("disconnect")
    .description("stop syncing an account (keeps its mail unless --purge)")
    .argument("<email>", "the account")
    .option("--purge", "also delete its messages, attachments and state")
    .action(async (email: string, opts: { purge?: boolean }) => {
      await withCliApp(async (app) => {
        const account = await requireAccount(app, email);
        if (account.status === "active") {
          try {
            const gmail = await app.gmailFactory({ id: account.id, email: account.email });
            await gmail.stop();
          } catch (err) {
            app.log.warn({ accountId: account.id, err: (err as Error).message }, "users.stop failed; disconnecting anyway");
          }
        }
        if (opts.purge) {
          await app.db.deleteFrom("accounts").where("id", "=", account.id).execute();
          console.log(`${account.email} disconnected and purged`);
          return;
        }
        await app.db.transaction().execute(async (trx) => {
          await trx
            .updateTable("accounts")
            .set({ status: "disabled", status_reason: "disconnected", refresh_token_encrypted: null, access_token_encrypted: null, access_token_expires_at: null, updated_at: sql`now()` })
            .where("id", "=", account.id)
            .execute();
          await trx.updateTable("sync_state").set({ watch_expiration: null, watch_history_id: null, updated_at: sql`now()` }).where("account_id", "=", account.id).execute();
        });
        console.log(`${account.email} disconnected (its mail is kept; --purge deletes it)`);
      });
    });
}
