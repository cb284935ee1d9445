// `gmail-sync auth --link [--login-hint EMAIL] [--expires 24h] [--json]`: prints a signed, expiring,
// one-use connect link to hand to the mailbox's owner — the only way into /oauth2/start (see
// src/connect-link.ts); with --login-hint only that address can be connected through it.
// `gmail-sync auth [--code CODE] [--login-hint EMAIL] [--json]`: without --code, prints the consent
// URL (offline access, prompt=consent, gmail.readonly) with a fresh state that the HTTP server's
// /oauth2/callback will accept for 10 minutes; with --code, exchanges the code here, stores the
// account and queues its first backfill. Both are operator acts: they need the service's secrets.
import type { Command } from "commander";
import { mintConnectLink, parseLinkDuration } from "../connect-link.ts";
import { buildConsentUrl, connectAccount } from "../gmail/oauth.ts";
import { issueOAuthState } from "../oauth-routes.ts";
import { withCliApp } from "./cli-app.ts";
import { accountConnected } from "../server.ts";

interface AuthOptions {
  link?: boolean;
  expires: string;
  code?: string;
  loginHint?: string;
  json?: boolean;
}

export function registerAuthCommand(program: Command): void {
  program
    .command("auth")
    .description(
      "connect a Gmail account: print a one-use connect link (--link) or the consent URL, or exchange a code with --code",
    )
    .option("--link", "print a signed, expiring, one-use connect URL for the mailbox's owner to open")
    .option("--expires <duration>", "how long the --link stays valid: 90s, 30m, 24h, 7d (at most)", "24h")
    .option("--code <code>", "the authorization code from the consent redirect")
    .option(
      "--login-hint <email>",
      "pre-select this Google account on the consent page; with --link, the only address it may connect",
    )
    .option("--json", "print the result as JSON")
    .action(async (opts: AuthOptions) => {
      if (opts.link && opts.code !== undefined) throw new Error("--link and --code do not go together");
      // Checked before connecting to anything: a typo fails at once.
      const expiresInSeconds = opts.link ? parseLinkDuration(opts.expires) : 0;
      await withCliApp(async (app) => {
        if (opts.link) {
          if (app.keyRing === null)
            throw new Error("TOKEN_ENCRYPTION_KEY is not set: connect links are signed with a key derived from it");
          const link = await mintConnectLink(
            { redis: app.redis, config: app.config, keyRing: app.keyRing },
            { expiresInSeconds, loginHint: opts.loginHint },
          );
          if (opts.json) {
            console.log(
              JSON.stringify({
                url: link.url,
                expiresAt: link.expiresAt.toISOString(),
                loginHint: link.loginHint ?? null,
              }),
            );
          } else {
            const who = link.loginHint !== undefined ? `${link.loginHint} only` : "any Google account";
            console.log(`Connect link for ${who}, valid once until ${link.expiresAt.toISOString()}:\n`);
            console.log(link.url);
          }
          return;
        }
        if (opts.code === undefined) {
          const hint = opts.loginHint?.trim().toLowerCase();
          const state = await issueOAuthState(app.redis, app.config, hint ? { hint } : {});
          const url = buildConsentUrl(app.config, state, hint);
          if (opts.json) console.log(JSON.stringify({ url, state }));
          else {
            console.log(
              "Open this URL, grant access, then either let the redirect reach this server's /oauth2/callback",
            );
            console.log("or run `gmail-sync auth --code CODE` with the code from the redirect URL:\n");
            console.log(url);
          }
          return;
        }
        if (app.keyRing === null)
          throw new Error("TOKEN_ENCRYPTION_KEY is not set: it is needed to store the account's tokens");
        const result = await connectAccount(
          {
            db: app.db,
            config: app.config,
            keyRing: app.keyRing,
            log: app.log,
            onConnected: (id) => accountConnected(app, id),
          },
          opts.code,
        );
        if (opts.json) console.log(JSON.stringify(result));
        else
          console.log(
            `connected ${result.email} (account ${result.accountId}); its first backfill and watch are queued`,
          );
      });
    });
}
