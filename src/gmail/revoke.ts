// Revoking an account's grant at Google (`disconnect --revoke`): the stored refresh token, decrypted,
// posted to the revoke endpoint through google-auth-library (oauth2RevokeUrl from config). After
// this the token is worthless wherever a copy of it may be; the owner must consent again.
import type { Config } from "../config.ts";
import type { Db } from "../db/database.ts";
import { getAccount } from "../db/accounts.ts";
import { GmailError } from "../errors.ts";
import { decryptToken, type KeyRing } from "../token-crypto.ts";
import { createOAuthClient } from "./oauth.ts";

export async function revokeGrant(
  deps: { db: Db; config: Config; keyRing: KeyRing | null },
  accountId: number,
): Promise<void> {
  if (deps.keyRing === null)
    throw new GmailError("permanent", "TOKEN_ENCRYPTION_KEY is not set: the stored token cannot be read to revoke it", {
      reason: "config",
    });
  const row = await getAccount(deps.db, accountId);
  if (!row?.refresh_token_encrypted)
    throw new GmailError("permanent", `account ${accountId} holds no refresh token to revoke (already disconnected?)`, {
      reason: "no_refresh_token",
    });
  const token = decryptToken(deps.keyRing, "refresh_token", accountId, row.refresh_token_encrypted);
  try {
    await createOAuthClient(deps.config).revokeToken(token);
  } catch (err) {
    // google-auth-library's error for a 400 is Google's "invalid_token": the grant is gone already.
    const status = (err as { response?: { status?: number } }).response?.status;
    if (status === 400) return;
    throw new GmailError(
      "transient",
      `Google did not confirm the revocation (${status ?? (err as Error).message.slice(0, 100)}); nothing was changed, try again`,
      { reason: "revoke" },
    );
  }
}
