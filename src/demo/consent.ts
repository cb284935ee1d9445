// Connecting an account the way it is done for real: the operator mints a connect link (what
// `gmail-sync auth --link` does), the mailbox's owner opens it in a browser: /oauth2/start?link=…
// → the consent page (the emulator's auto-approving one, or Google's) → /oauth2/callback with the
// code. Used by the demo, the push benchmark and tests that must exercise the real flow rather
// than mint tokens.
import type { KeyRing } from "../token-crypto.ts";
import { mintConnectLink, type MintDeps } from "../connect-link.ts";

/** The OAuth2 round trip a browser would make with a fresh link for `email`, against our server. */
export async function connectThroughConsent(
  app: Omit<MintDeps, "keyRing"> & { keyRing: KeyRing | null },
  serverUrl: string,
  email: string,
): Promise<void> {
  if (app.keyRing === null) throw new Error("TOKEN_ENCRYPTION_KEY is not set: no connect link can be signed");
  const link = await mintConnectLink(
    { redis: app.redis, config: app.config, keyRing: app.keyRing },
    { expiresInSeconds: 600, loginHint: email },
  );
  // The link names the configured public URL; the caller's server URL is where it really listens.
  const start = await fetch(`${serverUrl}/oauth2/start?link=${encodeURIComponent(link.token)}`, { redirect: "manual" });
  const consentUrl = start.headers.get("location");
  if (start.status !== 302 || consentUrl === null)
    throw new Error(`demo: /oauth2/start answered ${start.status}: ${(await start.text()).trim()}`);
  const consent = await fetch(consentUrl, { redirect: "manual" });
  const callbackUrl = consent.headers.get("location");
  if (consent.status !== 302 || callbackUrl === null) throw new Error(`demo: consent answered ${consent.status}`);
  const callback = await fetch(callbackUrl);
  const text = await callback.text();
  if (callback.status !== 200) throw new Error(`demo: /oauth2/callback answered ${callback.status}: ${text.trim()}`);
}
