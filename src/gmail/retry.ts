// The one retry policy for Gmail calls (the googleapis client's own retry is switched off: it
// ignores Retry-After, never retries POSTs and backs off only 100/500/1500 ms). Exponential backoff
// with full jitter, starting at one second as Google advises for 5xx; only transient and
// rate_limited errors are retried, a bounded number of times; a rate limit whose wait is longer
// than maxInlineWaitMs is thrown at once so the job is parked (moveToDelayed) instead of holding a
// worker slot.
import { GmailError } from "../errors.ts";
import { apiRetriesTotal } from "../metrics.ts";

export interface RetryPolicy {
  maxAttempts: number;
  baseDelayMs: number;
  maxDelayMs: number;
  maxInlineWaitMs: number;
}

export const DEFAULT_RETRY: RetryPolicy = {
  maxAttempts: 5,
  baseDelayMs: 1000,
  maxDelayMs: 30_000,
  maxInlineWaitMs: 10_000,
};

/** Full jitter: uniform in [0, min(cap, base·2^attempt)] (attempt counts from 0). */
export function backoffDelay(attempt: number, policy: RetryPolicy, random: () => number = Math.random): number {
  return Math.round(random() * Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt));
}

export function retryReason(err: GmailError): "rate_limit" | "5xx" | "network" | "precondition" {
  if (err.kind === "rate_limited") return "rate_limit";
  if (err.reason === "failedPrecondition") return "precondition";
  if (err.status === undefined) return "network";
  return "5xx";
}

/** How long to wait before retrying `err` (attempt counts from 0), or undefined: do not retry. */
export function retryDelay(
  err: GmailError,
  attempt: number,
  policy: RetryPolicy,
  random: () => number = Math.random,
): number | undefined {
  if (attempt + 1 >= policy.maxAttempts) return undefined;
  if (err.kind === "transient") return backoffDelay(attempt, policy, random);
  if (err.kind === "rate_limited") {
    if (err.reason === "localQuota") return undefined; // our own bucket said wait: park the job
    const wait = Math.max(err.retryAfterMs ?? 0, backoffDelay(attempt, policy, random));
    return wait > policy.maxInlineWaitMs ? undefined : wait;
  }
  return undefined;
}

export const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/**
 * Runs fn until it succeeds, throws a non-retryable GmailError, or attempts run out. fn must throw
 * GmailError (already classified). onRetry runs before each wait (e.g. to penalise the bucket).
 */
export async function withRetry<T>(
  fn: (attempt: number) => Promise<T>,
  policy: RetryPolicy = DEFAULT_RETRY,
  onRetry?: (err: GmailError, attempt: number, delayMs: number) => Promise<void> | void,
): Promise<T> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (!(err instanceof GmailError)) throw err;
      const delay = retryDelay(err, attempt, policy);
      if (delay === undefined) throw err;
      apiRetriesTotal.inc({ reason: retryReason(err) });
      await onRetry?.(err, attempt, delay);
      await sleep(delay);
    }
  }
}
