// The browser side of connecting an account: GET /oauth2/start redirects to Google's consent page
// with a random state kept in Redis for 10 minutes; GET /oauth2/callback accepts the code only with
// a state issued here and not used before (GETDEL: one use), then connects the account.
import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import type { Config } from "./config.ts";
import type { Db } from "./db/database.ts";
import { isGmailError } from "./errors.ts";
import { buildConsentUrl, connectAccount, newOAuthState } from "./gmail/oauth.ts";
import type { Logger } from "./log.ts";
import type { KeyRing } from "./token-crypto.ts";

export interface OAuthRouteDeps {
  db: Db;
  redis: Redis;
  config: Config;
  keyRing: KeyRing;
  log: Logger;
  onConnected: (accountId: number) => Promise<void>;
}

const STATE_TTL_SECONDS = 600;

export function oauthStateKey(config: Pick<Config, "QUEUE_PREFIX">, state: string): string {
  return `${config.QUEUE_PREFIX}:oauth-state:${state}`;
}

/** Issues a state for one consent round trip (also used by `gmail-sync auth`). */
export async function issueOAuthState(redis: Redis, config: Pick<Config, "QUEUE_PREFIX">): Promise<string> {
  const state = newOAuthState();
  await redis.set(oauthStateKey(config, state), "1", "EX", STATE_TTL_SECONDS);
  return state;
}

export function registerOAuthRoutes(app: FastifyInstance, deps: OAuthRouteDeps): void {
  app.get<{ Querystring: { login_hint?: string } }>("/oauth2/start", async (req, reply) => {
    const state = await issueOAuthState(deps.redis, deps.config);
    const hint = typeof req.query.login_hint === "string" && req.query.login_hint !== "" ? req.query.login_hint : undefined;
    return reply.redirect(buildConsentUrl(deps.config, state, hint), 302);
  });

  app.get<{ Querystring: { state?: string; code?: string; error?: string } }>("/oauth2/callback", async (req, reply) => {
    const { state, code, error } = req.query;
    reply.header("cache-control", "no-store");
    if (typeof state !== "string" || state === "" || (await deps.redis.getdel(oauthStateKey(deps.config, state))) === null) {
      return reply.code(400).type("text/plain").send("unknown or expired state: start again at /oauth2/start\n");
    }
    if (typeof error === "string" && error !== "") {
      return reply.code(400).type("text/plain").send(`consent was not given (${error.slice(0, 100)})\n`);
    }
    if (typeof code !== "string" || code === "") return reply.code(400).type("text/plain").send("missing code\n");
    try {
      const { email } = await connectAccount(deps, code);
      return reply.code(200).type("text/plain").send(`connected ${email}: the first backfill is queued\n`);
    } catch (err) {
      if (isGmailError(err) && (err.kind === "auth_revoked" || err.kind === "permanent")) {
        deps.log.warn({ kind: err.kind, reason: err.reason }, "oauth callback: account not connected");
        return reply.code(400).type("text/plain").send(`could not connect the account: ${err.message}\n`);
      }
      deps.log.error({ err: (err as Error).message }, "oauth callback failed");
      return reply.code(502).type("text/plain").send("Google could not be reached; try again\n");
    }
  });
}
