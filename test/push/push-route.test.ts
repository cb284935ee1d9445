// POST /pubsub/push against the emulator's real Pub/Sub side: it signs RS256 OIDC tokens and posts
// Google's envelope; the route verifies them against the emulator's certs exactly as against
// Google's. Also every bad input from issue 5: forged, expired, wrong-audience and other-account
// tokens, garbage, missing historyId, an oversized body, unknown and deleted accounts, stale and
// repeated notifications.
import { generateKeyPairSync, createSign, randomBytes } from "node:crypto";
import { gmail } from "@googleapis/gmail";
import type { FastifyInstance } from "fastify";
import { OAuth2Client } from "google-auth-library";
import { afterAll, beforeAll, describe, expect, it, vi } from "vitest";
import { type Config, loadConfig } from "../../src/config.ts";
import { startEmulator, type Emulator } from "@gmail-sync/emulator";
import { buildHttpServer, listen } from "../../src/http.ts";
import { createLogger } from "../../src/log.ts";
import { pushRequestsTotal } from "../../src/metrics.ts";
import { createPushAuthenticator } from "../../src/pubsub.ts";
import { registerPushRoute } from "../../src/push-route.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";

const ALICE = "alice@example.com";
const CAROL = "carol@example.com"; // in the emulator, not connected here
const AUDIENCE = "https://gmail-sync.test/pubsub/push";

let emu: Emulator;
let t: TestDatabase;
let r: TestRedis;
let app: FastifyInstance;
let baseUrl: string;
let config: Config;
let aliceId: number;
const enqueued: Array<{ accountId: number; historyId: string }> = [];
let enqueueFails = false;
const seenAuthorization: string[] = [];

beforeAll(async () => {
  [t, r] = await Promise.all([createTestDatabase(), createTestRedis()]);
  emu = await startEmulator({ accounts: [ALICE, CAROL], seed: 5, pushAudience: AUDIENCE, pushMinBackoffMs: 50 });
  config = loadConfig({
    DATABASE_URL: t.url,
    REDIS_URL: r.url,
    QUEUE_PREFIX: r.prefix,
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: "0",
    INTERNAL_HTTP_PORT: "0",
    HTTP_BODY_LIMIT_BYTES: String(64 * 1024),
    PUBSUB_AUDIENCE: AUDIENCE,
    PUBSUB_SERVICE_ACCOUNT: emu.pushServiceAccount,
    GOOGLE_CERTS_URL: emu.certsUrl,
  });
  aliceId = (await t.db.insertInto("accounts").values({ email: ALICE }).returning("id").executeTakeFirstOrThrow()).id;
  await t.db.insertInto("sync_state").values({ account_id: aliceId, history_id: "1" }).execute();

  const log = createLogger("silent");
  app = buildHttpServer({ config, log, db: t.db, redis: r.redis });
  app.addHook("onRequest", async (req) => {
    if (req.url.startsWith("/pubsub/push") && req.headers.authorization)
      seenAuthorization.push(req.headers.authorization);
  });
  registerPushRoute(app, {
    db: t.db,
    redis: r.redis,
    log,
    keyPrefix: r.prefix,
    authenticate: createPushAuthenticator({
      certsUrl: config.GOOGLE_CERTS_URL,
      audience: config.PUBSUB_AUDIENCE,
      serviceAccount: config.PUBSUB_SERVICE_ACCOUNT,
      verificationToken: undefined,
    }),
    enqueueIncremental: async (accountId, opts) => {
      if (enqueueFails) throw new Error("queue unavailable");
      enqueued.push({ accountId, historyId: opts.historyId });
      return { coalesced: false };
    },
  });
  baseUrl = await listen(app, config);
  await emu.control.updateSettings({ pushEndpoint: `${baseUrl}/pubsub/push` });
});

afterAll(async () => {
  await emu?.close();
  await app?.close();
  await Promise.all([t?.drop(), r?.cleanup()]);
});

async function watch(email: string): Promise<void> {
  const auth = new OAuth2Client({
    clientId: emu.clientId,
    clientSecret: emu.clientSecret,
    endpoints: { oauth2TokenUrl: emu.tokenUrl },
  });
  auth.setCredentials({ refresh_token: await emu.control.issueRefreshToken(email) });
  await gmail({ version: "v1", auth, rootUrl: emu.gmailRootUrl }).users.watch({
    userId: "me",
    requestBody: { topicName: "projects/p/topics/gmail" },
  });
}

async function until<T>(fn: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((res) => setTimeout(res, 20));
  }
}

