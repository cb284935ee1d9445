// The browser side of connecting an account, which only an operator can start:
//   GET /oauth2/start?link=…   a connect link from `gmail-sync auth --link` (src/connect-link.ts):
//     signed, unexpired, unused — else 403, decided from the signature before Redis is touched.
//     Then a random state bound to the link, its login hint and a PKCE verifier is kept in Redis
//     for 10 minutes and the browser goes to Google's consent page with the S256 challenge.
//   GET /oauth2/callback       accepts the code only with a state issued here and not used before
//     (GETDEL: one use), exchanges it with the verifier, and before storing anything checks the
//     mailbox address against the link's login hint and uses the link up (one connection a link).
// A disconnected account is re-enabled only this way, i.e. through a new link.
// Both routes are rate-limited per client IP in their own scope, and every Redis call is bounded:
// with Redis down they answer 503 within seconds instead of hanging.
import rateLimit from "@fastify/rate-limit";
import type { FastifyInstance, FastifyReply } from "fastify";
import type { Redis } from "ioredis";
import type { Config } from "./config.ts";
import {
  connectLinkKeys,
  connectLinkUnused,
  consumeConnectLink,
  verifyConnectLink,
  type ConnectLinkClaims,
} from "./connect-link.ts";
import type { Db } from "./db/database.ts";
import { withinMs } from "./deadline.ts";
import { ConnectRefusedError, DeadlineError, isGmailError } from "./errors.ts";
import { buildConsentUrl, connectAccount, newOAuthState, newPkcePair } from "./gmail/oauth.ts";
import type { Logger } from "./log.ts";
import type { KeyRing } from "./token-crypto.ts";

export interface OAuthRouteDeps {
  db: Db;
  redis: Redis;
  config: Config;
  keyRing: KeyRing;
  log: Logger;
  onConnected: (accountId: number) => Promise<void>;
  /** How long a request waits for Redis before answering 503 (default 2 s). */
  redisDeadlineMs?: number;
}

const STATE_TTL_SECONDS = 600;
const REDIS_DEADLINE_MS = 2_000;

/** What a state stands for, kept under its key until the callback uses it. */
export interface OAuthStateBinding {
  /** The connect link that started this round trip (absent for `gmail-sync auth` without --link). */
  link?: string;
  /** The only address the callback may connect. */
  hint?: string;
  /** PKCE verifier for the code exchange. */
  verifier?: string;
}

export function oauthStateKey(config: Pick<Config, "QUEUE_PREFIX">, state: string): string {
  return `${config.QUEUE_PREFIX}:oauth-state:${state}`;
}

/** Issues a state for one consent round trip (also used by `gmail-sync auth`). */
export async function issueOAuthState(
  redis: Redis,
  config: Pick<Config, "QUEUE_PREFIX">,
  binding: OAuthStateBinding = {},
): Promise<string> {
  const state = newOAuthState();
  await redis.set(oauthStateKey(config, state), JSON.stringify(binding), "EX", STATE_TTL_SECONDS);
  return state;
}

function parseBinding(stored: string): OAuthStateBinding {
  try {
    const v = JSON.parse(stored) as unknown;
    return typeof v === "object" && v !== null ? (v as OAuthStateBinding) : {};
  } catch {
    return {};
  }
}

const text = (reply: FastifyReply, status: number, body: string) => reply.code(status).type("text/plain").send(body);

export function registerOAuthRoutes(app: FastifyInstance, deps: OAuthRouteDeps): void {
  // An encapsulated scope: the rate limit applies to these two routes only.
  void app.register(async (scope) => {
    await scope.register(rateLimit, {
      max: deps.config.OAUTH_RATE_LIMIT_PER_MINUTE,
      timeWindow: 60_000,
      // In memory, per process: a flood must not add to Redis what it is meant to protect.
      cache: 10_000,
    });
    registerRoutes(scope, deps);
  });
}

