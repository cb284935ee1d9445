// Pub/Sub push: authenticate the request and decode Gmail's notification. Pure of queues and
// databases so the push route stays a thin sequence of checks (src/push-route.ts).
import { timingSafeEqual } from "node:crypto";
import { OAuth2Client } from "google-auth-library";
import { z } from "zod";

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
export function createPushAuthenticator(cfg: PushAuthConfig): (authorization: string | undefined, token: string | undefined) => Promise<PushAuthResult> {
  // One client per process: it caches Google's certificates for their Cache-Control max-age.
  const client = new OAuth2Client({ endpoints: { oauth2FederatedSignonPemCertsUrl: cfg.certsUrl } });
  const legacy = cfg.verificationToken !== undefined ? Buffer.from(cfg.verificationToken) : undefined;

  return async (authorization, token) => {
    const bearer = authorization?.match(/^Bearer\s+(\S+)$/i)?.[1];
    if (bearer !== undefined) {
      if (cfg.audience === undefined || cfg.serviceAccount === undefined) {
        return { ok: false, why: "OIDC push needs PUBSUB_AUDIENCE and PUBSUB_SERVICE_ACCOUNT" };
      }
      let payload;
      try {
        const ticket = await client.verifyIdToken({ idToken: bearer, audience: cfg.audience });
        payload = ticket.getPayload();
      } catch (err) {
        return { ok: false, why: `invalid token: ${(err as Error).message.split("\n")[0]}` };
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
  emailAddress: z.string().trim().min(3).max(320).regex(/^[^\s@]+@[^\s@]+$/, "not an email address"),
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

export class MalformedPushError extends Error {
  override name = "MalformedPushError";
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
