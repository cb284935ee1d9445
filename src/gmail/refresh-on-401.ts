// The one rule for a 401 from Gmail, shared by single calls (call.ts) and batches (batch-get.ts):
// an access token rejected before its expiry earns one forced token refresh and a resend; a 401
// after that refresh is Gmail's passing fault, not a revoked grant. One RefreshOn401 covers one
// operation (a call or a batch chunk) with all its retries, so it refreshes at most once.
import type { OAuth2Client } from "google-auth-library";
import { GmailError } from "../errors.ts";
import { isTokenEndpointError } from "./classify-error.ts";

export interface RefreshOn401 {
  /**
   * Whether this failure is the 401 that earns the operation's one refresh: Gmail's (not the
   * token endpoint's — a failed refresh is final) and none tried yet. `raw` is the unclassified
   * error, when there is one (a batch part's answer has none: it is always Gmail's).
   */
  curable(err: GmailError, raw?: unknown): boolean;
  /** Makes the next request refresh the token; the caller then resends what got the 401. */
  refresh(): void;
  /** The failure as the operation reports it (after the refresh, a 401 is transient). */
  settle(err: GmailError): GmailError;
}

export function createRefreshOn401(auth: OAuth2Client, tokenUrl: string): RefreshOn401 {
  let refreshed = false;
  return {
    curable(err, raw) {
      return !refreshed && err.kind === "auth_revoked" && err.status === 401 && !isTokenEndpointError(raw, tokenUrl);
    },
    refresh() {
      refreshed = true;
      // The next request's header lookup sees an expiring token and refreshes it (emitting `tokens`).
      auth.setCredentials({ ...auth.credentials, expiry_date: 1 });
    },
    settle(err) {
      return refreshed ? afterRefresh(err) : err;
    },
  };
}

/**
 * A 401 from Gmail after the token was refreshed successfully (the grant is alive: a revoked one
 * fails at the token endpoint, invalid_grant) is Gmail's passing fault, not a reason to make the
 * user connect again: transient, retried later.
 */
function afterRefresh(err: GmailError): GmailError {
  if (err.kind !== "auth_revoked" || err.status !== 401) return err;
  const message = `401 from Gmail right after a successful token refresh: ${err.message.slice(0, 200)}`;
  return new GmailError("transient", message, { status: 401, reason: "unauthorizedAfterRefresh", cause: err });
}
