// `gmail-sync auth [--code CODE] [--login-hint EMAIL] [--json]`: without --code, prints the consent
// URL (offline access, prompt=consent, gmail.readonly) with a fresh state that the HTTP server's
// /oauth2/callback will accept for 10 minutes; with --code, exchanges the code here, stores the
// account and queues its first backfill.
import type { Command } from "commander";
import { buildConsentUrl, connectAccount } from "../gmail/oauth.ts";
import { issueOAuthState } from "../oauth-routes.ts";
import { withCliApp } from "./cli-app.ts";
import { accountConnected } from "../server.ts";

export function registerAuthCommand(program: Command): void {
  program
    .command("auth")
    .description("connect a Gmail account: print the consent URL, or exchange a code with --code")
    .option("--code <code>", "the authorization code from the consent redirect")
    .option("--login-hint <email>", "pre-select this Google account on the consent page")
    .option("--json", "print the result as JSON")
    .action(async (opts: { code?: string; loginHint?: string; json?: boolean }) => {
      await withCliApp(async (app) => {
        if (opts.code === undefined) {
          const state = await issueOAuthState(app.redis, app.config);
          const url = buildConsentUrl(app.config, state, opts.loginHint);
          if (opts.json) console.log(JSON.stringify({ url, state }));
          else {
            console.log("Open this URL, grant access, then either let the redirect reach this server's /oauth2/callback");
            console.log("or run `gmail-sync auth --code CODE` with the code from the redirect URL:\n");
            console.log(url);
          }
          return;
        }
        if (app.keyRing === null) throw new Error("TOKEN_ENCRYPTION_KEY is not set: it is needed to store the account's tokens");
        const result = await connectAccount(
          { db: app.db, config: app.config, keyRing: app.keyRing, log: app.log, onConnected: (id) => accountConnected(app, id) },
          opts.code,
        );
        if (opts.json) console.log(JSON.stringify(result));
        else console.log(`connected ${result.email} (account ${result.accountId}); its first backfill and watch are queued`);
      });
    });
}
