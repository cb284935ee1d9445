// Connecting an account the way a person does it in a browser: /oauth2/start → the consent page
// (the emulator's auto-approving one, or Google's) → /oauth2/callback with the code. Used by the
// demo and by tests that must exercise the real flow rather than mint tokens.
/** The OAuth2 round trip a browser would make, against our server and the emulator's consent page. */
export async function connectThroughConsent(serverUrl: string, email: string): Promise<void> {
  const start = await fetch(`${serverUrl}/oauth2/start?login_hint=${encodeURIComponent(email)}`, { redirect: "manual" });
  const consentUrl = start.headers.get("location");
  if (start.status !== 302 || consentUrl === null) throw new Error(`demo: /oauth2/start answered ${start.status}`);
  const consent = await fetch(consentUrl, { redirect: "manual" });
  const callbackUrl = consent.headers.get("location");
  if (consent.status !== 302 || callbackUrl === null) throw new Error(`demo: consent answered ${consent.status}`);
  const callback = await fetch(callbackUrl);
  const text = await callback.text();
  if (callback.status !== 200) throw new Error(`demo: /oauth2/callback answered ${callback.status}: ${text.trim()}`);
}

