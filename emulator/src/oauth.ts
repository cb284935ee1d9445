// Google's OAuth2 authorization server, as google-auth-library talks to it: a consent endpoint that
// auto-approves (login_hint picks the account, default the first) and redirects with code+state,
// and a token endpoint for authorization_code and refresh_token grants with Google's error JSON.
import { createHash, randomBytes } from "node:crypto";
import type { FastifyInstance } from "fastify";

export interface AccessSession {
  email: string;
  scopes: Set<string>;
  expiresAt: number;
}

interface CodeGrant {
  email: string;
  clientId: string;
  redirectUri: string;
  scopes: string[];
  offline: boolean;
  forceConsent: boolean;
  codeChallenge: string | undefined;
  codeChallengeMethod: string;
  expiresAt: number;
  used: boolean;
}

interface RefreshGrant {
  email: string;
  clientId: string;
  scopes: string[];
  revoked: boolean;
}

export const GMAIL_SCOPES = {
  full: "https://mail.google.com/",
  modify: "https://www.googleapis.com/auth/gmail.modify",
  readonly: "https://www.googleapis.com/auth/gmail.readonly",
  metadata: "https://www.googleapis.com/auth/gmail.metadata",
  labels: "https://www.googleapis.com/auth/gmail.labels",
  compose: "https://www.googleapis.com/auth/gmail.compose",
};

export interface TokenStore {
  readonly clientId: string;
  readonly clientSecret: string;
  accessTtlSeconds: number;
  /** Looks up a Bearer access token; undefined when unknown, revoked or expired. */
  session(accessToken: string): AccessSession | undefined;
  issueRefreshToken(email: string, scopes: string[]): string;
  mintAccessToken(email: string, scopes: string[], refreshToken?: string): string;
  /** Revokes every refresh token of the account and the access tokens minted from them. */
  revoke(email: string): void;
}

function token(prefix: string, bytes = 32): string {
  return prefix + randomBytes(bytes).toString("base64url");
}

export function createTokenStore(
  clientId: string,
  clientSecret: string,
  accessTtlSeconds: number,
): TokenStore & { codes: Map<string, CodeGrant>; refresh: Map<string, RefreshGrant>; granted: Set<string> } {
  const access = new Map<string, AccessSession & { refreshToken: string | undefined }>();
  const refresh = new Map<string, RefreshGrant>();
  const codes = new Map<string, CodeGrant>();
  const granted = new Set<string>();
  const store = {
    clientId,
    clientSecret,
    accessTtlSeconds,
    codes,
    refresh,
    granted,
    session(accessToken: string) {
      const s = access.get(accessToken);
      if (!s) return undefined;
      if (s.expiresAt <= Date.now() || (s.refreshToken !== undefined && refresh.get(s.refreshToken)?.revoked)) {
        access.delete(accessToken);
        return undefined;
      }
      return s;
    },
    issueRefreshToken(email: string, scopes: string[]) {
      const t = token("1//emu-");
      refresh.set(t, { email, clientId, scopes, revoked: false });
      granted.add(`${email} ${clientId}`);
      return t;
    },
    mintAccessToken(email: string, scopes: string[], refreshToken?: string) {
      const t = token("ya29.emu-");
      access.set(t, {
        email,
        scopes: new Set(scopes),
        expiresAt: Date.now() + store.accessTtlSeconds * 1000,
        refreshToken,
      });
      return t;
    },
    revoke(email: string) {
      for (const g of refresh.values()) if (g.email === email) g.revoked = true;
      for (const [t, s] of access) if (s.email === email) access.delete(t);
      for (const key of granted) if (key.startsWith(`${email} `)) granted.delete(key);
    },
  };
  return store;
}

function oauthError(status: number, error: string, description: string) {
  return { status, body: { error, error_description: description } };
}

/** Google's numeric subject id for an address (stable per address). */
export function subjectOf(email: string): string {
  return `1${BigInt(`0x${createHash("sha256").update(email).digest("hex").slice(0, 16)}`)
    .toString()
    .padStart(20, "0")}`;
}