function registerRoutes(app: FastifyInstance, deps: OAuthRouteDeps): void {
  const { config, redis } = deps;
  const linkKeys = connectLinkKeys(deps.keyRing);
  const deadline = deps.redisDeadlineMs ?? REDIS_DEADLINE_MS;
  const bounded = <T>(fn: () => Promise<T>) => withinMs(deadline, fn, "Redis");

  app.get<{ Querystring: { link?: string } }>("/oauth2/start", async (req, reply) => {
    reply.header("cache-control", "no-store");
    const token = req.query.link;
    const claims: ConnectLinkClaims | null =
      typeof token === "string" && token !== "" ? verifyConnectLink(linkKeys, token) : null;
    if (claims === null) {
      return text(reply, 403, "connecting a mailbox needs a connect link from the operator (gmail-sync auth --link)\n");
    }
    let round: { state: string; challenge: string } | null;
    try {
      round = await bounded(async () => {
        if (!(await connectLinkUnused(redis, config.QUEUE_PREFIX, claims.id))) return null;
        const { codeVerifier, codeChallenge } = await newPkcePair(config);
        const state = await issueOAuthState(redis, config, {
          link: claims.id,
          verifier: codeVerifier,
          ...(claims.hint !== undefined ? { hint: claims.hint } : {}),
        });
        return { state, challenge: codeChallenge };
      });
    } catch (err) {
      return unavailable(reply, deps, err);
    }
    if (round === null) return text(reply, 403, "this connect link was already used; ask the operator for a new one\n");
    return reply.redirect(buildConsentUrl(config, round.state, claims.hint, round.challenge), 302);
  });

  app.get<{ Querystring: { state?: string; code?: string; error?: string } }>(
    "/oauth2/callback",
    async (req, reply) => {
      const { state, code, error } = req.query;
      reply.header("cache-control", "no-store");
      if (typeof state !== "string" || state === "" || state.length > 200)
        return text(reply, 400, "unknown or expired state: use your connect link again\n");
      let stored: string | null;
      try {
        stored = await bounded(() => redis.getdel(oauthStateKey(config, state)));
      } catch (err) {
        return unavailable(reply, deps, err);
      }
      if (stored === null) return text(reply, 400, "unknown or expired state: use your connect link again\n");
      if (typeof error === "string" && error !== "") {
        return text(reply, 400, `consent was not given (${error.slice(0, 100)})\n`);
      }
      if (typeof code !== "string" || code === "") return text(reply, 400, "missing code\n");
      const binding = parseBinding(stored);
      try {
        const { email } = await connectAccount(deps, code, {
          codeVerifier: binding.verifier,
          accept: async (address) => {
            if (binding.hint !== undefined && address !== binding.hint) {
              throw new ConnectRefusedError(`this link is for ${binding.hint}, not ${address}: nothing was stored`);
            }
            // Used up only now, when everything else is right: two tabs racing on one link connect one mailbox.
            if (
              binding.link !== undefined &&
              !(await bounded(() => consumeConnectLink(redis, config.QUEUE_PREFIX, binding.link as string)))
            ) {
              throw new ConnectRefusedError(
                "this connect link was already used or has expired; ask the operator for a new one",
              );
            }
          },
        });
        return text(reply, 200, `connected ${email}: the first backfill is queued\n`);
      } catch (err) {
        if (err instanceof ConnectRefusedError) {
          deps.log.warn({ why: err.message }, "oauth callback: account refused");
          return text(reply, 403, `${err.message}\n`);
        }
        if (err instanceof DeadlineError) return unavailable(reply, deps, err);
        if (isGmailError(err) && (err.kind === "auth_revoked" || err.kind === "permanent")) {
          deps.log.warn({ kind: err.kind, reason: err.reason }, "oauth callback: account not connected");
          return text(reply, 400, `could not connect the account: ${err.message}\n`);
        }
        deps.log.error({ err: (err as Error).message }, "oauth callback failed");
        return text(reply, 502, "Google could not be reached; try again\n");
      }
    },
  );
}

function unavailable(reply: FastifyReply, deps: OAuthRouteDeps, err: unknown): FastifyReply {
  deps.log.error({ err: err instanceof Error ? err.message : String(err) }, "oauth route: Redis unavailable");
  return text(reply.header("retry-after", "30"), 503, "temporarily unavailable; try again in a minute\n");
}
