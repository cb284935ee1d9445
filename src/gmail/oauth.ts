// OAuth2 with google-auth-library: the client (endpoints from config, so tests, the demo and users'
// CI can point it at the emulator), the consent URL, and connecting an account from a code.
import { randomBytes } from "node:crypto";
import { gmail } from "@googleapis/gmail";
import { CodeChallengeMethod, OAuth2Client } from "google-auth-library";
import type { Config } from "../config.ts";
import { setAccountStatus, upsertConnectedAccount } from "../db/accounts.ts";
import type { Db } from "../db/database.ts";
import { GmailError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { encryptToken, type KeyRing } from "../token-crypto.ts";
import { classifyGmailError } from "./classify-error.ts";

export const GMAIL_READONLY_SCOPE = "https://www.googleapis.com/auth/gmail.readonly";
/** Any one of these lets the worker read mail (gmail.metadata alone does not: no bodies, no q). */
export const SUFFICIENT_SCOPES = [
  GMAIL_READONLY_SCOPE,
  "https://www.googleapis.com/auth/gmail.modify",
  "https://mail.google.com/",
];

export function createOAuthClient(config: Config): OAuth2Client {
  if (!config.GOOGLE_CLIENT_ID || !config.GOOGLE_CLIENT_SECRET) {
    throw new GmailError(
      "permanent",
      "GOOGLE_CLIENT_ID and GOOGLE_CLIENT_SECRET must be set to connect or sync accounts",
      { reason: "config" },
    );
  }
  return new OAuth2Client({
    clientId: config.GOOGLE_CLIENT_ID,
    clientSecret: config.GOOGLE_CLIENT_SECRET,
    redirectUri: config.GOOGLE_OAUTH_REDIRECT_URI,
    endpoints: {
      oauth2AuthBaseUrl: config.GOOGLE_OAUTH_AUTH_URL,
      oauth2TokenUrl: config.GOOGLE_OAUTH_TOKEN_URL,
      oauth2FederatedSignonPemCertsUrl: config.GOOGLE_CERTS_URL,
      oauth2RevokeUrl: config.GOOGLE_OAUTH_REVOKE_URL,
    },
  });
}

/** A random state for the consent round trip (checked on return against a stored copy). */
export function newOAuthState(): string {
  return randomBytes(24).toString("base64url");
}

/** A PKCE pair (RFC 7636): the challenge goes in the consent URL, the verifier stays with us. */
export async function newPkcePair(config: Config): Promise<{ codeVerifier: string; codeChallenge: string }> {
  const { codeVerifier, codeChallenge } = await createOAuthClient(config).generateCodeVerifierAsync();
  if (codeChallenge === undefined) throw new Error("google-auth-library returned no PKCE code challenge");
  return { codeVerifier, codeChallenge };
}

export function buildConsentUrl(config: Config, state: string, loginHint?: string, codeChallenge?: string): string {
  return createOAuthClient(config).generateAuthUrl({
    access_type: "offline", // a refresh token …
    prompt: "consent", // … every time, not only on the first consent
    scope: [GMAIL_READONLY_SCOPE],
    include_granted_scopes: false,
    state,
    ...(loginHint ? { login_hint: loginHint } : {}),
    // PKCE: a code intercepted on its way back (browser history, a proxy log) is useless without
    // the verifier, which never leaves the server.
    ...(codeChallenge ? { code_challenge: codeChallenge, code_challenge_method: CodeChallengeMethod.S256 } : {}),
  });
}

export function hasSufficientScope(scopes: string[]): boolean {
  return scopes.some((s) => SUFFICIENT_SCOPES.includes(s));
}

/**
 * Whether a grant is exactly what we ask for: gmail.readonly and nothing else. A wider grant (a
 * consent URL edited to add gmail.modify or mail.google.com, or a missing scope) is refused rather
 * than stored "as readonly": the refresh token would carry the wider power whatever the scopes
 * column says, and a leaked token must only ever be able to read.
 */
export function isReadonlyGrant(scopes: string[]): boolean {
  return scopes.length === 1 && scopes[0] === GMAIL_READONLY_SCOPE;
}

export interface ConnectOptions {
  /** The PKCE verifier of the consent round trip that produced the code. */
  codeVerifier?: string | undefined;
  /**
   * Called with the mailbox address once getProfile has told it, before anything is stored;
   * throws ConnectRefusedError to refuse the account (a connect link's login hint, its one use).
   */
  accept?: (email: string) => Promise<void>;
}

export interface ConnectDeps {
  db: Db;
  config: Config;
  keyRing: KeyRing;
  log: Logger;
  /** Runs after the row is stored (the sync side enqueues the first backfill and the watch). */
  onConnected: (accountId: number) => Promise<void>;
}

/**
 * Exchanges an authorization code, reads the mailbox address with getProfile (the only identity the
 * worker trusts), and stores the account with encrypted tokens, status active. Throws GmailError:
 * auth_revoked for a bad/used code (or a wrong PKCE verifier) or a grant other than exactly
 * gmail.readonly; opts.accept's ConnectRefusedError passes through, with nothing stored.
 */
export async function connectAccount(
  deps: ConnectDeps,
  code: string,
  opts: ConnectOptions = {},
): Promise<{ accountId: number; email: string }> {
  const auth = createOAuthClient(deps.config);
  let tokens;
  try {
    ({ tokens } = await auth.getToken(
      opts.codeVerifier !== undefined ? { code, codeVerifier: opts.codeVerifier } : { code },
    ));
  } catch (err) {
    throw classifyGmailError(err);
  }
  if (!tokens.access_token)
    throw new GmailError("permanent", "token endpoint returned no access token", { reason: "no_access_token" });
  const scopes = (tokens.scope ?? "").split(/\s+/).filter(Boolean);
  if (!isReadonlyGrant(scopes)) {
    const granted = scopes.join(" ").slice(0, 300) || "(none)";
    throw new GmailError(
      "auth_revoked",
      `the grant must be ${GMAIL_READONLY_SCOPE} and nothing else (granted: ${granted}); nothing was stored`,
      { reason: "scope_not_readonly" },
    );
  }
  auth.setCredentials(tokens);

  let email: string;
  try {
    const api = gmail({ version: "v1", auth, rootUrl: deps.config.GMAIL_API_ROOT_URL, retry: false });
    const res = await api.users.getProfile({ userId: "me" }, { retry: false });
    if (!res.data.emailAddress) throw new GmailError("permanent", "getProfile returned no emailAddress");
    email = res.data.emailAddress.toLowerCase();
  } catch (err) {
    throw classifyGmailError(err, { method: "users.getProfile" });
  }
  await opts.accept?.(email);

  const row = await upsertConnectedAccount(deps.db, {
    email,
    scopes: [GMAIL_READONLY_SCOPE],
    accessTokenExpiresAt: tokens.expiry_date ? new Date(tokens.expiry_date) : null,
    encrypt: (accountId) => ({
      refreshTokenEncrypted: tokens.refresh_token
        ? encryptToken(deps.keyRing, "refresh_token", accountId, tokens.refresh_token)
        : null,
      accessTokenEncrypted: encryptToken(deps.keyRing, "access_token", accountId, tokens.access_token as string),
      keyId: deps.keyRing.activeKeyId,
    }),
  });
  if (!row.refresh_token_encrypted) {
    // Google issues a refresh token only with prompt=consent; without one the account cannot sync.
    await setAccountStatus(deps.db, row.id, "reauth_required", "no_refresh_token");
    throw new GmailError(
      "auth_revoked",
      `no refresh token for ${email}: reconnect with the consent URL (prompt=consent)`,
      { reason: "no_refresh_token" },
    );
  }
  deps.log.info({ accountId: row.id, email }, "account connected");
  await deps.onConnected(row.id);
  return { accountId: row.id, email };
}
