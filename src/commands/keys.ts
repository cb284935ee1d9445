// `gmail-sync keys rewrap [--json]`: re-encrypts every stored token under the first key of
// TOKEN_ENCRYPTION_KEY, so an old key (listed after it) can be retired. Rotation: put the new key
// first, keep the old ones after it, run this, then drop the old keys. Idempotent; a token saved by
// a refresh while it runs is already under the new key and is left alone.
import type { Command } from "commander";
import { accountsWithTokens, replaceTokenCiphertexts } from "../db/accounts.ts";
import { decryptToken, encryptToken, keyIdOfCiphertext, type TokenPurpose } from "../token-crypto.ts";
import { withCliApp } from "./cli-app.ts";

export function registerKeysCommand(program: Command): void {
  const keys = program.command("keys").description("token encryption keys");
  keys
    .command("rewrap")
    .description(
      "re-encrypt every stored token under the first key of TOKEN_ENCRYPTION_KEY (then older keys can be removed)",
    )
    .option("--json", "print the counts as JSON")
    .action(async (opts: { json?: boolean }) => {
      await withCliApp(async (app) => {
        const ring = app.keyRing;
        if (ring === null) throw new Error("TOKEN_ENCRYPTION_KEY is not set");
        const summary = { accounts: 0, rewrapped: 0, alreadyCurrent: 0, changedMeanwhile: 0 };
        for (const row of await accountsWithTokens(app.db)) {
          summary.accounts++;
          const current = (v: string | null) => v === null || keyIdOfCiphertext(v) === ring.activeKeyId;
          if (current(row.refreshTokenEncrypted) && current(row.accessTokenEncrypted)) {
            summary.alreadyCurrent++;
            continue;
          }
          const rewrap = (purpose: TokenPurpose, v: string | null) =>
            v === null || current(v) ? v : encryptToken(ring, purpose, row.id, decryptToken(ring, purpose, row.id, v));
          const after = {
            refresh: rewrap("refresh_token", row.refreshTokenEncrypted),
            access: rewrap("access_token", row.accessTokenEncrypted),
            keyId: ring.activeKeyId,
          };
          if (await replaceTokenCiphertexts(app.db, row, after)) summary.rewrapped++;
          else summary.changedMeanwhile++;
        }
        if (opts.json) console.log(JSON.stringify(summary));
        else
          console.log(
            `${summary.rewrapped} account(s) re-encrypted under key ${ring.activeKeyId}; ${summary.alreadyCurrent} already were; ${summary.changedMeanwhile} changed meanwhile (run again)`,
          );
      });
    });
}
