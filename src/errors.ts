// The project's error classes, each with who throws it and how it ends. Dependency-free (no
// import from another src file or package) so any process can load it. Not here: zip-preflight.ts's
// private `Refused`, a control-flow signal that never leaves its file and runs in extraction
// children, which may read only src/extract/ (src/extract/child-spawn.ts).
//
// GmailError's small closed set of failure kinds is what the worker acts on. Only
// src/gmail/classify-error.ts knows Gmail's error shapes; everything downstream switches on `kind`.
export type ErrorKind =
  | "rate_limited" // 429 / 403 rate reasons / concurrency: wait retryAfterMs, slow the bucket
  | "history_expired" // 404 on history.list startHistoryId: re-baseline with a full resync
  | "auth_revoked" // invalid_grant, missing scopes, 401 after refresh: account → reauth_required
  | "not_found" // 404 on a message or attachment: it is gone, record it as deleted
  | "transient" // 5xx, network, 400 failedPrecondition: retry with backoff
  | "permanent"; // anything else (bad request, unparsable): dead letter, do not retry

/**
 * Thrown by src/gmail/* (classified in classify-error.ts) for a failed Gmail or token call; the
 * worker turns its kind into a queue action (retry, park, reauth_required, dead letter).
 */
export class GmailError extends Error {
  override name = "GmailError";
  readonly kind: ErrorKind;
  readonly status: number | undefined;
  readonly reason: string | undefined;
  /** For rate_limited: how long Gmail asked us to wait (Retry-After or "Retry after <ts>"). */
  readonly retryAfterMs: number | undefined;

  constructor(
    kind: ErrorKind,
    message: string,
    opts: { status?: number; reason?: string; retryAfterMs?: number; cause?: unknown } = {},
  ) {
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

/**
 * Thrown by ConnectOptions.accept (src/oauth-routes.ts: a connect link for another address, or
 * one already used) inside connectAccount before anything is stored; the callback answers 403.
 */
export class ConnectRefusedError extends Error {
  override name = "ConnectRefusedError";
}

/**
 * Thrown by withinMs (src/deadline.ts) when Redis or Postgres does not answer in time: request
 * handlers answer 503 instead of hanging for the length of the outage.
 */
export class DeadlineError extends Error {
  override name = "DeadlineError";
}

/**
 * Thrown by decodePushEnvelope (src/pubsub.ts) for a push body that is not Gmail's notification;
 * the push route acknowledges it (no redelivery), counts it as malformed and logs why.
 */
export class MalformedPushError extends Error {
  override name = "MalformedPushError";
}

/**
 * Thrown by loadConfig (src/config.ts) naming every bad variable at once; the CLI prints its
 * one line and exits 1 (no stack trace).
 */
export class ConfigError extends Error {
  override name = "ConfigError";
}

/**
 * Thrown by withSyncLock (src/sync/lock.ts) when the account's other run of the same kind holds
 * the lock; the worker parks the job for a moment (not an attempt), direct callers see it as is.
 */
export class SyncBusyError extends Error {
  override name = "SyncBusyError";
}

/**
 * Thrown by migrateToLatest/migrateDown (src/db/migrate.ts) naming the failed migration (the
 * pending ones run in one transaction, rolled back); `gmail-sync migrate` and the demo exit 1.
 */
export class MigrationError extends Error {
  override name = "MigrationError";
}

/**
 * Thrown by parseKeyRing/encryptToken (src/token-crypto.ts) for a missing or malformed
 * TOKEN_ENCRYPTION_KEY: the app does not start (or the keys command stops), exit 1.
 */
export class TokenKeyError extends Error {
  override name = "TokenKeyError";
}

/**
 * Thrown by decryptToken (src/token-crypto.ts) for a stored token no configured key opens (wrong
 * key, moved or corrupted row); never returns the input as plaintext. In a sync job it fails the
 * job like any transient error; in `keys rewrap` it stops the command.
 */
export class TokenDecryptError extends Error {
  override name = "TokenDecryptError";
}

/**
 * A Gmail message that cannot be parsed at all (no id, a malformed payload): thrown by
 * src/gmail/parse-message.ts; a permanent GmailError, so the message is parked as a dead letter.
 */
export class ParseError extends GmailError {
  override name = "ParseError";
  constructor(message: string) {
    super("permanent", message, { reason: "unparsable" });
  }
}

/**
 * Thrown by readFeedPage (src/feed/read.ts) for a change-feed cursor older than what retention
 * kept: changes after it are gone, so resuming would silently skip them. GET /changes answers 410,
 * `gmail-sync changes` exits 1 with its message; the consumer must re-read the mirror and start
 * again from the feed's head.
 */
export class CursorExpiredError extends Error {
  override name = "CursorExpiredError";
  readonly after: number;
  readonly prunedThrough: number;
  constructor(after: number, prunedThrough: number) {
    super(
      `cursor ${after} is older than the change feed keeps (changes through seq ${prunedThrough} were pruned, CHANGES_RETENTION_DAYS): re-read the mirror, then follow from the head`,
    );
    this.after = after;
    this.prunedThrough = prunedThrough;
  }
}
