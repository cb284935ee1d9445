// Gmail's error envelope, with the texts Gmail uses (../shared/gmail-api-facts.md §7): every error
// carries `errors[]` and a google.rpc `status`; errors the Google front end raises before Gmail
// runs (a missing credential, a scope the token lacks) add a `details[]` ErrorInfo naming the
// backend method (gmail-real-samples/error_401_missing_credentials.json).

const STATUS: Record<number, string> = {
  400: "INVALID_ARGUMENT",
  401: "UNAUTHENTICATED",
  403: "PERMISSION_DENIED",
  404: "NOT_FOUND",
  409: "ABORTED",
  429: "RESOURCE_EXHAUSTED",
  500: "INTERNAL",
  503: "UNAVAILABLE",
};

export interface GoogleErrorItem {
  message: string;
  domain: string;
  reason: string;
  location?: string;
  locationType?: string;
}

/** google.rpc.ErrorInfo as Google's front end adds it. */
export interface ErrorInfo {
  "@type": "type.googleapis.com/google.rpc.ErrorInfo";
  reason: string;
  domain: string;
  metadata: Record<string, string>;
}

/** The recorded forms a quota or concurrency refusal takes; stats count refusals by form. */
export type RefusalForm =
  /** 429 "Resource has been exhausted (e.g. check quota)." — no retry time (error_429_resource_exhausted.json). */
  | "resourceExhausted"
  /** 429 "User-rate limit exceeded.  Retry after <ts>" (error_429_user_rate_limit_retry_after_text.txt). */
  | "userRateLimit"
  /** 403 "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' …" (error_403_quota_per_minute.txt). */
  | "quotaPerMinute"
  /** 429 the same text for the project's limit ('Queries per minute'). */
  | "projectQuotaPerMinute"
  /** 403 userRateLimitExceeded "User Rate Limit Exceeded", the legacy documented form. */
  | "legacy403"
  /** 429 "Too many concurrent requests for user" (error_429_too_many_concurrent_batch_part.txt). */
  | "tooManyConcurrent";

export class ApiError extends Error {
  readonly status: number;
  readonly item: GoogleErrorItem;
  readonly headers: Record<string, string>;
  readonly details: ErrorInfo[] | undefined;
  /** Set on quota and concurrency refusals: which form was sent. */
  readonly refusal: RefusalForm | undefined;
  constructor(
    status: number,
    message: string,
    item: Partial<GoogleErrorItem> & { reason: string },
    headers: Record<string, string> = {},
    extra: { details?: ErrorInfo[]; refusal?: RefusalForm } = {},
  ) {
    super(message);
    this.status = status;
    this.item = {
      message: item.message ?? message,
      domain: item.domain ?? "global",
      reason: item.reason,
      ...(item.location ? { location: item.location, locationType: item.locationType ?? "parameter" } : {}),
    };
    this.headers = headers;
    this.details = extra.details;
    this.refusal = extra.refusal;
  }

  toJSON(): unknown {
    return {
      error: {
        code: this.status,
        message: this.message,
        errors: [this.item],
        status: STATUS[this.status] ?? "UNKNOWN",
        ...(this.details ? { details: this.details } : {}),
      },
    };
  }
}

const AUTH_HINT =
  "Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";

/**
 * The backend method Google's front end names in ErrorInfo metadata, e.g. gmail.users.history.list
 * → caribou.api.proto.MailboxService.ListHistory. Observed names: GetProfile, ListHistory
 * (401 CREDENTIALS_MISSING), ListLabels (403, googleworkspace/php-samples#123), ListMessages,
 * CreateDraft; the others follow the same Verb+Resource pattern (an extrapolation).
 */
export function backendMethod(routeName: string): string {
  const known: Record<string, string> = {
    "gmail.users.getProfile": "GetProfile",
    "gmail.users.history.list": "ListHistory",
    "gmail.users.watch": "Watch",
    "gmail.users.stop": "Stop",
    "gmail.users.messages.attachments.get": "GetAttachment",
  };
  const name = known[routeName] ?? generic(routeName);
  return `caribou.api.proto.MailboxService.${name}`;
}

function generic(routeName: string): string {
  const parts = routeName.split(".");
  const verb = parts[parts.length - 1] ?? "";
  const plural = parts[parts.length - 2] ?? "";
  const cap = (s: string) => s.charAt(0).toUpperCase() + s.slice(1);
  if (verb === "list") return `List${cap(plural)}`;
  const singular = plural.endsWith("s") ? plural.slice(0, -1) : plural;
  // batchModify → BatchModifyMessages (acts on many), get → GetMessage.
  return verb.startsWith("batch") ? `${cap(verb)}${cap(plural)}` : `${cap(verb)}${cap(singular)}`;
}

function errorInfo(reason: string, routeName: string): ErrorInfo[] {
  return [
    {
      "@type": "type.googleapis.com/google.rpc.ErrorInfo",
      reason,
      domain: "googleapis.com",
      metadata: { method: backendMethod(routeName), service: "gmail.googleapis.com" },
    },
  ];
}

/** Gmail's text for its per-minute quota ("Queries per minute per user", or the project's "Queries per minute"). */
function quotaText(limit: string, projectNumber: string): string {
  return `Quota exceeded for quota metric 'Queries' and limit '${limit}' of service 'gmail.googleapis.com' for consumer 'project_number:${projectNumber}'.`;
}

