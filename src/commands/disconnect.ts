// `gmail-sync disconnect EMAIL [--purge] [--revoke]`: stop syncing an account. Calls users.stop
// (best effort: a revoked token cannot), forgets the tokens and the watch, and marks the account
// disabled — its mail stays in the database and its queued jobs turn into no-ops. --purge deletes
// the account and everything stored for it instead. --revoke also revokes the grant at Google, so
// the refresh token is worthless wherever a copy of it may be (a backup, an old key's ciphertext).
import type { Command } from "commander";
import { deleteAccount, disconnectAccount } from "../db/accounts.ts";
import { revokeGrant } from "../gmail/revoke.ts";
import { requireAccount, withCliApp } from "./cli-app.ts";

export function registerDisconnectCommand(program: Command): void {
  program
    .command("disconnect")
    .description("stop syncing an account (keeps its mail unless --purge)")
    .argument("<email>", "the account")
    .option("--purge", "also delete its messages, attachments and state")
    .option("--revoke", "also revoke the grant at Google (the owner must consent again to reconnect)")
    .action(async (email: string, opts: { purge?: boolean; revoke?: boolean }) => {
      await withCliApp(async (app) => {
        const account = await requireAccount(app, email);
        if (account.status === "active") {
          try {
            const gmail = await app.gmailFactory({ id: account.id, email: account.email });
            await gmail.stop();
          } catch (err) {
            app.log.warn(
              { accountId: account.id, err: (err as Error).message },
              "users.stop failed; disconnecting anyway",
            );
          }
        }
        if (opts.revoke) {
          // Before the tokens are forgotten: a failed revocation stops here, nothing changed, so
          // the operator can retry rather than be left with a live grant and no token to revoke it.
          await revokeGrant(app, account.id);
          console.log(`${account.email}: grant revoked at Google`);
        }
        if (opts.purge) {
          await deleteAccount(app.db, account.id);
          console.log(`${account.email} disconnected and purged`);
          return;
        }
        await disconnectAccount(app.db, account.id);
        console.log(`${account.email} disconnected (its mail is kept; --purge deletes it)`);
      });
    });
}
