// Builds the GmailPort for one account: loads and decrypts its tokens, refreshes the access token
// before it expires (google-auth-library refreshes within 5 minutes of expiry, before the request),
// and saves every refreshed token with compare-and-set so concurrent refreshers in other processes
// never overwrite a newer token. A revoked grant (invalid_grant) or a missing Gmail scope marks the
// account reauth_required, counts gmail_sync_token_refreshes_total{outcome="invalid_grant"} and
// throws auth_revoked; the account's later jobs stop at the status check here, before any Gmail or
// token call. Token-endpoint 5xx and network failures are transient.
import type { Credentials } from "google-auth-library";
import type { Redis } from "ioredis";
import type { Config } from "../config.ts";
import { getAccount, markReauthRequired, saveAccessToken } from "../db/accounts.ts";
import type { Db } from "../db/database.ts";
import { GmailError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { tokenRefreshesTotal } from "../metrics.ts";
import { decryptToken, encryptToken, type KeyRing } from "../token-crypto.ts";
import { classifyGmailError } from "./classify-error.ts";
import { createGmailPort, DEFAULT_BATCH_SIZE } from "./client.ts";
import { createOAuthClient, hasSufficientScope } from "./oauth.ts";
import type { AccountRef, GmailFactory } from "./port.ts";
import type { InFlightLimiter } from "./in-flight.ts";
import { QUOTA_COST, type QuotaGovernor } from "./quota.ts";

export interface GmailFactoryDeps {
  db: Db;
  redis: Redis;
  config: Config;
  keyRing: KeyRing;
  log: Logger;
  quota: QuotaGovernor;
  inFlight?: InFlightLimiter;
  fetchStrategy?: "batch" | "parallel";
  concurrency?: number;
}

export function createGmailFactory(deps: GmailFactoryDeps): GmailFactory {
  const { db, config, keyRing, log } = deps;

  async function revoke(accountId: number, reason: string): Promise<void> {
    const changed = await markReauthRequired(db, accountId, reason);
    if (changed)
      log.warn({ accountId, reason }, "account needs re-authorisation: its jobs stop until it is reconnected");
  }

  return async function gmailFor(account: AccountRef) {
    const row = await getAccount(db, account.id);
    if (!row) throw new GmailError("permanent", `account ${account.id} does not exist`, { reason: "no_account" });
    if (row.status !== "active") {
      throw new GmailError(
        "auth_revoked",
        `account ${account.id} is ${row.status}${row.status_reason ? ` (${row.status_reason})` : ""}`,
        { reason: row.status },
      );
    }
    if (!row.refresh_token_encrypted) {
      await revoke(row.id, "no_refresh_token");
      throw new GmailError("auth_revoked", `account ${row.id} has no refresh token`, { reason: "no_refresh_token" });
    }
    if (row.scopes.length > 0 && !hasSufficientScope(row.scopes)) {
      await revoke(row.id, "insufficient_scope");
      throw new GmailError("auth_revoked", `account ${row.id} lacks a Gmail read scope`, {
        reason: "insufficient_scope",
      });
    }

    const credentials: Credentials = {
      refresh_token: decryptToken(keyRing, "refresh_token", row.id, row.refresh_token_encrypted),
      token_type: "Bearer",
    };
    if (row.access_token_encrypted && row.access_token_expires_at) {
      credentials.access_token = decryptToken(keyRing, "access_token", row.id, row.access_token_encrypted);
      credentials.expiry_date = row.access_token_expires_at.getTime();
    }
    const auth = createOAuthClient(config);
    auth.setCredentials(credentials);

    // Saves run one after another per port, each from the expiry the previous save left.
    let storedExpiry: Date | null = row.access_token_expires_at;
    let saving: Promise<void> = Promise.resolve();
    auth.on("tokens", (t: Credentials) => {
      tokenRefreshesTotal.inc({ outcome: "ok" });
      if (!t.access_token || !t.expiry_date) return;
      const accessToken = t.access_token;
      const expiresAt = new Date(t.expiry_date);
      saving = saving
        .then(async () => {
          const saved = await saveAccessToken(db, {
            accountId: row.id,
            accessTokenEncrypted: encryptToken(keyRing, "access_token", row.id, accessToken),
            expiresAt,
            keyId: keyRing.activeKeyId,
            previousExpiresAt: storedExpiry,
            // Google may rotate the refresh token; keep the new one if it sent one.
            ...(t.refresh_token
              ? { refreshTokenEncrypted: encryptToken(keyRing, "refresh_token", row.id, t.refresh_token) }
              : {}),
          });
          if (saved) storedExpiry = expiresAt;
          else log.debug({ accountId: row.id }, "a newer access token was already stored; kept it");
        })
        .catch((err: unknown) =>
          log.error({ accountId: row.id, err: (err as Error).message }, "could not save a refreshed access token"),
        );
    });

    // Refresh now if the stored token is missing or about to expire, so a revoked grant is found
    // here, before the job does any work.
    try {
      await auth.getAccessToken();
      await saving;
    } catch (raw) {
      const err = classifyGmailError(raw);
      if (err.kind === "auth_revoked") {
        tokenRefreshesTotal.inc({ outcome: "invalid_grant" });
        await revoke(row.id, err.reason ?? "invalid_grant");
      } else {
        tokenRefreshesTotal.inc({ outcome: "transient" });
      }
      throw err;
    }

    const opts: Parameters<typeof createGmailPort>[0] = {
      auth,
      accountId: row.id,
      quota: deps.quota,
      ...(deps.inFlight ? { inFlight: deps.inFlight } : {}),
      rootUrl: config.GMAIL_API_ROOT_URL,
      log,
      // (the client already counted a failed refresh in gmail_sync_token_refreshes_total)
      onAuthRevoked: (err) => revoke(row.id, err.reason ?? "auth_revoked"),
    };
    // Gmail charges a batch sub-request by sub-request against one second of burst, while our
    // bucket lets a batch through whole (leaving a debt): keep a batch within half of that second
    // (25 at the default 250 units/s), or a low per-user quota answers every batch's tail with 429.
    // The same for the project's bucket (one second of the project's rate), shared by every account:
    // a batch of at most a quarter of it, or under a small project quota a batch would wait for a
    // full bucket that the other accounts' smaller calls never leave (no effect at Gmail's default).
    const perGet = QUOTA_COST["messages.get"] ?? 5;
    opts.batchSize = Math.max(
      1,
      Math.min(
        DEFAULT_BATCH_SIZE,
        Math.floor(config.GMAIL_QUOTA_UNITS_PER_SECOND / (2 * perGet)),
        Math.floor(config.GMAIL_PROJECT_QUOTA_UNITS_PER_MINUTE / 60 / (4 * perGet)),
      ),
    );
    if (deps.fetchStrategy) opts.fetchStrategy = deps.fetchStrategy;
    if (deps.concurrency) opts.concurrency = deps.concurrency;
    return createGmailPort(opts);
  };
}
