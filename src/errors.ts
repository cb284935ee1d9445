// The small closed set of failure kinds the worker acts on. Only src/gmail/classify-error.ts
// knows Gmail's error shapes; everything downstream switches on `kind`.
export type ErrorKind =
  | "rate_limited" // 429 / 403 rate reasons / concurrency: wait retryAfterMs, slow the bucket
  | "history_expired" // 404 on history.list startHistoryId: re-baseline with a full resync
  | "auth_revoked" // invalid_grant, missing scopes, 401 after refresh: account → reauth_required
  | "not_found" // 404 on a message or attachment: it is gone, record it as deleted
  | "transient" // 5xx, network, 400 failedPrecondition: retry with backoff
  | "permanent"; // anything else (bad request, unparsable): dead letter, do not retry

export class GmailError extends Error {
  override name = "GmailError";
  readonly kind: ErrorKind;
  readonly status: number | undefined;
  readonly reason: string | undefined;
  /** For rate_limited: how long Gmail asked us to wait (Retry-After or "Retry after <ts>"). */
  readonly retryAfterMs: number | undefined;

  constructor(kind: ErrorKind, message: string, opts: { status?: number; reason?: string; retryAfterMs?: number; cause?: unknown } = {}) {
    super(message, { cause: opts.cause });
    this.kind = kind;
    this.status = opts.status;
    this.reason = opts.reason;
    this.retryAfterMs = opts.retryAfterMs;
  }
}

export function isGmailError(err: unknown, kind?: ErrorKind): err is GmailError {
  return err instanceof GmailError && (kind === undefined || err.kind === kind);
}
