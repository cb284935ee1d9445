// The only reader of process.env. Every setting is validated here, once, at start-up; a bad value
// ends the process with one line that names the variable (see cli.ts), never a stack trace.
import os from "node:os";
import path from "node:path";
import { z } from "zod";
import { ConfigError } from "./errors.ts";
import { resolveSecretFiles } from "./secret-files.ts";

const bool = z
  .enum(["true", "false", "1", "0", "yes", "no"])
  .transform((v) => v === "true" || v === "1" || v === "yes");

const int = (min: number, max = Number.MAX_SAFE_INTEGER) => z.coerce.number().int().min(min).max(max);

const postgresUrl = z.string().refine((v) => {
  try {
    const u = new URL(v);
    return (u.protocol === "postgres:" || u.protocol === "postgresql:") && u.pathname.length > 1;
  } catch {
    return false;
  }
}, "must be a postgres:// URL with a database name, e.g. postgres://postgres@127.0.0.1:5432/gmail_sync");

const redisUrl = z.string().refine((v) => {
  try {
    const u = new URL(v);
    return u.protocol === "redis:" || u.protocol === "rediss:";
  } catch {
    return false;
  }
}, "must be a redis:// or rediss:// URL, e.g. redis://127.0.0.1:6379");

const httpUrl = z.string().refine((v) => {
  try {
    const u = new URL(v);
    return u.protocol === "http:" || u.protocol === "https:";
  } catch {
    return false;
  }
}, "must be an http(s) URL");

const list = z.string().transform((v) =>
  v
    .split(",")
    .map((s) => s.trim())
    .filter((s) => s.length > 0),
);

