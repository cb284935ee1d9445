// The browser round trip (a connect link → /oauth2/start → emulator consent → /oauth2/callback) and
// the CLI's `auth` command, against the emulator, real Postgres and real Redis. The refusals
// (no link, forged, reused, wrong address, rate limits, Redis down) are in test/security/.
import { randomBytes } from "node:crypto";
import Fastify, { type FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Config, loadConfig } from "../../src/config.ts";
import { findAccountByEmail } from "../../src/db/accounts.ts";
import { startEmulator, type Emulator } from "@gmail-sync/emulator";
import { createLogger } from "../../src/log.ts";
import { mintConnectLink } from "../../src/connect-link.ts";
import { registerOAuthRoutes } from "../../src/oauth-routes.ts";
import { type KeyRing, parseKeyRing } from "../../src/token-crypto.ts";
import { runCli } from "../helpers/cli.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";
import { emulatorEnv } from "../../src/demo/emulator-env.ts";

const ALICE = "alice@example.com";
const BOB = "bob@example.com";
let emu: Emulator;
let t: TestDatabase;
let r: TestRedis;
let config: Config;
let env: Record<string, string>;
let app: FastifyInstance;
let keyRing: KeyRing;
const connected: number[] = [];

/** /oauth2/start with a fresh connect link for `email`, as the operator would hand it out. */
async function startWithLink(email: string): Promise<string> {
  const link = await mintConnectLink({ redis: r.redis, config, keyRing }, { expiresInSeconds: 600, loginHint: email });
  return `/oauth2/start?link=${encodeURIComponent(link.token)}`;
}

beforeAll(async () => {
  [emu, t, r] = await Promise.all([
    startEmulator({ accounts: [ALICE, BOB], messages: 3, seed: 3 }),
    createTestDatabase(),
    createTestRedis(),
  ]);
  env = {
    DATABASE_URL: t.url,
    REDIS_URL: r.url,
    QUEUE_PREFIX: r.prefix,
    TOKEN_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
    ...emulatorEnv(emu),
    GOOGLE_OAUTH_REDIRECT_URI: "http://127.0.0.1:9/oauth2/callback",
  };
  config = loadConfig(env);
  keyRing = parseKeyRing(config.TOKEN_ENCRYPTION_KEY);
  app = Fastify();
  registerOAuthRoutes(app, {
    db: t.db,
    redis: r.redis,
    config,
    keyRing,
    log: createLogger("silent"),
    onConnected: async (id) => void connected.push(id),
  });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await Promise.all([emu?.close(), t?.drop(), r?.cleanup()]);
});

/** Follows the consent redirect as a browser would; returns the callback's path and query. */
async function consent(startUrl: string): Promise<string> {
  const start = await app.inject({ method: "GET", url: startUrl });
  expect(start.statusCode).toBe(302);
  const consentUrl = new URL(String(start.headers.location));
  expect(consentUrl.origin + consentUrl.pathname).toBe(emu.authUrl);
  expect(consentUrl.searchParams.get("access_type")).toBe("offline");
  expect(consentUrl.searchParams.get("prompt")).toBe("consent");
  expect(consentUrl.searchParams.get("scope")).toBe("https://www.googleapis.com/auth/gmail.readonly");
  expect(consentUrl.searchParams.get("code_challenge_method")).toBe("S256");
  expect(consentUrl.searchParams.get("code_challenge")).toMatch(/^[A-Za-z0-9_-]{43}$/);
  const res = await fetch(consentUrl, { redirect: "manual" });
  const back = new URL(res.headers.get("location") ?? "");
  return back.pathname + back.search;
}

describe("OAuth routes", () => {
  it("start → consent → callback connects the account once; the state cannot be replayed", async () => {
    const callback = await consent(await startWithLink(BOB));
    const res = await app.inject({ method: "GET", url: callback });
    expect(res.statusCode, res.body).toBe(200);
    expect(res.body).toContain(BOB);
    const row = await findAccountByEmail(t.db, BOB);
    expect(row?.status).toBe("active");
    expect(connected).toContain(row?.id);
    const replay = await app.inject({ method: "GET", url: callback });
    expect(replay.statusCode).toBe(400);
    expect(replay.body).toContain("state");
  });

  it("refuses a callback whose state was never issued, and a denied consent", async () => {
    const forged = await app.inject({ method: "GET", url: "/oauth2/callback?state=forged&code=4/0Aemu-x" });
    expect(forged.statusCode).toBe(400);
    const denied = await consent(await startWithLink("nobody@example.com"));
    expect(denied).toContain("error=access_denied");
    const res = await app.inject({ method: "GET", url: denied });
    expect(res.statusCode).toBe(400);
    expect(res.body).toContain("access_denied");
  });
});

describe("gmail-sync auth", () => {
  it("prints a consent URL with a state, then --code connects the account and queues its backfill", async () => {
    const printed = await runCli(["auth", "--login-hint", ALICE, "--json"], env);
    expect(printed.code, printed.stderr).toBe(0);
    const { url, state } = JSON.parse(printed.stdout) as { url: string; state: string };
    expect(new URL(url).searchParams.get("state")).toBe(state);
    const res = await fetch(url, { redirect: "manual" });
    const code = new URL(res.headers.get("location") ?? "").searchParams.get("code") ?? "";
    const done = await runCli(["auth", "--code", code, "--json"], env);
    expect(done.code, done.stderr).toBe(0);
    const out = JSON.parse(done.stdout) as { accountId: number; email: string };
    expect(out.email).toBe(ALICE);
    expect((await findAccountByEmail(t.db, ALICE))?.id).toBe(out.accountId);
    const queued = await r.redis.keys(`${r.prefix}:backfill:*`);
    expect(queued.length).toBeGreaterThan(0);
  });
});
