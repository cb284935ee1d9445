// What every Gmail request of one account's port shares (call.ts, batch-get.ts): the resolved deps,
// the revoked-grant latch, and the bookkeeping every failure gets. auth_revoked ends the account's
// work: onAuthRevoked runs once and every later call on the port fails without touching the network.
import type { OAuth2Client } from "google-auth-library";
import { type GmailError, isGmailError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { apiRateLimitedTotal, apiRequestsTotal, tokenRefreshesTotal } from "../metrics.ts";
import { classifyGmailError, isTokenEndpointError, rateLimitScope, statusCodeLabel } from "./classify-error.ts";
import type { InFlightLimiter } from "./in-flight.ts";
import { QUOTA_COST, type QuotaGovernor } from "./quota.ts";
import type { RetryPolicy } from "./retry.ts";

export interface CallContext {
  auth: OAuth2Client;
  accountId: number;
  quota: QuotaGovernor;
  inFlight: InFlightLimiter | undefined;
  log: Logger;
  /** Where the batch endpoint lives (the API root's origin). */
  origin: string;
  /** The token endpoint, to tell its failures (a refresh) from Gmail's. */
  tokenUrl: string;
  policy: RetryPolicy;
  /** Longest in-process wait for the quota bucket (and the in-flight cap) in a single call. */
  maxQuotaWaitMs: number;
  /** The same inside getMessages / getThreads. */
  fetchQuotaWaitMs: number;
  onAuthRevoked: ((err: GmailError) => Promise<void>) | undefined;
  /** The grant's revocation, once found: every later call throws it. */
  revoked: GmailError | undefined;
}

export function throwIfRevoked(ctx: CallContext): void {
  if (ctx.revoked) throw ctx.revoked;
}

/** Latches the revocation (telling onAuthRevoked the first time) and throws it. */
export async function authRevoked(ctx: CallContext, err: GmailError): Promise<never> {
  if (!ctx.revoked) {
    ctx.revoked = err;
    ctx.log.warn(
      { accountId: ctx.accountId, reason: err.reason, status: err.status },
      "gmail grant revoked or insufficient; account needs re-authorisation",
    );
    await ctx.onAuthRevoked?.(err);
  }
  throw err;
}

/** Runs one HTTP request holding `permits` of the account's in-flight cap (no cap: runs it). */
export function runInFlight<T>(ctx: CallContext, permits: number, maxWaitMs: number, fn: () => Promise<T>): Promise<T> {
  return ctx.inFlight ? ctx.inFlight.run(ctx.accountId, permits, fn, { maxWaitMs }) : fn();
}

/** Our own in-flight cap gave up waiting: not an answer from Gmail, so nothing to count or penalise. */
export function isLocalWait(err: unknown): err is GmailError {
  return isGmailError(err, "rate_limited") && err.reason === "localConcurrency";
}

export function cost(method: string): number {
  const c = QUOTA_COST[method];
  if (c === undefined) throw new Error(`no documented quota cost for ${method}`);
  return c;
}

/** Classifies a raw failure and does the bookkeeping every failure path shares. */
export async function failure(ctx: CallContext, raw: unknown, method: string): Promise<GmailError> {
  const err = classifyGmailError(raw, { method });
  const fromTokenEndpoint = isTokenEndpointError(raw, ctx.tokenUrl);
  if (fromTokenEndpoint) {
    tokenRefreshesTotal.inc({ outcome: err.kind === "auth_revoked" ? "invalid_grant" : "transient" });
  } else {
    apiRequestsTotal.inc({ method, code: statusCodeLabel(err.status) });
  }
  if (err.kind === "rate_limited") {
    apiRateLimitedTotal.inc({ scope: rateLimitScope(err) });
    await ctx.quota.penalize(ctx.accountId, err.retryAfterMs);
  }
  return err;
}