// Defaults work on a developer machine with local Postgres and Redis; production sets the rest.
const schema = z.object({
  DATABASE_URL: postgresUrl.default("postgres://postgres@127.0.0.1:5432/gmail_sync"),
  DATABASE_POOL_SIZE: int(1, 200).default(10),
  REDIS_URL: redisUrl.default("redis://127.0.0.1:6379"),
  // BullMQ key prefix. The braces are a Redis Cluster hash tag: every queue key lands in one slot.
  QUEUE_PREFIX: z
    .string()
    .regex(/^[A-Za-z0-9{}_.-]+$/, "may hold letters, digits, {}_.- only (no ':')")
    .default("{gmail-sync}"),
  // base64 of 32 random bytes (`openssl rand -base64 32`); older keys may follow, comma-separated.
  TOKEN_ENCRYPTION_KEY: z.string().optional(),
  LOG_LEVEL: z.enum(["fatal", "error", "warn", "info", "debug", "trace", "silent"]).default("info"),
  // The public listener: what Google must reach (Pub/Sub push, the OAuth callback) and nothing else.
  HTTP_HOST: z.string().default("0.0.0.0"),
  HTTP_PORT: int(0, 65535).default(9464),
  // The internal listener: /metrics, /healthz, /readyz. Loopback unless told otherwise (a
  // container sets 0.0.0.0 and publishes nothing); 0 = any free port.
  INTERNAL_HTTP_HOST: z.string().default("127.0.0.1"),
  INTERNAL_HTTP_PORT: int(0, 65535).default(9465),
  // The operator page on the internal listener (/operator/accounts, /operator/queues): mounted only
  // when credentials are set — a bearer token, and/or a user and password (see src/operator/).
  OPERATOR_TOKEN: z.string().min(32, "must be at least 32 characters (e.g. `openssl rand -base64 32`)").optional(),
  OPERATOR_USER: z
    .string()
    .regex(/^[^\s:]{1,100}$/, "must be 1-100 characters without spaces or ':'")
    .optional(),
  OPERATOR_PASSWORD: z.string().min(16, "must be at least 16 characters").max(1024).optional(),
  // How long one request may take before the connection is closed (slow-loris, stuck clients).
  HTTP_REQUEST_TIMEOUT_MS: int(1000, 600_000).default(30_000),
  HTTP_BODY_LIMIT_BYTES: int(1024).default(64 * 1024),
  // Per client IP and minute, in memory (per process): /oauth2/start and /oauth2/callback together
  // (a person connecting needs two), and /pubsub/push (Google's senders; Pub/Sub retries a 429).
  // Behind a proxy every request has the proxy's address unless Fastify is told to trust it.
  OAUTH_RATE_LIMIT_PER_MINUTE: int(1).default(60),
  PUSH_RATE_LIMIT_PER_MINUTE: int(1).default(6000),

  GMAIL_API_ROOT_URL: httpUrl.default("https://gmail.googleapis.com/"),
  GOOGLE_OAUTH_AUTH_URL: httpUrl.default("https://accounts.google.com/o/oauth2/v2/auth"),
  GOOGLE_OAUTH_TOKEN_URL: httpUrl.default("https://oauth2.googleapis.com/token"),
  GOOGLE_CERTS_URL: httpUrl.default("https://www.googleapis.com/oauth2/v1/certs"),
  GOOGLE_OAUTH_REVOKE_URL: httpUrl.default("https://oauth2.googleapis.com/revoke"),
  GOOGLE_CLIENT_ID: z.string().optional(),
  GOOGLE_CLIENT_SECRET: z.string().optional(),
  GOOGLE_OAUTH_REDIRECT_URI: httpUrl.default("http://127.0.0.1:9464/oauth2/callback"),
  // Allows plain-http Google endpoints off loopback: only for an emulator on another host (compose).
  GOOGLE_ENDPOINTS_ALLOW_HTTP: bool.default(false),
  GMAIL_QUOTA_UNITS_PER_SECOND: int(1).default(250),
  GMAIL_PROJECT_QUOTA_UNITS_PER_MINUTE: int(1).default(1_200_000),
  // Gmail refuses more than ~10 concurrent requests per user, batch parts included.
  GMAIL_MAX_IN_FLIGHT: int(1, 100).default(10),

  PUBSUB_TOPIC: z.string().optional(),
  PUBSUB_AUDIENCE: z.string().optional(),
  PUBSUB_SERVICE_ACCOUNT: z.string().optional(),
  PUBSUB_VERIFICATION_TOKEN: z.string().optional(),
  WATCH_LABEL_IDS: list.default([]),

  BACKFILL_QUERY: z.string().optional(),
  BACKFILL_LABEL_IDS: list.default([]),
  INCLUDE_SPAM_TRASH: bool.default(false),
  // Backfill fetches a thread whole (threads.get) when a page lists two or more of its messages:
  // never more quota than messages.get, usually less. false: messages.get only.
  BACKFILL_FETCH_THREADS: bool.default(true),
  // Every account with a backfill in progress gets a turn at least this often while the project
  // quota binds: turns shrink (to 1 message) as accounts grow (src/sync/fair-share.ts).
  BACKFILL_ROUND_SECONDS: int(1, 3600).default(30),
  POLL_FALLBACK_MINUTES: int(1).default(10),
  RECONCILE_CRON: z.string().default("0 3 * * 0"),
  // The reconcile tick spreads its accounts over this many hours (a stable hash of each account
  // picks its moment), so a fleet never re-lists at one cron minute; 0 = all at the tick.
  RECONCILE_SPREAD_HOURS: int(0, 24 * 7).default(24),
  WORKER_CONCURRENCY: int(1, 256).default(8),
  // BullMQ job lock: a killed worker's job is taken over by another after about this long.
  WORKER_LOCK_DURATION_MS: int(1000).default(30_000),

  ATTACHMENT_TEMP_DIR: z.string().default(path.join(os.tmpdir(), "gmail-sync-attachments")),
  ATTACHMENT_MEMORY_MAX_BYTES: int(0).default(10 * 1024 * 1024),
  ATTACHMENT_TEMP_FILE_MAX_BYTES: int(0).default(50 * 1024 * 1024),
  TEMP_FILE_ORPHAN_MINUTES: int(1).default(30),
  EXTRACT_POOL_SIZE: int(1, 64).default(Math.max(1, os.availableParallelism())),
  EXTRACT_RSS_LIMIT_MB: int(64).default(512),
  EXTRACT_TIMEOUT_MS: int(100).default(30_000),
  EXTRACT_MAX_PAGES: int(1).default(500),
  EXTRACT_MAX_TEXT_BYTES: int(1024).default(1024 * 1024),
  EXTRACT_RECYCLE_AFTER: int(1).default(200),
  // PDF text engine in the extraction children: PDFium (WebAssembly, default) or pdf-parse (pdf.js).
  PDF_ENGINE: z.enum(["pdfium", "pdf-parse"]).default("pdfium"),
  // Attachment parts handled per message; the rest get a row (too_many_parts) and no download.
  ATTACHMENT_MAX_PER_MESSAGE: int(1).default(100),
  // OCR of image attachments and of PDF pages without a text layer, in a pool of its own. Sized from
  // bench/extract.ts on 2 shared cores: a dense 300-DPI page takes ~3.7 s (a scanned PDF page, with
  // rendering, ~5.3 s) and the child peaks near 300 MB; so 10 pages fit the 120 s with 2× to spare.
  EXTRACT_OCR: bool.default(false),
  EXTRACT_OCR_LANGUAGES: list.default(["eng"]),
  EXTRACT_OCR_POOL_SIZE: int(1, 64).default(1),
  EXTRACT_OCR_RSS_LIMIT_MB: int(64).default(768),
  EXTRACT_OCR_TIMEOUT_MS: int(100).default(120_000),
  EXTRACT_OCR_MAX_PAGES: int(1).default(10),

  METRICS_PER_ACCOUNT: bool.default(false),

  // The change feed (issue 19): changes kept this many days, then pruned (a cursor older than
  // that gets 410 / exit 1). CHANGE_FEED=false stops writing message and attachment changes — a
  // measuring switch (bench:feed), not an operating mode: a consumer misses what happens meanwhile.
  CHANGES_RETENTION_DAYS: int(1, 3650).default(14),
  CHANGE_FEED: bool.default(true),
  // Bearer token for GET /changes on the internal listener; unset = the route answers 404.
  CHANGES_API_TOKEN: z.string().min(16, "must be at least 16 characters (e.g. openssl rand -hex 32)").optional(),
});

