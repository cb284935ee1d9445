// classifyGmailError over errors produced by the real gaxios request pipeline: a fetch
// implementation hands gaxios the response bodies from the facts sheet's catalogue (§7.2, §13), so
// the GaxiosError shapes (status, joined message, response.data, Headers) are gaxios's own.
import { gaxios as gaxiosModule } from "google-auth-library";
import { describe, expect, it } from "vitest";
import { GmailError } from "../../src/errors.ts";
import { classifyGmailError, parseRetryAfterText, rateLimitScope } from "../../src/gmail/classify-error.ts";

// gaxios as google-auth-library re-exports it: the very version the clients use.
const gaxios = new gaxiosModule.Gaxios();

async function gaxiosErrorFor(status: number, body: unknown, headers: Record<string, string> = {}): Promise<unknown> {
  try {
    await gaxios.request({
      url: "https://gmail.googleapis.com/gmail/v1/users/me/messages/abc",
      retry: false,
      fetchImplementation: async () =>
        new Response(typeof body === "string" ? body : JSON.stringify(body), {
          status,
          headers: { "content-type": "application/json; charset=UTF-8", ...headers },
        }),
    });
  } catch (err) {
    return err;
  }
  throw new Error("expected the request to fail");
}

async function networkError(code: string | undefined, message: string): Promise<unknown> {
  try {
    await gaxios.request({
      url: "https://gmail.googleapis.com/gmail/v1/users/me/profile",
      retry: false,
      fetchImplementation: async () => {
        // node-fetch's FetchError carries the system error code.
        throw Object.assign(new Error(message), code ? { code, errno: code, type: "system" } : {});
      },
    });
  } catch (err) {
    return err;
  }
  throw new Error("expected the request to fail");
}

function envelope(
  code: number,
  message: string,
  reason: string,
  status: string,
  domain = "global",
  innerMessage = message,
) {
  return { error: { code, message, errors: [{ message: innerMessage, domain, reason }], status } };
}

