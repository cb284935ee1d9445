// The Gmail emulator: Gmail API v1 at the origin root, Google's OAuth2 endpoints, OIDC signing
// keys, Pub/Sub push, HTTP batch and a control API, in one HTTP server (fastify).
import { randomBytes } from "node:crypto";
import Fastify, { type FastifyInstance } from "fastify";
import { registerBatchRoutes } from "./batch.ts";
import { createControlClient, registerControlRoutes, type EmulatorControl, type SettingsUpdate } from "./control.ts";
import { ApiError, errors } from "./errors.ts";
import { createAttachmentIds } from "./format.ts";
import { registerGmailRoutes, sendApiError } from "./gmail-api.ts";
import { HTML_CONTENT_TYPE, notFoundPage } from "./html-errors.ts";
import { wantsPretty } from "./json.ts";
import { createSigningKey } from "./keys.ts";
import { Mailbox } from "./mailbox.ts";
import { createMessageFailures } from "./message-failures.ts";
import { createMessageSource } from "./message-source.ts";
import { createTokenStore, registerOAuthRoutes } from "./oauth.ts";
import { createPushService } from "./push.ts";
import { createQuota } from "./quota.ts";
import { createRandom } from "./random.ts";
import { DEFAULT_SETTINGS, type EmulatorState, type Settings } from "./state.ts";
import { createStats } from "./stats.ts";

// Routes name themselves for the request statistics with `config: { name }` (read in onResponse).
declare module "fastify" {
  interface FastifyContextConfig {
    name?: string;
  }
}

export type { EmulatorControl } from "./control.ts";
export type { EmulatorStats } from "./stats.ts";
export { createControlClient } from "./control.ts";

/**
 * Start-up options: every run-time setting (src/state.ts — realistic by default), plus
 * what is fixed when the emulator starts (port, accounts, the generated mailboxes, ids).
 */
export interface EmulatorOptions extends Partial<Settings> {
  port?: number;
  host?: string;
  seed?: number;
  /** Messages generated per account at start (default 0). */
  messages?: number;
  accounts?: string[];
  /** Generated mail has attachments (default true). */
  attachments?: boolean;
  /** Generated mailboxes include the hostile attachments (timeout PDF, zip bomb…; default true). */
  hostile?: boolean;
  /** Generated mailboxes include one 60 MB attachment (default false). */
  largeAttachment?: boolean;
  /** Generated mail includes legacy-charset bodies (iso-8859-1, windows-1252, ISO-2022-JP, Shift_JIS, GBK, KOI8-R, mislabelled), as real mailboxes do (default true). */
  legacyCharsets?: boolean;
  /** Generated mail includes forwarded messages attached as message/rfc822 (default true). */
  forwardedMessages?: boolean;
  /** Generated mail includes a few bodies above bodyByReferenceBytes (default true). */
  largeBodies?: boolean;
  /** Generated mailboxes include drafts (DRAFT label, some with an empty snippet; default true). */
  drafts?: boolean;
  /** A thread's id is its first message's id (default false: as Gmail, often no message's id). */
  threadIdsAreMessageIds?: boolean;
  /** Clock (ms) of the quota windows, for tests that drive time (default Date.now). */
  clock?: () => number;
  historyRetentionHours?: number;
  /** Default 3599, as Google. */
  accessTokenTtlSeconds?: number;
  clientId?: string;
  clientSecret?: string;
  pushServiceAccount?: string;
  /** Origin other machines reach it at (e.g. http://emulator:8085 in Docker), used in the returned URLs. */
  publicUrl?: string;
}

export interface Emulator {
  url: string;
  /** origin + "/" — what @googleapis/gmail takes as rootUrl. */
  gmailRootUrl: string;
  authUrl: string;
  tokenUrl: string;
  /** oauth2RevokeUrl: revokes the grant a token belongs to. */
  revokeUrl: string;
  jwksUrl: string;
  /** PEM map like googleapis.com/oauth2/v1/certs, for OAuth2Client.verifyIdToken. */
  certsUrl: string;
  controlUrl: string;
  clientId: string;
  clientSecret: string;
  pushServiceAccount: string;
  accounts: string[];
  control: EmulatorControl;
  close(): Promise<void>;
}

export const DEFAULT_CLIENT_ID = "100000000000-gmailsyncemulator.apps.googleusercontent.com";
export const DEFAULT_CLIENT_SECRET = "GOCSPX-gmail-sync-emulator";
export const DEFAULT_PUSH_SERVICE_ACCOUNT = "gmail-push@gmail-sync-emulator.iam.gserviceaccount.com";

