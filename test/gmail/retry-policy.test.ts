// The retry policy's decisions (the emulator test exercises them over HTTP; these pin the edge
// cases: jitter bounds, what is never retried, the attempt bound).
import { describe, expect, it } from "vitest";
import { GmailError } from "../../src/errors.ts";
import { backoffDelay, DEFAULT_RETRY, retryDelay, withRetry } from "../../src/gmail/retry.ts";

describe("retry policy", () => {
  it("full jitter stays within [0, min(cap, base·2^n)]", () => {
    expect(backoffDelay(0, DEFAULT_RETRY, () => 0.999)).toBeLessThanOrEqual(1000);
    expect(backoffDelay(3, DEFAULT_RETRY, () => 1)).toBe(8000);
    expect(backoffDelay(20, DEFAULT_RETRY, () => 1)).toBe(30_000);
    expect(backoffDelay(5, DEFAULT_RETRY, () => 0)).toBe(0);
  });

  it("retries transient and rate_limited only, honours retryAfterMs, and stops at maxAttempts", () => {
    const rnd = () => 0.5;
    expect(retryDelay(new GmailError("transient", "x", { status: 503 }), 0, DEFAULT_RETRY, rnd)).toBe(500);
    expect(retryDelay(new GmailError("rate_limited", "x", { retryAfterMs: 4000 }), 0, DEFAULT_RETRY, rnd)).toBe(4000);
    const longWait = new GmailError("rate_limited", "x", { retryAfterMs: 60_000 });
    expect(retryDelay(longWait, 0, DEFAULT_RETRY, rnd)).toBeUndefined(); // park the job instead
    const ourBucket = new GmailError("rate_limited", "x", { reason: "localQuota", retryAfterMs: 10 });
    expect(retryDelay(ourBucket, 0, DEFAULT_RETRY, rnd)).toBeUndefined();
    for (const kind of ["not_found", "permanent", "auth_revoked", "history_expired"] as const) {
      expect(retryDelay(new GmailError(kind, "x"), 0, DEFAULT_RETRY, rnd)).toBeUndefined();
    }
    const lastAttempt = DEFAULT_RETRY.maxAttempts - 1;
    expect(retryDelay(new GmailError("transient", "x"), lastAttempt, DEFAULT_RETRY, rnd)).toBeUndefined();
  });

  it("withRetry makes a bounded number of attempts", async () => {
    let calls = 0;
    const err = await withRetry(
      async () => {
        calls++;
        throw new GmailError("transient", "boom", { status: 500 });
      },
      { ...DEFAULT_RETRY, baseDelayMs: 1, maxAttempts: 3 },
    ).catch((e: unknown) => e);
    expect(calls).toBe(3);
    expect((err as GmailError).kind).toBe("transient");
    let once = 0;
    await expect(
      withRetry(async () => {
        once++;
        throw new GmailError("not_found", "gone");
      }),
    ).rejects.toThrow("gone");
    expect(once).toBe(1);
  });
});
