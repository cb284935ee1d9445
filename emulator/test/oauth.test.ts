// Google's OAuth2 endpoints as google-auth-library uses them.
import { gmail } from "@googleapis/gmail";
import { OAuth2Client } from "google-auth-library";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../src/server.ts";

const SCOPE = "https://www.googleapis.com/auth/gmail.readonly";
let emu: Emulator;

beforeAll(async () => {
  emu = await startEmulator({ seed: 3, accounts: ["alice@example.com", "bob@example.com"], messages: 2 });
});
afterAll(async () => {
  await emu.close();
});

function client(): OAuth2Client {
  return new OAuth2Client({
    clientId: emu.clientId,
    clientSecret: emu.clientSecret,
    redirectUri: "http://127.0.0.1:1/callback",
    endpoints: { oauth2TokenUrl: emu.tokenUrl, oauth2AuthBaseUrl: emu.authUrl },
  });
}

async function consent(c: OAuth2Client, extra: Record<string, string> = {}): Promise<URL> {
  const url = c.generateAuthUrl({ access_type: "offline", scope: [SCOPE], state: "st-1", ...extra });
  const res = await fetch(url, { redirect: "manual" });
  expect(res.status).toBe(302);
  return new URL(res.headers.get("location") as string);
}

describe("oauth", () => {
  it("auto-approves consent for login_hint, exchanges the code once and refreshes", async () => {
    const c = client();
    const back = await consent(c, { login_hint: "bob@example.com" });
    expect(back.origin + back.pathname).toBe("http://127.0.0.1:1/callback");
    expect(back.searchParams.get("state")).toBe("st-1");
    const code = back.searchParams.get("code") as string;
    const { tokens } = await c.getToken(code);
    expect(tokens.refresh_token).toBeTruthy();
    expect(tokens.token_type).toBe("Bearer");
    expect(tokens.scope).toBe(SCOPE);
    // expires_in 3599 → expiry about an hour ahead (the client refreshes 5 min early otherwise).
    expect((tokens.expiry_date as number) - Date.now()).toBeGreaterThan(3500_000);
    c.setCredentials(tokens);
    const profile = await gmail({ version: "v1", rootUrl: emu.gmailRootUrl, auth: c }).users.getProfile({
      userId: "me",
    });
    expect(profile.data.emailAddress).toBe("bob@example.com");

    await expect(c.getToken(code)).rejects.toMatchObject({
      message: "invalid_grant",
      response: { status: 400, data: { error: "invalid_grant" } },
    });

    const refreshed = new OAuth2Client({
      clientId: emu.clientId,
      clientSecret: emu.clientSecret,
      endpoints: { oauth2TokenUrl: emu.tokenUrl },
    });
    refreshed.setCredentials({ refresh_token: tokens.refresh_token as string });
    const { token } = await refreshed.getAccessToken();
    expect(token).toMatch(/^ya29\./);
  });

  it("issues a refresh token only on the first offline consent unless prompt=consent", async () => {
    const c = client();
    const again = await c.getToken(
      (await consent(c, { login_hint: "bob@example.com" })).searchParams.get("code") as string,
    );
    expect(again.tokens.refresh_token).toBeFalsy();
    const forced = await c.getToken(
      (await consent(c, { login_hint: "bob@example.com", prompt: "consent" })).searchParams.get("code") as string,
    );
    expect(forced.tokens.refresh_token).toBeTruthy();
  });

  it("answers invalid_grant for a revoked refresh token and 401 for a bad access token", async () => {
    const rt = await emu.control.issueRefreshToken("alice@example.com");
    const c = new OAuth2Client({
      clientId: emu.clientId,
      clientSecret: emu.clientSecret,
      endpoints: { oauth2TokenUrl: emu.tokenUrl },
    });
    c.setCredentials({ refresh_token: rt });
    const api = gmail({ version: "v1", rootUrl: emu.gmailRootUrl, auth: c });
    expect((await api.users.getProfile({ userId: "me" })).data.messagesTotal).toBe(2);

    await emu.control.revoke("alice@example.com");
    // The access token minted from the revoked grant stops working too.
    await expect(api.users.getProfile({ userId: "me" })).rejects.toMatchObject({ status: 401 });
    const fresh = new OAuth2Client({
      clientId: emu.clientId,
      clientSecret: emu.clientSecret,
      endpoints: { oauth2TokenUrl: emu.tokenUrl },
    });
    fresh.setCredentials({ refresh_token: rt });
    await expect(fresh.getAccessToken()).rejects.toMatchObject({
      message: "invalid_grant",
      response: { data: { error: "invalid_grant", error_description: "Token has been expired or revoked." } },
    });

    const bad = await fetch(`${emu.url}/gmail/v1/users/me/profile`, {
      headers: { authorization: "Bearer ya29.not-a-token" },
    });
    expect(bad.status).toBe(401);
    expect(bad.headers.get("www-authenticate")).toContain('error="invalid_token"');
    const body = (await bad.json()) as { error: { status: string; errors: Array<{ reason: string }> } };
    expect(body.error.status).toBe("UNAUTHENTICATED");
    expect(body.error.errors[0]?.reason).toBe("authError");
    const missing = await fetch(`${emu.url}/gmail/v1/users/me/profile`);
    expect(((await missing.json()) as { error: { errors: Array<{ reason: string }> } }).error.errors[0]?.reason).toBe(
      "required",
    );
  });

  it("adds an id_token for openid/email grants that verifies against the emulator's certs", async () => {
    const c = new OAuth2Client({
      clientId: emu.clientId,
      clientSecret: emu.clientSecret,
      redirectUri: "http://127.0.0.1:1/callback",
      endpoints: {
        oauth2TokenUrl: emu.tokenUrl,
        oauth2AuthBaseUrl: emu.authUrl,
        oauth2FederatedSignonPemCertsUrl: emu.certsUrl,
      },
    });
    const back = await fetch(
      c.generateAuthUrl({ scope: ["openid", "email", SCOPE], login_hint: "alice@example.com" }),
      { redirect: "manual" },
    );
    const code = new URL(back.headers.get("location") as string).searchParams.get("code") as string;
    const { tokens } = await c.getToken(code);
    expect(tokens.refresh_token).toBeFalsy(); // online access: no refresh token
    const ticket = await c.verifyIdToken({ idToken: tokens.id_token as string, audience: emu.clientId });
    expect(ticket.getPayload()).toMatchObject({
      email: "alice@example.com",
      email_verified: true,
      iss: "https://accounts.google.com",
    });
  });

  it("refuses a wrong client secret with invalid_client", async () => {
    const res = await fetch(emu.tokenUrl, {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded" },
      body: new URLSearchParams({
        grant_type: "refresh_token",
        refresh_token: "x",
        client_id: emu.clientId,
        client_secret: "wrong",
      }),
    });
    expect(res.status).toBe(401);
    expect(((await res.json()) as { error: string }).error).toBe("invalid_client");
  });
});