function envelope(data: unknown, messageId = randomBytes(6).toString("hex")) {
  const encoded = typeof data === "string" ? data : Buffer.from(JSON.stringify(data)).toString("base64");
  return {
    message: { data: encoded, messageId, message_id: messageId, publishTime: new Date().toISOString() },
    subscription: "projects/p/subscriptions/s",
  };
}

async function post(body: unknown, authorization: string | undefined, query = ""): Promise<number> {
  const res = await fetch(`${baseUrl}/pubsub/push${query}`, {
    method: "POST",
    headers: { "content-type": "application/json", ...(authorization ? { authorization } : {}) },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
  await res.arrayBuffer();
  return res.status;
}

function pushCount(outcome: string): Promise<number> {
  return import("../../src/metrics.ts").then(
    async (m) => (await m.pushRequestsTotal.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0,
  );
}

/** A JWT with the emulator's claims but signed by a key nobody trusts. */
function forge(claims: Record<string, unknown>): string {
  const { privateKey } = generateKeyPairSync("rsa", { modulusLength: 2048 });
  const head = Buffer.from(JSON.stringify({ alg: "RS256", typ: "JWT", kid: "forged" })).toString("base64url");
  const body = Buffer.from(JSON.stringify(claims)).toString("base64url");
  const sig = createSign("RSA-SHA256").update(`${head}.${body}`).sign(privateKey).toString("base64url");
  return `Bearer ${head}.${body}.${sig}`;
}

describe("push from the emulator's Pub/Sub", () => {
  let validAuth: string;

  it("verifies the real OIDC token and enqueues one incremental sync per notification", async () => {
    await watch(ALICE);
    const delivered = await emu.control.deliver(ALICE, {});
    const job = await until(() => enqueued.find((e) => BigInt(e.historyId) >= BigInt(delivered.historyId)));
    expect(job.accountId).toBe(aliceId);
    validAuth = seenAuthorization.at(-1) as string;
    expect(validAuth).toMatch(/^Bearer [\w-]+\.[\w-]+\.[\w-]+$/);
    const state = await t.db
      .selectFrom("sync_state")
      .select("last_push_at")
      .where("account_id", "=", aliceId)
      .executeTakeFirstOrThrow();
    expect(state.last_push_at).not.toBeNull();
    // Acknowledged: the emulator does not redeliver.
    const { pushes } = await emu.control.stats();
    expect(pushes.acked).toBeGreaterThanOrEqual(1);
    expect(pushes.nacked).toBe(0);
  });

  it("drops a repeated Pub/Sub messageId and a historyId at or below the cursor", async () => {
    await t.db.updateTable("sync_state").set({ history_id: "1000" }).where("account_id", "=", aliceId).execute();
    const before = enqueued.length;
    const fresh = envelope({ emailAddress: ALICE, historyId: 1001 }, "dup-1");
    expect(await post(fresh, validAuth)).toBe(204);
    expect(await post(fresh, validAuth)).toBe(204); // redelivery
    expect(await post(envelope({ emailAddress: ALICE, historyId: "1000" }), validAuth)).toBe(204);
    expect(await post(envelope({ emailAddress: ALICE, historyId: 999 }), validAuth)).toBe(204);
    expect(enqueued.slice(before)).toEqual([{ accountId: aliceId, historyId: "1001" }]);
    expect(await pushCount("duplicate")).toBe(1);
    expect(await pushCount("stale")).toBe(2);
  });

  it("answers 503 when the job cannot be enqueued, and accepts Pub/Sub's redelivery afterwards", async () => {
    const redelivered = envelope({ emailAddress: ALICE, historyId: 2000 }, "flaky-1");
    enqueueFails = true;
    try {
      expect(await post(redelivered, validAuth)).toBe(503);
    } finally {
      enqueueFails = false;
    }
    const before = enqueued.length;
    expect(await post(redelivered, validAuth)).toBe(204);
    expect(enqueued.slice(before)).toEqual([{ accountId: aliceId, historyId: "2000" }]);
    expect(await pushCount("failed")).toBe(1);
  });

  it("acknowledges unknown and deleted accounts without enqueuing", async () => {
    const before = enqueued.length;
    expect(await post(envelope({ emailAddress: CAROL, historyId: 5000 }), validAuth)).toBe(204);
    const { id } = await t.db
      .insertInto("accounts")
      .values({ email: "dave@example.com" })
      .returning("id")
      .executeTakeFirstOrThrow();
    await t.db.deleteFrom("accounts").where("id", "=", id).execute();
    expect(await post(envelope({ emailAddress: "dave@example.com", historyId: 5000 }), validAuth)).toBe(204);
    expect(enqueued.length).toBe(before);
    expect(await pushCount("unknown_account")).toBe(2);
  });
});

describe("bad input and attacks", () => {
  const body = () => envelope({ emailAddress: ALICE, historyId: 900000 });
  let validAuth: string;
  beforeAll(() => {
    validAuth = seenAuthorization.at(-1) as string;
  });

  it.each<[string, () => string | undefined]>([
    ["no Authorization header", () => undefined],
    ["a non-Bearer scheme", () => "Basic dXNlcjpwYXNz"],
    ["garbage in place of a JWT", () => "Bearer not.a.jwt"],
    [
      "a token signed by another key",
      () =>
        forge({
          iss: "https://accounts.google.com",
          aud: AUDIENCE,
          email: emu.pushServiceAccount,
          email_verified: true,
          iat: Math.floor(Date.now() / 1000),
          exp: Math.floor(Date.now() / 1000) + 3600,
        }),
    ],
    [
      "a real token with its payload swapped",
      () => {
        const [head, , sig] = validAuth.slice(7).split(".");
        const claims = {
          iss: "https://accounts.google.com",
          aud: AUDIENCE,
          email: "attacker@evil.test",
          email_verified: true,
          iat: Math.floor(Date.now() / 1000),
          exp: Math.floor(Date.now() / 1000) + 3600,
        };
        return `Bearer ${head}.${Buffer.from(JSON.stringify(claims)).toString("base64url")}.${sig}`;
      },
    ],
  ])("401 and nothing enqueued for %s", async (_name, auth) => {
    const before = enqueued.length;
    expect(await post(body(), auth())).toBe(401);
    expect(enqueued.length).toBe(before);
  });

  it("401 for a real token once it has expired", async () => {
    vi.useFakeTimers({ toFake: ["Date"], now: Date.now() + 3 * 3600_000 });
    try {
      const before = enqueued.length;
      expect(await post(body(), validAuth)).toBe(401);
      expect(enqueued.length).toBe(before);
    } finally {
      vi.useRealTimers();
    }
  });

  it("401 for real tokens meant for another audience or another service account", async () => {
    // Same emulator key, but this server expects a different audience / service account.
    for (const [audience, serviceAccount] of [
      ["https://other.test/push", emu.pushServiceAccount],
      [AUDIENCE, "someone-else@project.iam.gserviceaccount.com"],
    ]) {
      const auth = createPushAuthenticator({
        certsUrl: emu.certsUrl,
        audience,
        serviceAccount,
        verificationToken: undefined,
      });
      expect(await auth(validAuth, undefined)).toEqual({ ok: false, why: expect.any(String) });
    }
    expect(
      await createPushAuthenticator({
        certsUrl: emu.certsUrl,
        audience: AUDIENCE,
        serviceAccount: emu.pushServiceAccount,
        verificationToken: undefined,
      })(validAuth, undefined),
    ).toMatchObject({ ok: true });
  });

  it.each<[string, unknown]>([
    ["base64 garbage", envelope("%%%not base64%%%")],
    ["JSON without historyId", envelope({ emailAddress: ALICE })],
    ["no message at all", { subscription: "x" }],
  ])(
    "an authenticated but malformed push is acknowledged (204, not redelivered for a week), counted, and enqueues nothing: %s",
    async (_name, payload) => {
      const before = enqueued.length;
      const counted = async () =>
        (await pushRequestsTotal.get()).values.find((v) => v.labels.outcome === "malformed")?.value ?? 0;
      const malformedBefore = await counted();
      expect(await post(payload, validAuth)).toBe(204);
      expect(enqueued.length).toBe(before);
      expect(await counted()).toBe(malformedBefore + 1);
    },
  );

  it("400 for a body that is not JSON at all (no Pub/Sub push looks like that)", async () => {
    const before = enqueued.length;
    expect(await post("{{{", validAuth)).toBe(400);
    expect(enqueued.length).toBe(before);
  });

  it("413 for a 10 MB body, before any verification", async () => {
    const huge = JSON.stringify({ message: { data: "A".repeat(10 * 1024 * 1024), messageId: "big" } });
    expect(await post(huge, validAuth)).toBe(413);
  });

  it("the legacy ?token= mode is off unless configured", async () => {
    const before = enqueued.length;
    expect(await post(body(), undefined, "?token=anything")).toBe(401);
    const legacy = createPushAuthenticator({
      certsUrl: emu.certsUrl,
      audience: AUDIENCE,
      serviceAccount: emu.pushServiceAccount,
      verificationToken: "s3cret",
    });
    expect(await legacy(undefined, "s3cret")).toMatchObject({ ok: true, via: "token" });
    expect(await legacy(undefined, "s3cret-not")).toMatchObject({ ok: false });
    expect(enqueued.length).toBe(before);
  });
});
