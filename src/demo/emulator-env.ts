// The configuration that points gmail-sync at an emulator instead of Google: the endpoints and the
// OAuth client, and — given the URL where gmail-sync's own HTTP server listens — the redirect URI
// and the push audience/service account. One place for the demo, benchmarks and tests.
import type { Emulator } from "@gmail-sync/emulator";

export function emulatorEnv(emu: Emulator, serverUrl?: string): Record<string, string> {
  return {
    GMAIL_API_ROOT_URL: emu.gmailRootUrl,
    GOOGLE_OAUTH_AUTH_URL: emu.authUrl,
    GOOGLE_OAUTH_TOKEN_URL: emu.tokenUrl,
    GOOGLE_OAUTH_REVOKE_URL: emu.revokeUrl,
    GOOGLE_CERTS_URL: emu.certsUrl,
    GOOGLE_CLIENT_ID: emu.clientId,
    GOOGLE_CLIENT_SECRET: emu.clientSecret,
    ...(serverUrl !== undefined
      ? {
          GOOGLE_OAUTH_REDIRECT_URI: `${serverUrl}/oauth2/callback`,
          PUBSUB_TOPIC: "projects/gmail-sync-emulator/topics/gmail",
          PUBSUB_AUDIENCE: `${serverUrl}/pubsub/push`,
          PUBSUB_SERVICE_ACCOUNT: emu.pushServiceAccount,
        }
      : {}),
  };
}