export const errors = {
  notFound: () => new ApiError(404, "Requested entity was not found.", { reason: "notFound" }),
  invalidId: () => new ApiError(400, "Invalid id value", { reason: "invalidArgument" }),
  badRequest: (message: string, location?: string) =>
    new ApiError(400, message, { reason: "invalidArgument", ...(location ? { location } : {}) }),
  /** No token: errors[0] says "Login Required." and details[] names the method (error_401_missing_credentials.json). */
  missingCredentials: (routeName?: string) =>
    new ApiError(
      401,
      `Request is missing required authentication credential. ${AUTH_HINT}`,
      { message: "Login Required.", reason: "required", location: "Authorization", locationType: "header" },
      { "www-authenticate": 'Bearer realm="https://accounts.google.com/"' },
      routeName ? { details: errorInfo("CREDENTIALS_MISSING", routeName) } : {},
    ),
  /** A bad, expired or revoked token: no details[] (error_401_invalid_credentials.json). */
  invalidCredentials: () =>
    new ApiError(
      401,
      `Request had invalid authentication credentials. ${AUTH_HINT}`,
      { message: "Invalid Credentials", reason: "authError", location: "Authorization", locationType: "header" },
      { "www-authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"' },
    ),
  /** details[] ACCESS_TOKEN_SCOPE_INSUFFICIENT as in googleworkspace/php-samples#123. */
  insufficientScope: (scope: string, routeName?: string) =>
    new ApiError(
      403,
      "Request had insufficient authentication scopes.",
      { message: "Insufficient Permission", reason: "insufficientPermissions" },
      {
        "www-authenticate": `Bearer realm="https://accounts.google.com/", error="insufficient_scope", scope="${scope}"`,
      },
      routeName ? { details: errorInfo("ACCESS_TOKEN_SCOPE_INSUFFICIENT", routeName) } : {},
    ),
  forbidden: (message: string) => new ApiError(403, message, { reason: "forbidden" }),
  delegationDenied: (email: string) => new ApiError(403, `Delegation denied for ${email}`, { reason: "forbidden" }),
  /** users.watch on a topic without the publisher grant (error_403_watch_pubsub_not_authorized.json). */
  pubsubNotAuthorized: (topicName: string) =>
    new ApiError(
      403,
      `Error sending test message to Cloud PubSub ${topicName} : User not authorized to perform this action.`,
      { reason: "forbidden" },
    ),

  // --- Quota and concurrency refusals (gmail-real-samples/README.md fact 13) ---
  /** No retry time in the text and no Retry-After header. */
  resourceExhausted: () =>
    new ApiError(
      429,
      "Resource has been exhausted (e.g. check quota).",
      { domain: "global", reason: "rateLimitExceeded" },
      {},
      { refusal: "resourceExhausted" },
    ),
  /** Two spaces before "Retry after", as Gmail writes it; the Retry-After header only when asked for (Gmail is not known to send one). */
  userRateLimit: (retryAt: Date, retryAfterSeconds?: number) =>
    new ApiError(
      429,
      `User-rate limit exceeded.  Retry after ${retryAt.toISOString()}`,
      { domain: "usageLimits", reason: "rateLimitExceeded" },
      retryAfterSeconds !== undefined ? { "retry-after": String(retryAfterSeconds) } : {},
      { refusal: "userRateLimit" },
    ),
  /** After sustained overuse: 403 with the per-minute-per-user text (error_403_quota_per_minute.txt). */
  quotaPerMinute: (projectNumber: string) =>
    new ApiError(
      403,
      quotaText("Queries per minute per user", projectNumber),
      { domain: "usageLimits", reason: "rateLimitExceeded" },
      {},
      { refusal: "quotaPerMinute" },
    ),
  /** The project's limit (every user together): same family of text, status 429 (no recording; Google's usual form). */
  projectQuotaPerMinute: (projectNumber: string) =>
    new ApiError(
      429,
      quotaText("Queries per minute", projectNumber),
      { domain: "usageLimits", reason: "rateLimitExceeded" },
      {},
      { refusal: "projectQuotaPerMinute" },
    ),
  /** The legacy documented form some Gmail paths still answer with. */
  userRateLimit403: (retryAfterSeconds: number) =>
    new ApiError(
      403,
      "User Rate Limit Exceeded",
      { domain: "usageLimits", reason: "userRateLimitExceeded" },
      { "retry-after": String(retryAfterSeconds) },
      { refusal: "legacy403" },
    ),
  /** domain global, as recorded inside a batch part (error_429_too_many_concurrent_batch_part.txt). */
  tooManyConcurrent: (retryAfterSeconds?: number) =>
    new ApiError(
      429,
      "Too many concurrent requests for user",
      { domain: "global", reason: "rateLimitExceeded" },
      retryAfterSeconds !== undefined ? { "retry-after": String(retryAfterSeconds) } : {},
      { refusal: "tooManyConcurrent" },
    ),

  backendError: () => new ApiError(500, "Backend Error", { reason: "backendError" }),
  unavailable: () => new ApiError(503, "The service is currently unavailable.", { reason: "backendError" }),
};
