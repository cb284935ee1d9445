// Shared setup for emulator tests: the real @googleapis/gmail client and google-auth-library
// pointed at an emulator, and real MIME composed with nodemailer.
import { gmail, type gmail_v1 } from "@googleapis/gmail";
import { OAuth2Client } from "google-auth-library";
import MailComposer from "nodemailer/lib/mail-composer/index.js";
import type Mail from "nodemailer/lib/mailer/index.js";
import type { Emulator } from "../src/server.ts";

export async function clientFor(
  emu: Emulator,
  email = emu.accounts[0] as string,
  scopes?: string[],
): Promise<{ api: gmail_v1.Gmail; auth: OAuth2Client; refreshToken: string }> {
  const refreshToken = await emu.control.issueRefreshToken(email, scopes);
  const auth = new OAuth2Client({
    clientId: emu.clientId,
    clientSecret: emu.clientSecret,
    endpoints: { oauth2TokenUrl: emu.tokenUrl },
  });
  auth.setCredentials({ refresh_token: refreshToken });
  return { api: gmail({ version: "v1", rootUrl: emu.gmailRootUrl, auth }), auth, refreshToken };
}

export function compose(mail: Mail.Options): Promise<Buffer> {
  return new MailComposer(mail).compile().build();
}

/** Fetches a Gmail path with a fresh access token, bypassing the client's retries. */
export async function rawGet(emu: Emulator, auth: OAuth2Client, path: string): Promise<Response> {
  const { token } = await auth.getAccessToken();
  return fetch(emu.url + path, { headers: { authorization: `Bearer ${token}` } });
}
