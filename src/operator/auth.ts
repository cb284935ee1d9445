// Who may use the operator page: whoever holds the operator's credentials from the config
// (OPERATOR_TOKEN, and/or OPERATOR_USER + OPERATOR_PASSWORD). Pure functions, no I/O.
//
// Three ways in, each checked in constant time:
// - `Authorization: Bearer <OPERATOR_TOKEN>` (scripts, curl);
// - `Authorization: Basic <user:password>` (curl -u; browsers send it only if told to);
// - a session cookie set by the login form (POST /operator/login with the token or the user and
//   password): `<payload>.<HMAC-SHA256>`, payload {sid, exp}, HttpOnly, SameSite=Strict, Path=/operator.
// The HMAC key is derived (HKDF) from the configured credentials themselves: no new secret, every
// process of the deployment accepts the same cookie, and changing a credential ends every session.
//
// CSRF: a browser attaches cookies and Basic credentials by itself, so every POST made with them
// must also carry the anti-CSRF token the page embeds (an HMAC of the session id under the same
// key), and a cross-site Origin / Sec-Fetch-Site is refused whatever it carries. A bearer header is
// never attached by a browser on its own: a request that carries one needs no CSRF token.
import { createHash, createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import type { Config } from "../config.ts";

export const SESSION_COOKIE = "gmail_sync_operator";
/** How long a login lasts. */
export const SESSION_TTL_SECONDS = 8 * 3600;
const MAX_HEADER_CHARS = 4096;

export interface OperatorCredentials {
  token: string | undefined;
  user: string | undefined;
  password: string | undefined;
  /** The session and CSRF key, derived from the credentials above. */
  key: Buffer;
}

/** How a request proved who it is; `sid` is what its CSRF token is bound to. */
export interface OperatorAuth {
  method: "bearer" | "basic" | "session";
  sid: string;
}

/** The configured credentials, or null when none are set (then the operator page is not mounted). */
export function operatorCredentials(
  config: Pick<Config, "OPERATOR_TOKEN" | "OPERATOR_USER" | "OPERATOR_PASSWORD">,
): OperatorCredentials | null {
  const token = config.OPERATOR_TOKEN;
  const user = config.OPERATOR_USER;
  const password = config.OPERATOR_PASSWORD;
  const basic = user !== undefined && password !== undefined;
  if (token === undefined && !basic) return null;
  // Length-prefixed, so no two different credential sets give the same key material.
  const material = [token ?? "", basic ? user : "", basic ? password : ""]
    .map((s) => `${Buffer.byteLength(s)}:${s}`)
    .join("|");
  const key = Buffer.from(hkdfSync("sha256", material, "gmail-sync", "gmail-sync/operator-session/v1", 32));
  return { token, user: basic ? user : undefined, password: basic ? password : undefined, key };
}

/** Constant-time equality of two strings of any lengths (compared as SHA-256 digests). */
export function safeEqual(a: string, b: string): boolean {
  const da = createHash("sha256").update(a).digest();
  const db = createHash("sha256").update(b).digest();
  return timingSafeEqual(da, db);
}

/** Checks a token against OPERATOR_TOKEN (false when none is configured). */
export function tokenMatches(creds: OperatorCredentials, token: string): boolean {
  // Compared even when no token is configured, so the answer takes as long either way.
  const ok = safeEqual(token, creds.token ?? "");
  return ok && creds.token !== undefined;
}

/** Checks a user and password against OPERATOR_USER/OPERATOR_PASSWORD (both compared, always). */
export function loginMatches(creds: OperatorCredentials, user: string, password: string): boolean {
  const userOk = safeEqual(user, creds.user ?? "");
  const passwordOk = safeEqual(password, creds.password ?? "");
  return userOk && passwordOk && creds.user !== undefined;
}

function mac(key: Buffer, what: string): Buffer {
  return createHmac("sha256", key).update(what).digest();
}

/** A new session: the cookie's value, and its session id. */
export function newSession(creds: OperatorCredentials, nowMs = Date.now()): { cookie: string; sid: string } {
  const sid = randomBytes(18).toString("base64url");
  const exp = Math.floor(nowMs / 1000) + SESSION_TTL_SECONDS;
  const payload = Buffer.from(JSON.stringify({ sid, exp })).toString("base64url");
  return { cookie: `${payload}.${mac(creds.key, `session.${payload}`).toString("base64url")}`, sid };
}

/** The session id of a genuine, unexpired session cookie value, else null. */
export function verifySession(creds: OperatorCredentials, value: string, nowMs = Date.now()): string | null {
  if (value.length > 512) return null;
  const [payload, sig, extra] = value.split(".");
  if (payload === undefined || sig === undefined || extra !== undefined) return null;
  const given = Buffer.from(sig, "base64url");
  const want = mac(creds.key, `session.${payload}`);
  if (given.length !== want.length || !timingSafeEqual(given, want)) return null;
  try {
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8")) as { sid?: unknown; exp?: unknown };
    if (typeof claims.sid !== "string" || typeof claims.exp !== "number") return null;
    return claims.exp * 1000 > nowMs ? claims.sid : null;
  } catch {
    return null;
  }
}

/** The anti-CSRF token of a session (or of a Basic-auth user): what the page's forms carry. */
export function csrfToken(creds: OperatorCredentials, sid: string): string {
  return mac(creds.key, `csrf.${sid}`).toString("base64url");
}

export function csrfMatches(creds: OperatorCredentials, sid: string, given: string): boolean {
  return safeEqual(given, csrfToken(creds, sid));
}

/** The value of cookie `name` in a Cookie header. */
export function readCookie(header: string | undefined, name: string): string | undefined {
  if (header === undefined || header.length > MAX_HEADER_CHARS) return undefined;
  for (const part of header.split(";")) {
    const eq = part.indexOf("=");
    if (eq > 0 && part.slice(0, eq).trim() === name) return part.slice(eq + 1).trim();
  }
  return undefined;
}

/** Set-Cookie for a session (or, with value "", one that clears it). */
export function sessionCookie(value: string): string {
  const maxAge = value === "" ? 0 : SESSION_TTL_SECONDS;
  // No `Secure`: the internal listener is plain HTTP on loopback. HttpOnly: no script reads it.
  // SameSite=Strict: no other site's page can make the browser send it.
  return `${SESSION_COOKIE}=${value}; Path=/operator; Max-Age=${maxAge}; HttpOnly; SameSite=Strict`;
}

/** Who the request is, from its Authorization header or session cookie; null: nobody we know. */
export function authenticate(
  creds: OperatorCredentials,
  headers: { authorization?: string | undefined; cookie?: string | undefined },
  nowMs = Date.now(),
): OperatorAuth | null {
  const authorization = headers.authorization;
  if (authorization !== undefined && authorization.length <= MAX_HEADER_CHARS) {
    const [scheme, value] = authorization.split(/\s+/, 2);
    if (scheme?.toLowerCase() === "bearer" && value !== undefined)
      return tokenMatches(creds, value) ? { method: "bearer", sid: "bearer" } : null;
    if (scheme?.toLowerCase() === "basic" && value !== undefined) {
      const decoded = Buffer.from(value, "base64").toString("utf8");
      const colon = decoded.indexOf(":");
      if (colon < 0) return null;
      const user = decoded.slice(0, colon);
      return loginMatches(creds, user, decoded.slice(colon + 1)) ? { method: "basic", sid: `basic.${user}` } : null;
    }
    return null;
  }
  const cookie = readCookie(headers.cookie, SESSION_COOKIE);
  if (cookie === undefined) return null;
  const sid = verifySession(creds, cookie, nowMs);
  return sid === null ? null : { method: "session", sid };
}

/**
 * Whether a state-changing request may have come from another site: its Origin (sent by browsers
 * on every POST) names another origin than the one it was sent to, or its Sec-Fetch-Site says so.
 */
export function crossSite(headers: {
  origin?: string | undefined;
  host?: string | undefined;
  "sec-fetch-site"?: string | undefined;
}): boolean {
  const site = headers["sec-fetch-site"];
  if (site !== undefined && site !== "same-origin" && site !== "none") return true;
  const origin = headers.origin;
  if (origin === undefined) return false;
  try {
    if (origin === "null") return true;
    const from = new URL(origin);
    // Both through URL, so that a default port (`:80`) reads the same on either side.
    return from.host !== new URL(`${from.protocol}//${headers.host ?? ""}`).host;
  } catch {
    return true;
  }
}
