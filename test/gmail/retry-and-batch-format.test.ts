// The retry policy's decisions and the batch response parser (the emulator test exercises both over
// HTTP; these pin the edge cases: jitter bounds, what is never retried, LF and quoted boundaries,
// Content-ID order).
import { describe, expect, it } from "vitest";
import { GmailError } from "../../src/errors.ts";
import { parseBatchResponse } from "../../src/gmail/client.ts";
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
    expect(retryDelay(new GmailError("rate_limited", "x", { retryAfterMs: 60_000 }), 0, DEFAULT_RETRY, rnd)).toBeUndefined(); // park the job instead
    expect(retryDelay(new GmailError("rate_limited", "x", { reason: "localQuota", retryAfterMs: 10 }), 0, DEFAULT_RETRY, rnd)).toBeUndefined();
    for (const kind of ["not_found", "permanent", "auth_revoked", "history_expired"] as const) {
      expect(retryDelay(new GmailError(kind, "x"), 0, DEFAULT_RETRY, rnd)).toBeUndefined();
    }
    expect(retryDelay(new GmailError("transient", "x"), DEFAULT_RETRY.maxAttempts - 1, DEFAULT_RETRY, rnd)).toBeUndefined();
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
    await expect(withRetry(async () => { once++; throw new GmailError("not_found", "gone"); })).rejects.toThrow("gone");
    expect(once).toBe(1);
  });
});

describe("parseBatchResponse", () => {
  it("reads CRLF parts, maps Content-ID response-item-N to request order", () => {
    const b = "batch_abc";
    const text = [
      `--${b}\r\nContent-Type: application/http\r\nContent-ID: <response-item-1>\r\n\r\nHTTP/1.1 404 Not Found\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{"error":{"code":404,"message":"Requested entity was not found.","errors":[{"reason":"notFound"}],"status":"NOT_FOUND"}}\r\n`,
      `--${b}\r\nContent-Type: application/http\r\nContent-ID: <response-item-0>\r\n\r\nHTTP/1.1 200 OK\r\nContent-Type: application/json; charset=UTF-8\r\n\r\n{"id":"a","threadId":"a"}\r\n`,
      `--${b}\r\nContent-Type: application/http\r\nContent-ID: <response-item-2>\r\n\r\nHTTP/1.1 429 Too Many Requests\r\nRetry-After: 2\r\nContent-Type: application/json\r\n\r\n{"error":{"code":429,"message":"Too many concurrent requests for user","errors":[{"reason":"rateLimitExceeded"}]}}\r\n`,
      `--${b}--\r\n`,
    ].join("");
    const subs = parseBatchResponse(text, `multipart/mixed; boundary=${b}`, 3);
    expect(subs.map((s) => s.status)).toEqual([200, 404, 429]);
    expect(subs[0]?.data).toEqual({ id: "a", threadId: "a" });
    expect(subs[2]?.headers["retry-after"]).toBe("2");
  });

  it("accepts LF line ends and a quoted boundary; a missing part is reported as status 0", () => {
    const text = `--"x"\n`.replace(/"/g, "") + `Content-Type: application/http\nContent-ID: <response-0>\n\nHTTP/1.1 200 OK\nContent-Type: application/json\n\n{"id":"z"}\n--x--\n`;
    const subs = parseBatchResponse(text, 'multipart/mixed; boundary="x"', 2);
    expect(subs[0]?.status).toBe(200);
    expect(subs[0]?.data).toEqual({ id: "z" });
    expect(subs[1]?.status).toBe(0);
  });
});
