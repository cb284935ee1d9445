// Connect links: connecting a mailbox is an operator act. `gmail-sync auth --link` mints a signed,
// expiring, one-use URL to /oauth2/start; the route refuses anything else, so whoever merely
// reaches the public listener cannot enrol a mailbox (quota, storage, hostile attachments, their
// mail in everyone's search) nor re-enable one that was disconnected.
//
// Token: <payload b64url>.<HMAC-SHA256 b64url>, payload {id, exp, hint?}. The HMAC key is derived
// from TOKEN_ENCRYPTION_KEY with HKDF under its own info string, so no new secret is needed and the
// derived key can neither decrypt tokens nor be turned back into the key that does. A forged or
// expired link is refused from the signature alone: no Redis read or write for it.
// One use: minting stores a marker key with the link's lifetime as TTL (Redis holds at most one
// small key per minted link, gone when the link expires); a successful connection deletes it.
import { createHmac, hkdfSync, randomBytes, timingSafeEqual } from "node:crypto";
import type { Redis } from "ioredis";
import type { Config } from "./config.ts";
import type { KeyRing } from "./token-crypto.ts";

export interface ConnectLinkClaims {
  /** Random id naming the one-use marker in Redis. */
  id: string;
  /** Expiry, Unix seconds. */
  exp: number;
  /** The only address this link may connect (lower case), when the operator named one. */
  hint?: string;
}

const HKDF_INFO = "gmail-sync/connect-link/v1";
const MAX_TOKEN_CHARS = 1024;
export const MIN_LINK_SECONDS = 60;
// A link is a bearer credential: a week is the longest it may lie around in someone's mail.
export const MAX_LINK_SECONDS = 7 * 24 * 3600;

/** One HMAC key per encryption key, active first: links minted before a key rotation stay valid. */
export function connectLinkKeys(ring: KeyRing): Buffer[] {
  const derive = (key: Buffer) => Buffer.from(hkdfSync("sha256", key, Buffer.alloc(0), HKDF_INFO, 32));
  const active = ring.keys.get(ring.activeKeyId);
  const rest = [...ring.keys].filter(([id]) => id !== ring.activeKeyId).map(([, k]) => k);
  return [...(active ? [active] : []), ...rest].map(derive);
}

function mac(key: Buffer, payload: string): Buffer {
  return createHmac("sha256", key).update(payload).digest();
}

/** The token for these claims, signed with `key` (exported so tests can sign what they need). */
export function signConnectLink(key: Buffer, claims: ConnectLinkClaims): string {
  const payload = Buffer.from(JSON.stringify(claims)).toString("base64url");
  return `${payload}.${mac(key, payload).toString("base64url")}`;
}

/** The claims of a genuine, unexpired token, else null. Pure: touches no store. */
export function verifyConnectLink(keys: Buffer[], token: string, nowMs = Date.now()): ConnectLinkClaims | null {
  if (token.length > MAX_TOKEN_CHARS) return null;
  const [payload, sig, extra] = token.split(".");
  if (payload === undefined || sig === undefined || extra !== undefined) return null;
  const given = Buffer.from(sig, "base64url");
  if (
    !keys.some((k) => {
      const want = mac(k, payload);
      return given.length === want.length && timingSafeEqual(given, want);
    })
  )
    return null;
  let claims: unknown;
  try {
    claims = JSON.parse(Buffer.from(payload, "base64url").toString("utf8"));
  } catch {
    return null;
  }
  const c = claims as Partial<ConnectLinkClaims>;
  if (typeof c.id !== "string" || typeof c.exp !== "number" || (c.hint !== undefined && typeof c.hint !== "string"))
    return null;
  if (c.exp * 1000 <= nowMs) return null;
  return { id: c.id, exp: c.exp, ...(c.hint !== undefined ? { hint: c.hint } : {}) };
}

export function connectLinkKey(prefix: string, id: string): string {
  return `${prefix}:connect-link:${id}`;
}

/** "24h", "30m", "7d", "90s" or plain seconds → seconds, within [MIN_LINK_SECONDS, MAX_LINK_SECONDS]. */
export function parseLinkDuration(text: string): number {
  const m = /^\s*(\d+)\s*([smhd]?)\s*$/i.exec(text);
  if (!m) throw new Error(`--expires ${JSON.stringify(text)}: use a number with s, m, h or d, e.g. 24h`);
  const unit = { "": 1, s: 1, m: 60, h: 3600, d: 86400 }[(m[2] ?? "").toLowerCase() as "" | "s" | "m" | "h" | "d"];
  const seconds = Number(m[1]) * unit;
  if (seconds < MIN_LINK_SECONDS || seconds > MAX_LINK_SECONDS) {
    throw new Error(
      `--expires ${text}: must be between ${MIN_LINK_SECONDS / 60} minute and ${MAX_LINK_SECONDS / 86400} days`,
    );
  }
  return seconds;
}

/**
 * Where links point: /oauth2/start next to the configured callback (the public listener Google
 * redirects to), so a path prefix added by a proxy is kept and no extra setting is needed.
 */
export function connectStartUrl(config: Pick<Config, "GOOGLE_OAUTH_REDIRECT_URI">): URL {
  return new URL("start", config.GOOGLE_OAUTH_REDIRECT_URI);
}

export interface MintDeps {
  redis: Redis;
  config: Pick<Config, "QUEUE_PREFIX" | "GOOGLE_OAUTH_REDIRECT_URI">;
  keyRing: KeyRing;
}

export interface ConnectLink {
  url: string;
  token: string;
  id: string;
  expiresAt: Date;
  loginHint: string | undefined;
}

export async function mintConnectLink(
  deps: MintDeps,
  opts: { expiresInSeconds: number; loginHint?: string | undefined },
): Promise<ConnectLink> {
  const seconds = Math.floor(opts.expiresInSeconds);
  if (!(seconds >= 1 && seconds <= MAX_LINK_SECONDS))
    throw new Error(`a connect link lives 1 s to ${MAX_LINK_SECONDS} s, not ${opts.expiresInSeconds}`);
  const hint = opts.loginHint?.trim().toLowerCase();
  if (hint !== undefined && !/^[^\s@]+@[^\s@]+$/.test(hint))
    throw new Error(`--login-hint ${JSON.stringify(opts.loginHint)} is not an email address`);
  const id = randomBytes(16).toString("base64url");
  const exp = Math.floor(Date.now() / 1000) + seconds;
  const [key] = connectLinkKeys(deps.keyRing);
  if (key === undefined) throw new Error("no token encryption key to sign the link with");
  const token = signConnectLink(key, { id, exp, ...(hint !== undefined ? { hint } : {}) });
  await deps.redis.set(connectLinkKey(deps.config.QUEUE_PREFIX, id), "1", "EX", seconds);
  const url = connectStartUrl(deps.config);
  url.searchParams.set("link", token);
  return { url: url.toString(), token, id, expiresAt: new Date(exp * 1000), loginHint: hint };
}

/** Whether the link was minted here and has not been used (its marker is still there). */
export async function connectLinkUnused(redis: Redis, prefix: string, id: string): Promise<boolean> {
  return (await redis.exists(connectLinkKey(prefix, id))) === 1;
}

/** Uses the link up; false when it was already used (or expired). Atomic: one winner. */
export async function consumeConnectLink(redis: Redis, prefix: string, id: string): Promise<boolean> {
  return (await redis.del(connectLinkKey(prefix, id))) === 1;
}
