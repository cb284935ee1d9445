// The only code that knows Gmail's (and Google's token endpoint's) error shapes. Every failure of a
// Gmail or token call goes through classifyGmailError and comes out as one of the closed set of
// GmailError kinds in src/errors.ts; nothing downstream looks at statuses, reasons or texts.
//
// Shapes handled (gaxios 8, google-auth-library 11):
// - API errors: GaxiosError with .status and .response.data.error = {code, message, errors[{reason}], status}.
//   gaxios puts errors[].message joined into err.message, so the long text (with "Retry after …")
//   is read from response.data.error.message, not err.message.
// - Token endpoint errors: .response.data = {error: "invalid_grant", error_description}.
// - Network errors: GaxiosError whose .code is the system code (ECONNRESET, ETIMEDOUT, …) and no
//   response; node-fetch's "socket hang up" has no code, only the text.
// - Batch sub-responses: the client builds a plain {status, headers, data} and passes it as
//   {response} so the same rules apply.
import { GmailError, type ErrorKind } from "../errors.ts";

export interface ClassifyContext {
  /** The API method the call was for; 404 from history.list means the start id expired. */
  method?: string;
}

interface ApiErrorBody {
  code?: number;
  message?: string;
  status?: string;
  errors?: Array<{ reason?: string; message?: string; domain?: string }>;
}

interface ResponseLike {
  status?: number;
  headers?: unknown;
  data?: unknown;
}

const NETWORK_CODES = new Set([
  "ECONNRESET",
  "ECONNREFUSED",
  "ECONNABORTED",
  "ETIMEDOUT",
  "ESOCKETTIMEDOUT",
  "EPIPE",
  "EAI_AGAIN",
  "ENOTFOUND",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENETDOWN",
  "UND_ERR_SOCKET",
  "UND_ERR_CONNECT_TIMEOUT",
  "TimeoutError",
  "AbortError",
]);

const RATE_REASONS = new Set(["userRateLimitExceeded", "rateLimitExceeded", "dailyLimitExceeded", "quotaExceeded"]);
// Not accessNotConfigured: the Gmail API disabled in the Google Cloud project is the operator's
// to fix, for every account at once; flipping each account to reauth_required would make every
// user connect again for nothing. It is a permanent error (the job fails, the poll retries later).
const AUTH_REASONS = new Set(["insufficientPermissions", "authError", "domainPolicy"]);

function headerValue(headers: unknown, name: string): string | undefined {
  if (headers === null || headers === undefined) return undefined;
  if (typeof (headers as { get?: unknown }).get === "function") {
    const v = (headers as { get(n: string): string | null }).get(name);
    return v ?? undefined;
  }
  if (typeof headers === "object") {
    for (const [k, v] of Object.entries(headers as Record<string, unknown>)) {
      if (k.toLowerCase() === name) return Array.isArray(v) ? String(v[0]) : String(v);
    }
  }
  return undefined;
}

