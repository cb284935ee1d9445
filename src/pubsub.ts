// Pub/Sub push: authenticate the request and decode Gmail's notification. Pure of queues and
// databases so the push route stays a thin sequence of checks (src/push-route.ts).
import { timingSafeEqual } from "node:crypto";
import { OAuth2Client } from "google-auth-library";
import { z } from "zod";
import { MalformedPushError } from "./errors.ts";

export type PushAuthResult = { ok: true; via: "oidc" | "token"; subject?: string } | { ok: false; why: string };

export interface PushAuthConfig {
  certsUrl: string;
  audience: string | undefined;
  serviceAccount: string | undefined;
  verificationToken: string | undefined;
}

/**
 * Verifies a push request: a Bearer OIDC JWT signed by Google (signature, iss, aud, exp via
 * google-auth-library), then `email` = the configured push service account and
 * `email_verified` true, which the library does not check. The legacy shared-token mode
 * (?token=) is used only when PUBSUB_VERIFICATION_TOKEN is set.
 */
export function createPushAuthenticator(
  cfg: PushAuthConfig,
): (authorization: string | undefined, token: string | undefined) => Promise<PushAuthResult> {
  const client = new OAuth2Client();
  const certs = googleCerts(cfg.certsUrl);
  const legacy = cfg.verificationToken !== undefined ? Buffer.from(cfg.verificationToken) : undefined;

  return async (authorization, token) => {
    const bearer = authorization?.match(/^Bearer\s+(\S+)$/i)?.[1];
    if (bearer !== undefined) {
      if (cfg.audience === undefined || cfg.serviceAccount === undefined) {
        return { ok: false, why: "OIDC push needs PUBSUB_AUDIENCE and PUBSUB_SERVICE_ACCOUNT" };
      }
      let payload;
      try {
        const ticket = await client.verifySignedJwtWithCertsAsync(bearer, await certs(), cfg.audience, GOOGLE_ISSUERS);
        payload = ticket.getPayload();
      } catch (err) {
        return { ok: false, why: `invalid token: ${boundedReason((err as Error).message)}` };
      }
      if (payload === undefined) return { ok: false, why: "token has no payload" };
      if (payload.email !== cfg.serviceAccount) return { ok: false, why: "token is for another service account" };
      if (payload.email_verified !== true) return { ok: false, why: "token email is not verified" };
      return { ok: true, via: "oidc", subject: payload.sub };
    }
    if (legacy !== undefined && token !== undefined) {
      const given = Buffer.from(token);
      if (given.length === legacy.length && timingSafeEqual(given, legacy)) return { ok: true, via: "token" };
      return { ok: false, why: "wrong verification token" };
    }
    return { ok: false, why: "missing credentials" };
  };
}

// What google-auth-library's verifyIdToken checks the issuer against.
const GOOGLE_ISSUERS = ["accounts.google.com", "https://accounts.google.com"];

/**
 * A rejection reason fit for a log line: google-auth-library puts the whole token (or its decoded
 * envelope) into some of its messages ("Wrong number of segments in token: <jwt>"). First line,
 * long base64url runs redacted, 160 characters at most.
 */
export function boundedReason(message: string): string {
  const line = (message.split("\n")[0] ?? "").replace(/[A-Za-z0-9_\-+/=.]{24,}/g, "[redacted]");
  return line.length > 160 ? `${line.slice(0, 157)}...` : line;
}

const CERTS_FAILURE_BACKOFF_MS = 5_000;
const CERTS_DEFAULT_MAX_AGE_S = 3600;

/**
 * Google's token-signing certificates, fetched once at a time (single flight), kept for their
 * Cache-Control max-age, and — when the fetch fails — not asked for again for a few seconds.
 * google-auth-library's own cache neither shares a fetch in flight nor remembers a failure: with the
 * certificate URL down, 20 junk pushes made 80 outbound fetches. Hand-written: ~25 lines around
 * fetch, no library does single flight plus negative caching for this.
 */
export function googleCerts(url: string, fetchFn: typeof fetch = fetch): () => Promise<Record<string, string>> {
  let cached: { certs: Record<string, string>; until: number } | undefined;
  let inFlight: Promise<Record<string, string>> | undefined;
  let failedUntil = 0;
  return async () => {
    const now = Date.now();
    if (cached !== undefined && now < cached.until) return cached.certs;
    if (now < failedUntil) throw new Error("Google's signing certificates could not be fetched; retrying shortly");
    inFlight ??= (async () => {
      try {
        const res = await fetchFn(url, { signal: AbortSignal.timeout(5_000) });
        if (!res.ok) throw new Error(`certificate fetch answered ${res.status}`);
        const certs = z.record(z.string(), z.string()).parse(await res.json());
        const maxAge = Number(
          /max-age=(\d+)/.exec(res.headers.get("cache-control") ?? "")?.[1] ?? CERTS_DEFAULT_MAX_AGE_S,
        );
        cached = { certs, until: Date.now() + maxAge * 1000 };
        return certs;
      } catch (err) {
        failedUntil = Date.now() + CERTS_FAILURE_BACKOFF_MS;
        throw err;
      } finally {
        inFlight = undefined;
      }
    })();
    return inFlight;
  };
}

const envelopeSchema = z.object({
  message: z
    .object({
      data: z.string().min(1),
      messageId: z.string().min(1).optional(),
      message_id: z.string().min(1).optional(),
      publishTime: z.string().optional(),
      attributes: z.record(z.string(), z.string()).optional(),
    })
    .refine((m) => m.messageId !== undefined || m.message_id !== undefined, "message has no messageId"),
  subscription: z.string().optional(),
  deliveryAttempt: z.number().optional(),
});

const notificationSchema = z.object({
  emailAddress: z
    .string()
    .trim()
    .min(3)
    .max(320)
    .regex(/^[^\s@]+@[^\s@]+$/, "not an email address"),
  // Real payloads carry a JSON number, the docs a string: accept both, keep digits only.
  historyId: z.union([
    z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
    z.string().regex(/^\d{1,20}$/, "historyId must be digits"),
  ]),
});

export interface PushNotification {
  messageId: string;
  emailAddress: string;
  /** uint64 as a decimal string (compare with BigInt or in SQL, never as JS strings). */
  historyId: string;
  publishTime: string | undefined;
}

/** Decodes a push body into Gmail's notification, or throws MalformedPushError (→ 400). */
export function decodePushEnvelope(body: unknown): PushNotification {
  const env = envelopeSchema.safeParse(body);
  if (!env.success) throw new MalformedPushError(`bad envelope: ${env.error.issues[0]?.message ?? "invalid"}`);
  const { data, messageId, message_id, publishTime } = env.data.message;
  if (!/^[A-Za-z0-9+/_-]+={0,2}$/.test(data)) throw new MalformedPushError("message.data is not base64");
  let json: unknown;
  try {
    json = JSON.parse(Buffer.from(data, "base64").toString("utf8"));
  } catch {
    throw new MalformedPushError("message.data is not JSON");
  }
  const n = notificationSchema.safeParse(json);
  if (!n.success) {
    const issue = n.error.issues[0];
    throw new MalformedPushError(`bad notification: ${issue?.path.join(".") || "data"} ${issue?.message ?? "invalid"}`);
  }
  const historyId = BigInt(n.data.historyId);
  if (historyId >= 2n ** 64n) throw new MalformedPushError("bad notification: historyId beyond uint64");
  return {
    messageId: (messageId ?? message_id) as string,
    emailAddress: n.data.emailAddress.toLowerCase(),
    historyId: historyId.toString(),
    publishTime,
  };
}
