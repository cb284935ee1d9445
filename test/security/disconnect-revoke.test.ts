// `disconnect --revoke` revokes the grant at Google (here the emulator's revoke endpoint): the
// refresh token the account held no longer mints access tokens anywhere. Without --revoke the
// grant stays live at Google (the control case that shows the check can fail).
import { OAuth2Client } from "google-auth-library";
import { afterAll, beforeAll, expect, it } from "vitest";
import { decryptToken, parseKeyRing } from "../../src/token-crypto.ts";
import { runCli } from "../helpers/cli.ts";
import { connectTestAccount, type Harness, startHarness } from "../sync/harness.ts";

let h: Harness;
beforeAll(async () => {
  h = await startHarness({
    emulator: { accounts: ["kept@example.com", "revoked@example.com"], messages: 2, seed: 9, attachments: false },
  });
}, 60_000);
afterAll(async () => {
  await h?.close();
});

async function storedRefreshToken(accountId: number): Promise<string> {
  const row = await h.app.db
    .selectFrom("accounts")
    .select("refresh_token_encrypted")
    .where("id", "=", accountId)
    .executeTakeFirstOrThrow();
  return decryptToken(
    parseKeyRing(h.env.TOKEN_ENCRYPTION_KEY),
    "refresh_token",
    accountId,
    row.refresh_token_encrypted as string,
  );
}

async function mintsAccessToken(refreshToken: string): Promise<boolean> {
  const auth = new OAuth2Client({
    clientId: h.emulator.clientId,
    clientSecret: h.emulator.clientSecret,
    endpoints: { oauth2TokenUrl: h.emulator.tokenUrl },
  });
  auth.setCredentials({ refresh_token: refreshToken });
  return auth.getAccessToken().then(
    (r) => typeof r.token === "string",
    () => false,
  );
}

it("revokes the grant with --revoke, and only then", { timeout: 60_000 }, async () => {
  const kept = await connectTestAccount(h, "kept@example.com");
  const revoked = await connectTestAccount(h, "revoked@example.com");
  const keptToken = await storedRefreshToken(kept);
  const revokedToken = await storedRefreshToken(revoked);

  const a = await runCli(["disconnect", "kept@example.com"], h.env);
  expect(a.code, a.stderr).toBe(0);
  const b = await runCli(["disconnect", "revoked@example.com", "--revoke"], h.env);
  expect(b.code, b.stderr).toBe(0);
  expect(b.stdout).toContain("grant revoked");

  expect(await mintsAccessToken(keptToken)).toBe(true);
  expect(await mintsAccessToken(revokedToken)).toBe(false);
  // Both forgot their tokens and stopped.
  const rows = await h.app.db
    .selectFrom("accounts")
    .select(["status", "refresh_token_encrypted"])
    .where("id", "in", [kept, revoked])
    .execute();
  expect(rows.every((r) => r.status === "disabled" && r.refresh_token_encrypted === null)).toBe(true);
});
