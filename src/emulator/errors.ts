// Gmail's error envelope, with the texts Gmail uses (see the facts sheet §7): every error carries
// `errors[]` and a google.rpc `status`.

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

export class ApiError extends Error {
  readonly status: number;
  readonly item: GoogleErrorItem;
  readonly headers: Record<string, string>;
  constructor(status: number, message: string, item: Partial<GoogleErrorItem> & { reason: string }, headers: Record<string, string> = {}) {
    super(message);
    this.status = status;
    this.item = { message: item.message ?? message, domain: item.domain ?? "global", reason: item.reason, ...(item.location ? { location: item.location, locationType: item.locationType ?? "parameter" } : {}) };
    this.headers = headers;
  }

  toJSON(): unknown {
    return { error: { code: this.status, message: this.message, errors: [this.item], status: STATUS[this.status] ?? "UNKNOWN" } };
  }
}

const AUTH_HINT = "Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.";

export const errors = {
  notFound: () => new ApiError(404, "Requested entity was not found.", { reason: "notFound" }),
  invalidId: () => new ApiError(400, "Invalid id value", { reason: "invalidArgument" }),
  badRequest: (message: string, location?: string) => new ApiError(400, message, { reason: "invalidArgument", ...(location ? { location } : {}) }),
  missingCredentials: () =>
    new ApiError(401, `Request is missing required authentication credential. ${AUTH_HINT}`, { reason: "required", location: "Authorization", locationType: "header" }, { "www-authenticate": 'Bearer realm="https://accounts.google.com/"' }),
  invalidCredentials: () =>
    new ApiError(401, `Request had invalid authentication credentials. ${AUTH_HINT}`, { message: "Invalid Credentials", reason: "authError", location: "Authorization", locationType: "header" }, { "www-authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"' }),
  insufficientScope: (scope: string) =>
    new ApiError(403, "Request had insufficient authentication scopes.", { message: "Insufficient Permission", reason: "insufficientPermissions" }, { "www-authenticate": `Bearer realm="https://accounts.google.com/", error="insufficient_scope", scope="${scope}"` }),
  forbidden: (message: string) => new ApiError(403, message, { reason: "forbidden" }),
  delegationDenied: (email: string) => new ApiError(403, `Delegation denied for ${email}`, { reason: "forbidden" }),
  userRateLimit: (retryAt: Date, retryAfterSeconds: number) =>
    // Two spaces before "Retry after", as Gmail writes it.
    new ApiError(429, `User-rate limit exceeded.  Retry after ${retryAt.toISOString()}`, { domain: "usageLimits", reason: "rateLimitExceeded" }, { "retry-after": String(retryAfterSeconds) }),
  /** The legacy documented form some Gmail paths still answer with. */
  userRateLimit403: (retryAfterSeconds: number) =>
    new ApiError(403, "User Rate Limit Exceeded", { domain: "usageLimits", reason: "userRateLimitExceeded" }, { "retry-after": String(retryAfterSeconds) }),
  tooManyConcurrent: () => new ApiError(429, "Too many concurrent requests for user", { domain: "usageLimits", reason: "rateLimitExceeded" }, { "retry-after": "1" }),
  backendError: () => new ApiError(500, "Backend Error", { reason: "backendError" }),
  unavailable: () => new ApiError(503, "The service is currently unavailable.", { reason: "backendError" }),
};