export async function startEmulator(opts: EmulatorOptions = {}): Promise<Emulator> {
  const seed = opts.seed ?? 1;
  const random = createRandom(seed);
  const accounts = (opts.accounts ?? ["alice@example.com"]).map((a) => a.trim().toLowerCase()).filter(Boolean);
  const settings: Settings = { ...DEFAULT_SETTINGS, unauthorizedTopics: [...DEFAULT_SETTINGS.unauthorizedTopics] };
  for (const key of Object.keys(DEFAULT_SETTINGS) as Array<keyof Settings>) {
    if (opts[key] !== undefined) (settings as unknown as Record<string, unknown>)[key] = opts[key];
  }
  const retentionMs = (opts.historyRetentionHours ?? 168) * 3_600_000;
  const keyPromise = createSigningKey();
  keyPromise.catch(() => {}); // awaited below; avoid an unhandled rejection while mailboxes build
  const stats = createStats();
  // Google's OAuth client ids begin with the project number the per-minute quota texts name.
  const projectNumber = /^(\d+)-/.exec(opts.clientId ?? DEFAULT_CLIENT_ID)?.[1] ?? "100000000000";
  const quota = createQuota(settings, opts.clock ?? Date.now, { random: createRandom(seed ^ 0x9007a), projectNumber });
  const pushServiceAccount = opts.pushServiceAccount ?? DEFAULT_PUSH_SERVICE_ACCOUNT;
  // Mailboxes are built while the signing key is generated in the background.
  const source = createMessageSource(seed);
  const mailboxes = new Map<string, Mailbox>();
  for (const [i, email] of accounts.entries()) {
    const mb = new Mailbox(email, createRandom(seed * 31 + i), retentionMs, {
      settings,
      threadIdsAreMessageIds: opts.threadIdsAreMessageIds ?? false,
    });
    mailboxes.set(email, mb);
    for (const l of source.userLabels) mb.defineLabel(l.id, l.name);
    if ((opts.messages ?? 0) > 0) {
      for (const g of await source.mailbox({
        seed: seed + i,
        count: opts.messages ?? 0,
        email,
        attachments: opts.attachments ?? true,
        hostile: opts.hostile ?? true,
        large: opts.largeAttachment ?? false,
        legacyCharsets: opts.legacyCharsets ?? true,
        forwarded: opts.forwardedMessages ?? true,
        largeBodies: opts.largeBodies ?? true,
        drafts: opts.drafts ?? true,
      }))
        mb.insert(g.raw, g.labelIds, g.internalDate, false);
    }
  }
  const key = await keyPromise;
  const push = createPushService({
    settings,
    random: createRandom(seed ^ 0x5eed),
    key,
    stats,
    serviceAccount: pushServiceAccount,
    serviceAccountId: "113774264463038321964",
  });
  const tokens = createTokenStore(
    opts.clientId ?? DEFAULT_CLIENT_ID,
    opts.clientSecret ?? DEFAULT_CLIENT_SECRET,
    opts.accessTokenTtlSeconds ?? 3599,
  );
  for (const mb of mailboxes.values()) mb.onChange((m, rec) => push.onChange(m, rec));
  const state: EmulatorState = {
    mailboxes,
    settings,
    random,
    tokens,
    quota,
    stats,
    attachmentIds: createAttachmentIds(randomBytes(16).toString("hex")),
    push,
    messageFailures: createMessageFailures(),
    innerSecret: randomBytes(16).toString("hex"),
    seed,
  };

  // maxParamLength: Gmail's attachmentIds are ~319 characters (fastify refuses path parameters over 100 by default).
  const app = Fastify({
    bodyLimit: 256 * 1024 * 1024,
    forceCloseConnections: true,
    keepAliveTimeout: 5000,
    routerOptions: { maxParamLength: 2048 },
  });
  installParsers(app);
  app.addHook("onResponse", async (req, reply) => {
    const name =
      (req.routeOptions.config as { name?: string } | undefined)?.name ??
      (req.routeOptions.url ? `${req.method} ${req.routeOptions.url}` : "unrouted");
    stats.count(name, reply.statusCode);
  });
  app.setErrorHandler((err, req, reply) => {
    const pretty = wantsPretty(settings.prettyJson, req.query as Record<string, unknown>);
    if (err instanceof ApiError) return sendApiError(reply, err, pretty);
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    if (req.url.startsWith("/gmail/") || req.url.startsWith("/batch"))
      return sendApiError(
        reply,
        status >= 500 ? errors.backendError() : errors.badRequest((err as Error).message),
        pretty,
      );
    return reply.code(status).send({ error: (err as Error).message });
  });
  // A path no API serves gets Google's HTML 404 page (the control API keeps JSON).
  app.setNotFoundHandler((req, reply) =>
    req.url.startsWith("/emulator/")
      ? reply.code(404).send({ error: "no such control route" })
      : reply.code(404).type(HTML_CONTENT_TYPE).send(notFoundPage(req.url)),
  );
  app.get("/oauth2/v3/certs", async (_req, reply) =>
    reply.header("cache-control", "public, max-age=60").send(key.jwks),
  );
  app.get("/oauth2/v1/certs", async (_req, reply) =>
    reply.header("cache-control", "public, max-age=60").send(key.pemCerts),
  );

  const latency = () =>
    settings.latencyMs > 0 ? new Promise<void>((r) => setTimeout(r, settings.latencyMs)) : Promise.resolve();
  registerOAuthRoutes(
    app,
    tokens,
    () => accounts,
    latency,
    (claims) => key.signJwt(claims),
  );
  registerGmailRoutes(app, state);
  registerBatchRoutes(app, state);
  registerControlRoutes(
    app,
    state,
    (email, attachments) => source.message(email, attachments),
    (s: SettingsUpdate) => {
      Object.assign(
        settings,
        Object.fromEntries(Object.entries(s).filter(([k, v]) => v !== undefined && k in settings)),
      );
      // A changed limit starts from a clean window, as tests that change it expect.
      if (
        s.quotaUnitsPerSecond !== undefined ||
        s.userQuotaUnitsPerMinute !== undefined ||
        s.projectQuotaUnitsPerMinute !== undefined
      )
        quota.reset();
    },
  );

  const host = opts.host ?? "127.0.0.1";
  await app.listen({ port: opts.port ?? 0, host });
  const addr = app.server.address();
  const port = typeof addr === "object" && addr ? addr.port : (opts.port ?? 0);
  const publicHost = host === "0.0.0.0" || host === "::" ? "127.0.0.1" : host.includes(":") ? `[${host}]` : host;
  const url = opts.publicUrl !== undefined ? opts.publicUrl.replace(/\/+$/, "") : `http://${publicHost}:${port}`;
  const controlUrl = `${url}/emulator`;
  let closing: Promise<void> | undefined;
  return {
    url,
    gmailRootUrl: `${url}/`,
    authUrl: `${url}/o/oauth2/v2/auth`,
    tokenUrl: `${url}/token`,
    revokeUrl: `${url}/revoke`,
    jwksUrl: `${url}/oauth2/v3/certs`,
    certsUrl: `${url}/oauth2/v1/certs`,
    controlUrl,
    clientId: tokens.clientId,
    clientSecret: tokens.clientSecret,
    pushServiceAccount,
    accounts,
    // The in-process handle talks to the local address, which works whatever publicUrl says.
    control: createControlClient(`http://${publicHost}:${port}/emulator`),
    close() {
      closing ??= (async () => {
        await push.close();
        await app.close();
      })();
      return closing;
    },
  };
}

function installParsers(app: FastifyInstance): void {
  // The Node client POSTs watch/stop with a JSON content type and sometimes no body at all.
  app.removeContentTypeParser("application/json");
  app.addContentTypeParser("application/json", { parseAs: "string" }, (_req, body, done) => {
    const text = (body as string).trim();
    if (text === "") return done(null, undefined);
    try {
      done(null, JSON.parse(text));
    } catch {
      const err = errors.badRequest("Invalid JSON payload received.");
      done(err, undefined);
    }
  });
  app.addContentTypeParser("application/x-www-form-urlencoded", { parseAs: "string" }, (_req, body, done) => {
    done(null, Object.fromEntries(new URLSearchParams(body as string)));
  });
  app.addContentTypeParser("multipart/mixed", { parseAs: "buffer" }, (_req, body, done) => done(null, body));
  // Anything else (e.g. text/plain posts) arrives as a string; handlers decide.
  app.addContentTypeParser("*", { parseAs: "buffer" }, (_req, body, done) => done(null, body));
}