/** Retry-After: delta-seconds or an HTTP date. */
export function parseRetryAfterHeader(value: string | undefined, now = Date.now()): number | undefined {
  if (value === undefined || value.trim() === "") return undefined;
  const v = value.trim();
  if (/^\d+(\.\d+)?$/.test(v)) return Math.round(Number(v) * 1000);
  const t = Date.parse(v);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

/** Gmail's "User-rate limit exceeded.  Retry after 2023-03-07T18:03:15.961Z" message text. */
export function parseRetryAfterText(text: string | undefined, now = Date.now()): number | undefined {
  if (!text) return undefined;
  const m = /retry after\s+(\d{4}-\d{2}-\d{2}T[0-9:.]+(?:Z|[+-]\d{2}:?\d{2})?)/i.exec(text);
  if (!m?.[1]) return undefined;
  const t = Date.parse(m[1]);
  return Number.isNaN(t) ? undefined : Math.max(0, t - now);
}

function apiError(data: unknown): ApiErrorBody | undefined {
  if (typeof data === "string") {
    try {
      return apiError(JSON.parse(data));
    } catch {
      return undefined;
    }
  }
  if (data && typeof data === "object" && "error" in data) {
    const e = (data as { error: unknown }).error;
    if (e && typeof e === "object") return e as ApiErrorBody;
  }
  return undefined;
}

/** The OAuth token endpoint's RFC 6749 error code ("invalid_grant"), if this is one. */
function tokenError(data: unknown): { error: string; description?: string } | undefined {
  if (data && typeof data === "object" && typeof (data as { error?: unknown }).error === "string") {
    const d = data as { error: string; error_description?: unknown };
    return { error: d.error, description: typeof d.error_description === "string" ? d.error_description : undefined };
  }
  return undefined;
}

function make(
  kind: ErrorKind,
  message: string,
  status: number | undefined,
  reason: string | undefined,
  cause: unknown,
  retryAfterMs?: number,
): GmailError {
  const opts: { status?: number; reason?: string; retryAfterMs?: number; cause?: unknown } = { cause };
  if (status !== undefined) opts.status = status;
  if (reason !== undefined) opts.reason = reason;
  if (retryAfterMs !== undefined) opts.retryAfterMs = retryAfterMs;
  return new GmailError(kind, message, opts);
}

export function classifyGmailError(err: unknown, ctx: ClassifyContext = {}): GmailError {
  if (err instanceof GmailError) return err;
  const e = (err ?? {}) as {
    response?: ResponseLike;
    status?: unknown;
    code?: unknown;
    message?: unknown;
    cause?: unknown;
  };
  const response = e.response;
  const status =
    typeof response?.status === "number" ? response.status : typeof e.status === "number" ? e.status : undefined;
  const rawMessage = typeof e.message === "string" ? e.message : String(err);

  if (status === undefined || response === undefined) {
    // No HTTP answer: a connection-level failure is transient; anything else (a bug, a bad
    // argument) is permanent.
    const code =
      typeof e.code === "string"
        ? e.code
        : typeof (e.cause as { code?: unknown })?.code === "string"
          ? (e.cause as { code: string }).code
          : undefined;
    if (
      (code !== undefined && NETWORK_CODES.has(code)) ||
      /socket hang up|network|fetch failed|timed? ?out|ECONNRESET|ETIMEDOUT/i.test(rawMessage)
    ) {
      return make("transient", `network error: ${code ?? rawMessage}`, undefined, code ?? "network", err);
    }
    if (status !== undefined && status >= 500) return make("transient", rawMessage, status, undefined, err);
    return make("permanent", rawMessage, status, undefined, err);
  }

  const body = apiError(response.data);
  const reasons = (body?.errors ?? []).map((x) => x.reason).filter((r): r is string => typeof r === "string");
  const reason = reasons[0];
  const text = [body?.message, ...(body?.errors ?? []).map((x) => x.message)].filter(Boolean).join(" | ") || rawMessage;
  const headerWait = parseRetryAfterHeader(headerValue(response.headers, "retry-after"));

  // Token endpoint (OAuth2): {error: "invalid_grant", error_description}.
  const tok = body === undefined ? tokenError(response.data) : undefined;
  if (tok) {
    const msg = `token endpoint: ${tok.error}${tok.description ? ` (${tok.description})` : ""}`;
    if (tok.error === "invalid_grant" || tok.error === "invalid_scope" || tok.error === "unauthorized_client") {
      return make("auth_revoked", msg, status, tok.error, err);
    }
    if (status === 429) return make("rate_limited", msg, status, tok.error, err, headerWait);
    if (status >= 500) return make("transient", msg, status, tok.error, err);
    return make("permanent", msg, status, tok.error, err);
  }

  const isRate =
    status === 429 ||
    (status === 403 &&
      (reasons.some((r) => RATE_REASONS.has(r)) || /too many concurrent requests|rate limit exceeded/i.test(text)));
  if (isRate) {
    const wait = headerWait ?? parseRetryAfterText(text);
    return make("rate_limited", text, status, reason ?? "rateLimitExceeded", err, wait);
  }
  if (status >= 500) return make("transient", text, status, reason, err);
  if (status === 408) return make("transient", text, status, reason, err);
  // A Workspace account whose Gmail service an administrator has not enabled: no retry fixes it,
  // so the account stops (status reason says why) until an administrator enables Gmail and the
  // account is connected again — unlike the intermittent 400 failedPrecondition below.
  if (status === 400 && /mail service not enabled/i.test(text))
    return make("auth_revoked", text, status, "mailServiceNotEnabled", err);
  if (
    status === 400 &&
    (reasons.includes("failedPrecondition") ||
      body?.status === "FAILED_PRECONDITION" ||
      /precondition check failed/i.test(text))
  ) {
    return make("transient", text, status, reason ?? "failedPrecondition", err);
  }
  if (status === 401) return make("auth_revoked", text, status, reason ?? "authError", err);
  // A token with only gmail.metadata gets 403 "forbidden" for format=full and q: a missing scope.
  if (
    status === 403 &&
    (reasons.some((r) => AUTH_REASONS.has(r)) ||
      /insufficient (authentication scopes|permission)|metadata scope/i.test(text))
  ) {
    return make("auth_revoked", text, status, reason, err);
  }
  if (status === 404) {
    if (ctx.method === "history.list") return make("history_expired", text, status, reason ?? "notFound", err);
    return make("not_found", text, status, reason ?? "notFound", err);
  }
  return make("permanent", text, status, reason, err);
}

/** The `scope` label of gmail_api_rate_limited_total for a rate_limited error. */
export function rateLimitScope(err: GmailError): "user" | "project" | "concurrent" {
  if (/concurrent/i.test(err.message)) return "concurrent";
  // "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service …" is the
  // project's limit; "… 'Queries per minute per user' …" the user's (emulator/src/errors.ts has both texts).
  if (
    /per project|dailyLimit|'Queries per minute'(?! per user)/i.test(err.message) ||
    err.reason === "dailyLimitExceeded"
  )
    return "project";
  return "user";
}

/** The `code` label of gmail_api_requests_total. */
export function statusCodeLabel(status: number | undefined): string {
  if (status === undefined) return "network";
  if (status >= 200 && status < 300) return "2xx";
  if (status >= 500) return "5xx";
  if ([400, 401, 403, 404, 429].includes(status)) return String(status);
  return "other";
}

/**
 * Whether a raw failure came from the OAuth token endpoint (a refresh inside a Gmail call) rather
 * than from Gmail: an RFC 6749 error body, or a request to the token URL that got no answer.
 */
export function isTokenEndpointError(err: unknown, tokenUrl?: string): boolean {
  const e = (err ?? {}) as { response?: ResponseLike; config?: { url?: unknown } };
  if (e.response && apiError(e.response.data) === undefined && tokenError(e.response.data)) return true;
  const url = e.config?.url === undefined ? "" : String(e.config.url);
  return tokenUrl !== undefined && tokenUrl !== "" && url !== "" && url.split("?")[0] === tokenUrl.split("?")[0];
}