export type Config = Readonly<z.output<typeof schema>>;

/**
 * Validates the environment; throws one ConfigError naming every bad variable. Secrets may come
 * from files (`TOKEN_ENCRYPTION_KEY_FILE` etc., see secret-files.ts), read here.
 */
export function loadConfig(env: NodeJS.ProcessEnv = process.env): Config {
  // An empty value means "unset", as in most .env tooling.
  const present = Object.fromEntries(
    Object.entries(env).filter((e): e is [string, string] => e[1] !== undefined && e[1] !== ""),
  );
  const secrets = resolveSecretFiles(present);
  const problems = [...secrets.problems];
  const parsed = schema.safeParse(secrets.env);
  if (!parsed.success) {
    for (const i of parsed.error.issues) {
      const name = i.path.join(".");
      problems.push(`${name} ${i.message}${secrets.fromFile.has(name) ? ` (read from ${name}_FILE)` : ""}`);
    }
  }
  if (parsed.success) problems.push(...insecureGoogleEndpoints(parsed.data));
  if (parsed.success) problems.push(...unpairedOperatorLogin(parsed.data));
  if (problems.length > 0 || !parsed.success) throw new ConfigError(`invalid configuration: ${problems.join("; ")}`);
  return Object.freeze(parsed.data);
}

/** A user without a password (or the reverse) would leave the operator believing a login is set. */
function unpairedOperatorLogin(c: Config): string[] {
  if ((c.OPERATOR_USER === undefined) === (c.OPERATOR_PASSWORD === undefined)) return [];
  return ["OPERATOR_USER and OPERATOR_PASSWORD must be set together (or neither)"];
}

const GOOGLE_ENDPOINTS = [
  "GMAIL_API_ROOT_URL",
  "GOOGLE_OAUTH_AUTH_URL",
  "GOOGLE_OAUTH_TOKEN_URL",
  "GOOGLE_CERTS_URL",
  "GOOGLE_OAUTH_REVOKE_URL",
] as const;
const LOOPBACK = new Set(["127.0.0.1", "localhost", "[::1]", "::1"]);

/**
 * Tokens, codes and mail travel to these endpoints: plain http is accepted only on loopback (the
 * emulator in tests and the demo) or with GOOGLE_ENDPOINTS_ALLOW_HTTP (the compose emulator).
 */
function insecureGoogleEndpoints(c: Config): string[] {
  if (c.GOOGLE_ENDPOINTS_ALLOW_HTTP) return [];
  return GOOGLE_ENDPOINTS.filter((k) => {
    const u = new URL(c[k]);
    return u.protocol !== "https:" && !LOOPBACK.has(u.hostname);
  }).map(
    (k) => `${k} must be https (plain http only on loopback, or with GOOGLE_ENDPOINTS_ALLOW_HTTP=true for an emulator)`,
  );
}
