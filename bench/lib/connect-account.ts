// Connects an emulator mailbox the way the OAuth callback would, without the consent round trip: a
// refresh token minted by the emulator, stored encrypted, and the account's sync state created.
// Returns the account id.
import type { EmulatorControl } from "@gmail-sync/emulator";
import type { App } from "../../src/app.ts";
import { upsertConnectedAccount } from "../../src/db/accounts.ts";
import { ensureSyncState } from "../../src/db/sync-state.ts";
import { encryptToken, type KeyRing } from "../../src/token-crypto.ts";

export async function connectEmulatorAccount(
  app: Pick<App, "db">,
  control: Pick<EmulatorControl, "issueRefreshToken">,
  keyRing: KeyRing,
  email: string,
): Promise<number> {
  const refreshToken = await control.issueRefreshToken(email);
  const account = await upsertConnectedAccount(app.db, {
    email,
    scopes: ["https://www.googleapis.com/auth/gmail.readonly"],
    accessTokenExpiresAt: null,
    encrypt: (id) => ({
      refreshTokenEncrypted: encryptToken(keyRing, "refresh_token", id, refreshToken),
      accessTokenEncrypted: null,
      keyId: keyRing.activeKeyId,
    }),
  });
  await ensureSyncState(app.db, account.id);
  return account.id;
}