export function registerOAuthRoutes(
  app: FastifyInstance,
  store: ReturnType<typeof createTokenStore>,
  accounts: () => string[],
  latency: () => Promise<void>,
  signJwt: (claims: Record<string, unknown>) => string,
): void {
  // With openid (or email/profile, which imply it) in the grant, Google adds an id_token.
  const idToken = (email: string, scopes: string[]) => {
    if (!scopes.some((s) => s === "openid" || s === "email" || s === "profile" || s.endsWith("/userinfo.email")))
      return {};
    const now = Math.floor(Date.now() / 1000);
    return {
      id_token: signJwt({
        iss: "https://accounts.google.com",
        azp: store.clientId,
        aud: store.clientId,
        sub: subjectOf(email),
        email,
        email_verified: true,
        iat: now,
        exp: now + 3600,
      }),
    };
  };
  const consent = async (req: { query: unknown }, reply: import("fastify").FastifyReply) => {
    const q = req.query as Record<string, string | undefined>;
    if (q.client_id !== store.clientId)
      return reply.code(401).type("text/plain").send("Error 401: invalid_client\nThe OAuth client was not found.");
    if (!q.redirect_uri)
      return reply
        .code(400)
        .type("text/plain")
        .send("Error 400: invalid_request\nMissing required parameter: redirect_uri");
    if (q.response_type !== "code")
      return reply.code(400).type("text/plain").send("Error 400: unsupported_response_type");
    const list = accounts();
    const email = q.login_hint ? list.find((a) => a.toLowerCase() === q.login_hint?.toLowerCase()) : list[0];
    const target = new URL(q.redirect_uri);
    if (email === undefined) {
      // No such account: the user "denies" (Google would show its account chooser).
      target.searchParams.set("error", "access_denied");
      if (q.state !== undefined) target.searchParams.set("state", q.state);
      return reply.redirect(target.toString(), 302);
    }
    // Google accepts the two methods of RFC 7636 (plain when none is named) and refuses the rest.
    const method = q.code_challenge_method ?? "plain";
    if (q.code_challenge !== undefined && method !== "S256" && method !== "plain") {
      return reply.code(400).type("text/plain").send("Error 400: invalid_request\nInvalid code_challenge_method");
    }
    const scopes = (q.scope ?? "").split(/\s+/).filter(Boolean);
    const code = token("4/0Aemu-", 24);
    codes.set(code, {
      email,
      clientId: store.clientId,
      redirectUri: q.redirect_uri,
      scopes,
      offline: q.access_type === "offline",
      forceConsent: (q.prompt ?? "").split(/\s+/).includes("consent"),
      codeChallenge: q.code_challenge,
      codeChallengeMethod: method,
      expiresAt: Date.now() + 10 * 60_000,
      used: false,
    });
    if (q.state !== undefined) target.searchParams.set("state", q.state);
    target.searchParams.set("code", code);
    target.searchParams.set("scope", scopes.join(" "));
    target.searchParams.set("authuser", "0");
    target.searchParams.set("prompt", "consent");
    return reply.redirect(target.toString(), 302);
  };
  const codes = store.codes;
  app.get("/o/oauth2/v2/auth", consent);
  app.get("/o/oauth2/auth", consent);

  const tokenRoute = async (req: import("fastify").FastifyRequest, reply: import("fastify").FastifyReply) => {
    await latency();
    const body = (req.body ?? {}) as Record<string, string | undefined>;
    let clientId = body.client_id;
    let clientSecret = body.client_secret;
    const basic = /^Basic\s+(\S+)$/i.exec(req.headers.authorization ?? "")?.[1];
    if (basic) {
      const [id, secret] = Buffer.from(basic, "base64").toString().split(":");
      clientId = decodeURIComponent(id ?? "");
      clientSecret = decodeURIComponent(secret ?? "");
    }
    const answer = (r: { status: number; body: unknown }) =>
      reply.code(r.status).header("cache-control", "no-cache, no-store, max-age=0, must-revalidate").send(r.body);
    if (clientId !== store.clientId)
      return answer(oauthError(401, "invalid_client", "The OAuth client was not found."));
    if (clientSecret !== store.clientSecret) return answer(oauthError(401, "invalid_client", "Unauthorized"));
    const ttl = store.accessTtlSeconds;
    if (body.grant_type === "authorization_code") {
      const grant = body.code !== undefined ? codes.get(body.code) : undefined;
      if (!grant || grant.used || grant.expiresAt < Date.now())
        return answer(oauthError(400, "invalid_grant", "Bad Request"));
      grant.used = true;
      if (body.redirect_uri !== grant.redirectUri)
        return answer(oauthError(400, "redirect_uri_mismatch", "Bad Request"));
      // PKCE as Google checks it (RFC 7636; https://developers.google.com/identity/protocols/oauth2/native-app#step1-code-verifier
      // and #exchange-authorization-code): a code issued with a code_challenge is exchanged only with
      // the code_verifier whose BASE64URL(SHA256(verifier)) — S256 — or, for method plain, the
      // verifier itself equals the challenge; a missing or wrong verifier is invalid_grant. (Here
      // any exchange attempt uses the code up, marked above: a stolen code gets one guess.)
      if (grant.codeChallenge !== undefined) {
        const v = body.code_verifier ?? "";
        const computed = grant.codeChallengeMethod === "S256" ? createHash("sha256").update(v).digest("base64url") : v;
        if (computed !== grant.codeChallenge) return answer(oauthError(400, "invalid_grant", "Invalid code verifier."));
      }
      // Google returns a refresh token only on the first offline exchange for this client and
      // user, unless the user was prompted for consent again.
      const key = `${grant.email} ${grant.clientId}`;
      const refreshToken =
        grant.offline && (grant.forceConsent || !store.granted.has(key))
          ? store.issueRefreshToken(grant.email, grant.scopes)
          : undefined;
      const accessToken = store.mintAccessToken(grant.email, grant.scopes, refreshToken);
      return answer({
        status: 200,
        body: {
          access_token: accessToken,
          expires_in: ttl,
          ...(refreshToken ? { refresh_token: refreshToken } : {}),
          scope: grant.scopes.join(" "),
          token_type: "Bearer",
          ...idToken(grant.email, grant.scopes),
        },
      });
    }
    if (body.grant_type === "refresh_token") {
      const grant = body.refresh_token !== undefined ? store.refresh.get(body.refresh_token) : undefined;
      if (!grant || grant.revoked)
        return answer(oauthError(400, "invalid_grant", "Token has been expired or revoked."));
      const accessToken = store.mintAccessToken(grant.email, grant.scopes, body.refresh_token);
      return answer({
        status: 200,
        body: {
          access_token: accessToken,
          expires_in: ttl,
          scope: grant.scopes.join(" "),
          token_type: "Bearer",
          ...idToken(grant.email, grant.scopes),
        },
      });
    }
    return answer(oauthError(400, "unsupported_grant_type", `Invalid grant_type: ${body.grant_type ?? ""}`));
  };
  app.post("/token", tokenRoute);
  app.post("/o/oauth2/token", tokenRoute);

  // oauth2RevokeUrl: revokes the grant a refresh or access token belongs to.
  app.post("/revoke", async (req, reply) => {
    const t = ((req.query as Record<string, string>).token ??
      (req.body as Record<string, string> | undefined)?.token) as string | undefined;
    const grant = t !== undefined ? store.refresh.get(t) : undefined;
    const session = t !== undefined ? store.session(t) : undefined;
    const email = grant?.email ?? session?.email;
    if (email === undefined)
      return reply.code(400).send({ error: "invalid_token", error_description: "Token expired or revoked" });
    store.revoke(email);
    return reply.code(200).send({});
  });
}