describe("classifyGmailError", () => {
  it("429 with the 'Retry after <timestamp>' text → rate_limited with the wait until then", async () => {
    const at = new Date(Date.now() + 7_000).toISOString();
    const err = await gaxiosErrorFor(
      429,
      envelope(
        429,
        `User-rate limit exceeded.  Retry after ${at}`,
        "rateLimitExceeded",
        "RESOURCE_EXHAUSTED",
        "usageLimits",
      ),
    );
    const g = classifyGmailError(err);
    expect(g).toBeInstanceOf(GmailError);
    expect(g.kind).toBe("rate_limited");
    expect(g.status).toBe(429);
    expect(g.retryAfterMs).toBeGreaterThan(5_000);
    expect(g.retryAfterMs).toBeLessThanOrEqual(7_000);
    expect(rateLimitScope(g)).toBe("user");
  });

  it("Retry-After header wins and is read from gaxios's Headers object", async () => {
    const err = await gaxiosErrorFor(
      429,
      envelope(429, "Resource has been exhausted (e.g. check quota).", "rateLimitExceeded", "RESOURCE_EXHAUSTED"),
      { "retry-after": "3" },
    );
    const g = classifyGmailError(err);
    expect(g.kind).toBe("rate_limited");
    expect(g.retryAfterMs).toBe(3000);
  });

  it("403 rate reasons and the concurrency cap → rate_limited", async () => {
    for (const reason of ["userRateLimitExceeded", "rateLimitExceeded"]) {
      const g = classifyGmailError(
        await gaxiosErrorFor(
          403,
          envelope(403, "User Rate Limit Exceeded", reason, "PERMISSION_DENIED", "usageLimits"),
        ),
      );
      expect(g.kind).toBe("rate_limited");
      expect(g.retryAfterMs).toBeUndefined();
    }
    const c = classifyGmailError(
      await gaxiosErrorFor(
        429,
        envelope(
          429,
          "Too many concurrent requests for user",
          "rateLimitExceeded",
          "RESOURCE_EXHAUSTED",
          "usageLimits",
        ),
      ),
    );
    expect(c.kind).toBe("rate_limited");
    expect(rateLimitScope(c)).toBe("concurrent");
  });

  it("the per-minute quota forms: 403 'Queries per minute per user' is the user's, 'Queries per minute' the project's", async () => {
    const text = (limit: string) =>
      `Quota exceeded for quota metric 'Queries' and limit '${limit}' of service 'gmail.googleapis.com' for consumer 'project_number:123456789012'.`;
    const user = classifyGmailError(
      await gaxiosErrorFor(
        403,
        envelope(403, text("Queries per minute per user"), "rateLimitExceeded", "PERMISSION_DENIED", "usageLimits"),
      ),
    );
    expect(user.kind).toBe("rate_limited");
    expect(user.retryAfterMs).toBeUndefined();
    expect(rateLimitScope(user)).toBe("user");
    const project = classifyGmailError(
      await gaxiosErrorFor(
        429,
        envelope(429, text("Queries per minute"), "rateLimitExceeded", "RESOURCE_EXHAUSTED", "usageLimits"),
      ),
    );
    expect(project.kind).toBe("rate_limited");
    expect(rateLimitScope(project)).toBe("project");
  });

  it("400 'Mail service not enabled' stops the account (an administrator's to fix), unlike the intermittent failedPrecondition", async () => {
    const g = classifyGmailError(
      await gaxiosErrorFor(400, envelope(400, "Mail service not enabled", "failedPrecondition", "FAILED_PRECONDITION")),
    );
    expect(g.kind).toBe("auth_revoked");
    expect(g.reason).toBe("mailServiceNotEnabled");
  });

  it("403 accessNotConfigured (the API disabled in the project) is permanent, not the user's grant", async () => {
    const g = classifyGmailError(
      await gaxiosErrorFor(
        403,
        envelope(
          403,
          "Gmail API has not been used in project 123456789012 before or it is disabled.",
          "accessNotConfigured",
          "PERMISSION_DENIED",
          "usageLimits",
        ),
      ),
    );
    expect(g.kind).toBe("permanent");
    expect(g.reason).toBe("accessNotConfigured");
  });

  it("5xx → transient; 400 failedPrecondition → transient", async () => {
    expect(
      classifyGmailError(await gaxiosErrorFor(500, envelope(500, "Backend Error", "backendError", "INTERNAL"))).kind,
    ).toBe("transient");
    expect(
      classifyGmailError(
        await gaxiosErrorFor(
          503,
          envelope(503, "The service is currently unavailable.", "backendError", "UNAVAILABLE"),
        ),
      ).kind,
    ).toBe("transient");
    const pre = classifyGmailError(
      await gaxiosErrorFor(
        400,
        envelope(400, "Precondition check failed.", "failedPrecondition", "FAILED_PRECONDITION"),
      ),
    );
    expect(pre.kind).toBe("transient");
    expect(pre.reason).toBe("failedPrecondition");
  });

  it("404 is history_expired on history.list and not_found elsewhere", async () => {
    const body = envelope(404, "Requested entity was not found.", "notFound", "NOT_FOUND");
    expect(classifyGmailError(await gaxiosErrorFor(404, body), { method: "history.list" }).kind).toBe(
      "history_expired",
    );
    expect(classifyGmailError(await gaxiosErrorFor(404, body), { method: "messages.get" }).kind).toBe("not_found");
    expect(classifyGmailError(await gaxiosErrorFor(404, body)).kind).toBe("not_found");
  });

  it("401 invalid credentials and 403 insufficientPermissions → auth_revoked", async () => {
    const u = await gaxiosErrorFor(
      401,
      envelope(
        401,
        "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential.",
        "authError",
        "UNAUTHENTICATED",
        "global",
        "Invalid Credentials",
      ),
      { "www-authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"' },
    );
    expect(classifyGmailError(u).kind).toBe("auth_revoked");
    const s = await gaxiosErrorFor(
      403,
      envelope(
        403,
        "Request had insufficient authentication scopes.",
        "insufficientPermissions",
        "PERMISSION_DENIED",
        "global",
        "Insufficient Permission",
      ),
    );
    expect(classifyGmailError(s).kind).toBe("auth_revoked");
    const meta = await gaxiosErrorFor(
      403,
      envelope(403, "Metadata scope doesn't allow format FULL", "forbidden", "PERMISSION_DENIED"),
    );
    expect(classifyGmailError(meta).kind).toBe("auth_revoked");
  });

  it("token endpoint invalid_grant → auth_revoked; token endpoint 5xx → transient", async () => {
    const g = classifyGmailError(
      await gaxiosErrorFor(400, { error: "invalid_grant", error_description: "Token has been expired or revoked." }),
    );
    expect(g.kind).toBe("auth_revoked");
    expect(g.reason).toBe("invalid_grant");
    expect(classifyGmailError(await gaxiosErrorFor(503, { error: "temporarily_unavailable" })).kind).toBe("transient");
    expect(
      classifyGmailError(
        await gaxiosErrorFor(401, { error: "invalid_client", error_description: "The OAuth client was not found." }),
      ).kind,
    ).toBe("permanent");
  });

  it("network failures → transient", async () => {
    for (const [code, msg] of [
      ["ECONNRESET", "request to https://gmail.googleapis.com/ failed, reason: read ECONNRESET"],
      ["ETIMEDOUT", "request to https://gmail.googleapis.com/ failed, reason: connect ETIMEDOUT"],
      [undefined, "request to https://gmail.googleapis.com/ failed, reason: socket hang up"],
    ] as const) {
      const g = classifyGmailError(await networkError(code, msg));
      expect(g.kind, msg).toBe("transient");
      expect(g.status).toBeUndefined();
    }
  });

  it("400 invalid argument, 403 forbidden and plain bugs → permanent", async () => {
    expect(
      classifyGmailError(
        await gaxiosErrorFor(400, envelope(400, "Invalid id value", "invalidArgument", "INVALID_ARGUMENT")),
      ).kind,
    ).toBe("permanent");
    expect(
      classifyGmailError(
        await gaxiosErrorFor(
          403,
          envelope(403, "Delegation denied for a@example.com", "forbidden", "PERMISSION_DENIED"),
        ),
      ).kind,
    ).toBe("permanent");
    expect(classifyGmailError(new TypeError("x is not a function")).kind).toBe("permanent");
    expect(classifyGmailError(await gaxiosErrorFor(400, "not json at all")).kind).toBe("permanent");
  });

  it("parses the Retry after text with the two spaces and ignores other text", () => {
    const now = Date.parse("2023-03-07T18:03:10.961Z");
    expect(parseRetryAfterText("User-rate limit exceeded.  Retry after 2023-03-07T18:03:15.961Z", now)).toBe(5000);
    expect(parseRetryAfterText("User-rate limit exceeded.", now)).toBeUndefined();
    expect(parseRetryAfterText("Retry after 2023-03-07T18:03:00Z", now)).toBe(0);
  });
});
