// Who may connect a mailbox (issue 17): only someone holding a connect link the operator minted.
// Against the emulator over HTTP (real google-auth-library), real Postgres and real Redis: an
// anonymous enrolment is refused without touching Redis; forged, expired and reused links are
// refused; a link's login hint is enforced before anything is stored; PKCE is on the exchange and
// the emulator checks it as Google does; only gmail.readonly grants are kept; a disconnected account
// comes back only through a new link; floods of the unauthenticated routes get 429 and add nothing
// to Redis; with Redis down /oauth2/start answers 503 within seconds.
import { randomBytes } from "node:crypto";
import Fastify, { type FastifyInstance } from "fastify";
import { OAuth2Client } from "google-auth-library";
import { Redis } from "ioredis";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type Config, loadConfig } from "../../src/config.ts";
import { connectLinkKeys, mintConnectLink, signConnectLink, verifyConnectLink } from "../../src/connect-link.ts";
import { findAccountByEmail } from "../../src/db/accounts.ts";
import { emulatorEnv } from "../../src/demo/emulator-env.ts";
import { startEmulator, type Emulator } from "@gmail-sync/emulator";
import { freePort } from "../../src/http.ts";
import { createLogger } from "../../src/log.ts";
import { oauthStateKey, registerOAuthRoutes } from "../../src/oauth-routes.ts";
import { registerPushRoute } from "../../src/push-route.ts";
import { type KeyRing, parseKeyRing } from "../../src/token-crypto.ts";
import { runCli } from "../helpers/cli.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";

const ALICE = "alice@example.com";
const BOB = "bob@example.com";
const CAROL = "carol@example.com";
const DAVE = "dave@example.com";
const ERIN = "erin@example.com";
const FRANK = "frank@example.com";
const READONLY = "https://www.googleapis.com/auth/gmail.readonly";
const MODIFY = "https://www.googleapis.com/auth/gmail.modify";

let emu: Emulator;
let t: TestDatabase;
let r: TestRedis;
let config: Config;
let env: Record<string, string>;
let keyRing: KeyRing;
let app: FastifyInstance;
/** Redis commands the OAuth routes sent (the routes get a recording proxy of the test client). */
const redisCalls: string[] = [];
let nextIp = 1;
/** A client address of its own for each test: the per-IP rate limit of one does not reach another. */
const freshIp = () => `10.0.${Math.floor(nextIp / 250)}.${nextIp++ % 250}`;

function recording(redis: Redis): Redis {
  return new Proxy(redis, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target) as unknown;
      if (typeof v !== "function") return v;
      return (...args: unknown[]) => {
        redisCalls.push(String(prop));
        return (v as (...a: unknown[]) => unknown).apply(target, args);
      };
    },
  });
}

const prefixKeys = () => r.redis.keys(`${r.prefix}*`);

beforeAll(async () => {
  [emu, t, r] = await Promise.all([
    startEmulator({ accounts: [ALICE, BOB, CAROL, DAVE, ERIN, FRANK], messages: 3, seed: 17 }),
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
    redis: recording(r.redis),
    config,
    keyRing,
    log: createLogger("silent"),
    onConnected: async () => {},
  });
  await app.ready();
});

afterAll(async () => {
  await app?.close();
  await Promise.all([emu?.close(), t?.drop(), r?.cleanup()]);
});

const get = (url: string, ip: string) => app.inject({ method: "GET", url, remoteAddress: ip });
const startUrl = (token: string) => `/oauth2/start?link=${encodeURIComponent(token)}`;
const mint = (loginHint?: string, expiresInSeconds = 600) =>
  mintConnectLink({ redis: r.redis, config, keyRing }, { expiresInSeconds, loginHint });

/** /oauth2/start with the link, then the consent page (its URL edited by `edit` first, as a user could). */
async function throughConsent(token: string, ip: string, edit: (consent: URL) => void = () => {}): Promise<string> {
  const start = await get(startUrl(token), ip);
  expect(start.statusCode, start.body).toBe(302);
  const consent = new URL(String(start.headers.location));
  edit(consent);
  const res = await fetch(consent, { redirect: "manual" });
  const back = new URL(res.headers.get("location") ?? "");
  return back.pathname + back.search;
}

describe("/oauth2/start needs a connect link", () => {
  it("refuses an anonymous enrolment with 403 and sends Redis nothing", async () => {
    const before = await prefixKeys();
    redisCalls.length = 0;
    const ip = freshIp();
    for (const url of [
      "/oauth2/start",
      `/oauth2/start?login_hint=${encodeURIComponent(ALICE)}`,
      "/oauth2/start?link=",
    ]) {
      const res = await get(url, ip);
      expect(res.statusCode, url).toBe(403);
      expect(res.headers.location).toBeUndefined();
    }
    expect(redisCalls).toEqual([]);
    expect(await prefixKeys()).toEqual(before);
    expect(await findAccountByEmail(t.db, ALICE)).toBeUndefined();
  });

  it("refuses forged links: garbage, an edited payload, another key's signature", async () => {
    const link = await mint(ALICE);
    const [payload, sig] = link.token.split(".") as [string, string];
    const claims = JSON.parse(Buffer.from(payload, "base64url").toString()) as {
      id: string;
      exp: number;
      hint: string;
    };
    const edited = Buffer.from(JSON.stringify({ ...claims, hint: BOB })).toString("base64url");
    const otherRing = parseKeyRing(randomBytes(32).toString("base64"));
    const forged = [
      "garbage",
      `${payload}.${"A".repeat(43)}`,
      `${edited}.${sig}`,
      signConnectLink(connectLinkKeys(otherRing)[0] as Buffer, { ...claims, hint: BOB }),
      // Signed with the encryption key itself rather than the key derived from it.
      signConnectLink(keyRing.keys.get(keyRing.activeKeyId) as Buffer, claims),
      `${link.token}.extra`,
      "x".repeat(5000),
    ];
    redisCalls.length = 0;
    const ip = freshIp();
    for (const token of forged) expect((await get(startUrl(token), ip)).statusCode, token.slice(0, 40)).toBe(403);
    expect(redisCalls).toEqual([]);
    // The genuine one is accepted (so the refusals above are about the forgery, not the set-up).
    expect((await get(startUrl(link.token), ip)).statusCode).toBe(302);
  });

  it("refuses an expired link, from its signed expiry even while its marker is still in Redis", async () => {
    const link = await mint(ALICE);
    const key = connectLinkKeys(keyRing)[0] as Buffer;
    const expired = signConnectLink(key, { id: link.id, exp: Math.floor(Date.now() / 1000) - 1, hint: ALICE });
    expect(verifyConnectLink(connectLinkKeys(keyRing), link.token)).not.toBeNull();
    const ip = freshIp();
    expect((await get(startUrl(expired), ip)).statusCode).toBe(403);
    expect(await r.redis.exists(`${r.prefix}:connect-link:${link.id}`)).toBe(1);
    // And a link whose lifetime ran out the ordinary way.
    const short = await mint(ALICE, 1);
    await new Promise((res) => setTimeout(res, 1200));
    expect((await get(startUrl(short.token), ip)).statusCode).toBe(403);
  });

  it("a link connects one mailbox once: reuse is refused at /oauth2/start, a second tab at the callback", async () => {
    const link = await mint(ALICE);
    const ip = freshIp();
    const first = await throughConsent(link.token, ip);
    const second = await throughConsent(link.token, ip); // another tab, before the first finished
    const done = await get(first, ip);
    expect(done.statusCode, done.body).toBe(200);
    expect((await findAccountByEmail(t.db, ALICE))?.status).toBe("active");
    const raced = await get(second, ip);
    expect(raced.statusCode, raced.body).toBe(403);
    expect(raced.body).toContain("already used");
    const again = await get(startUrl(link.token), ip);
    expect(again.statusCode).toBe(403);
    expect(again.body).toContain("already used");
    expect(await r.redis.exists(`${r.prefix}:connect-link:${link.id}`)).toBe(0);
  });

  it("a link with a login hint connects no other address, and nothing of the other is stored", async () => {
    const link = await mint(BOB);
    const ip = freshIp();
    // The user picks another account on the consent page (here: edits the hint the emulator follows).
    const callback = await throughConsent(link.token, ip, (u) => u.searchParams.set("login_hint", CAROL));
    const res = await get(callback, ip);
    expect(res.statusCode, res.body).toBe(403);
    expect(res.body).toContain(`for ${BOB}, not ${CAROL}`);
    expect(await findAccountByEmail(t.db, CAROL)).toBeUndefined();
    // The link is not used up by the refusal: its owner can still connect the right mailbox.
    const ok = await get(await throughConsent(link.token, ip), ip);
    expect(ok.statusCode, ok.body).toBe(200);
    expect((await findAccountByEmail(t.db, BOB))?.status).toBe("active");
  });
});

describe("the code exchange", () => {
  it("uses PKCE (S256): the callback fails when the verifier kept with the state is not the one challenged", async () => {
    const link = await mint(DAVE);
    const ip = freshIp();
    const callback = await throughConsent(link.token, ip);
    const state = new URL(callback, "http://x").searchParams.get("state") ?? "";
    const key = oauthStateKey(config, state);
    const binding = JSON.parse((await r.redis.get(key)) ?? "{}") as { verifier?: string };
    expect(binding.verifier).toMatch(/^[A-Za-z0-9._~-]{43,128}$/);
    await r.redis.set(key, JSON.stringify({ ...binding, verifier: randomBytes(48).toString("base64url") }), "EX", 600);
    const res = await get(callback, ip);
    expect(res.statusCode, res.body).toBe(400);
    expect(res.body).toContain("could not connect");
    expect(await findAccountByEmail(t.db, DAVE)).toBeUndefined();
  });

  it("the emulator checks the verifier as Google does: wrong or missing → invalid_grant, right → tokens", async () => {
    const client = new OAuth2Client({
      clientId: emu.clientId,
      clientSecret: emu.clientSecret,
      redirectUri: "http://127.0.0.1:9/cb",
      endpoints: { oauth2AuthBaseUrl: emu.authUrl, oauth2TokenUrl: emu.tokenUrl },
    });
    const { codeVerifier, codeChallenge } = await client.generateCodeVerifierAsync();
    const code = async () => {
      const url = client.generateAuthUrl({
        scope: [READONLY],
        login_hint: DAVE,
        code_challenge: codeChallenge as string,
        code_challenge_method: "S256" as never,
      });
      const res = await fetch(url, { redirect: "manual" });
      return new URL(res.headers.get("location") ?? "").searchParams.get("code") ?? "";
    };
    const other = (await client.generateCodeVerifierAsync()).codeVerifier;
    await expect(client.getToken({ code: await code(), codeVerifier: other })).rejects.toThrow(/invalid_grant/);
    await expect(client.getToken({ code: await code() })).rejects.toThrow(/invalid_grant/);
    const { tokens } = await client.getToken({ code: await code(), codeVerifier });
    expect(tokens.access_token).toMatch(/^ya29\./);
    // An unknown method is refused at the consent page, as Google does.
    const bad = new URL(client.generateAuthUrl({ scope: [READONLY], code_challenge: codeChallenge as string }));
    bad.searchParams.set("code_challenge_method", "S512");
    expect((await fetch(bad, { redirect: "manual" })).status).toBe(400);
  });

  it("keeps only gmail.readonly grants: a wider or different grant is refused and nothing is stored", async () => {
    const ip = freshIp();
    for (const scope of [`${READONLY} ${MODIFY}`, MODIFY, "https://mail.google.com/"]) {
      const link = await mint(ERIN);
      const callback = await throughConsent(link.token, ip, (u) => u.searchParams.set("scope", scope));
      const res = await get(callback, ip);
      expect(res.statusCode, `${scope}: ${res.body}`).toBe(400);
      expect(res.body).toContain("gmail.readonly and nothing else");
      expect(await findAccountByEmail(t.db, ERIN)).toBeUndefined();
    }
    const ok = await get(await throughConsent((await mint(ERIN)).token, ip), ip);
    expect(ok.statusCode, ok.body).toBe(200);
    expect((await findAccountByEmail(t.db, ERIN))?.scopes).toEqual([READONLY]);
  });
});

describe("disconnected accounts", () => {
  it("come back only through a new link", async () => {
    const ip = freshIp();
    const link = await mint(FRANK);
    const callback = await throughConsent(link.token, ip);
    expect((await get(callback, ip)).statusCode).toBe(200);
    const pending = await throughConsent((await mint(FRANK)).token, ip); // a round trip left half done
    const off = await runCli(["disconnect", FRANK], env);
    expect(off.code, off.stderr).toBe(0);
    const row = await findAccountByEmail(t.db, FRANK);
    expect(row).toMatchObject({ status: "disabled", refresh_token_encrypted: null });

    // Neither the old link, nor the old callback, nor an anonymous start brings it back …
    expect((await get(startUrl(link.token), ip)).statusCode).toBe(403);
    expect((await get(callback, ip)).statusCode).toBe(400);
    expect((await get(`/oauth2/start?login_hint=${encodeURIComponent(FRANK)}`, ip)).statusCode).toBe(403);
    expect((await findAccountByEmail(t.db, FRANK))?.status).toBe("disabled");
    // … (a round trip started from a link before the disconnect still holds that link, which the
    // operator can let expire; it is the only one, and it connects once) …
    expect((await get(pending, ip)).statusCode).toBe(200);
    await runCli(["disconnect", FRANK], env);
    expect((await get(pending, ip)).statusCode).toBe(400);
    expect((await findAccountByEmail(t.db, FRANK))?.status).toBe("disabled");
    // … a new link does.
    expect((await get(await throughConsent((await mint(FRANK)).token, ip), ip)).statusCode).toBe(200);
    expect((await findAccountByEmail(t.db, FRANK))?.status).toBe("active");
  });
});

describe("gmail-sync auth --link", () => {
  it("prints a one-use link to /oauth2/start next to the callback, for the hinted address only", async () => {
    const printed = await runCli(
      ["auth", "--link", "--login-hint", "Alice@Example.com", "--expires", "2h", "--json"],
      env,
    );
    expect(printed.code, printed.stderr).toBe(0);
    const out = JSON.parse(printed.stdout) as { url: string; expiresAt: string; loginHint: string };
    const url = new URL(out.url);
    expect(url.origin + url.pathname).toBe("http://127.0.0.1:9/oauth2/start");
    expect(out.loginHint).toBe(ALICE);
    expect(Math.abs(Date.parse(out.expiresAt) - Date.now() - 2 * 3600_000)).toBeLessThan(60_000);
    const claims = verifyConnectLink(connectLinkKeys(keyRing), url.searchParams.get("link") ?? "");
    expect(claims?.hint).toBe(ALICE);
    const ttl = await r.redis.ttl(`${r.prefix}:connect-link:${claims?.id}`);
    expect(ttl).toBeGreaterThan(2 * 3600 - 60);
    expect(ttl).toBeLessThanOrEqual(2 * 3600);
    const ip = freshIp();
    expect((await get(await throughConsent(url.searchParams.get("link") ?? "", ip), ip)).statusCode).toBe(200);
    expect((await get(url.pathname + url.search, ip)).statusCode).toBe(403);

    const tooLong = await runCli(["auth", "--link", "--expires", "30d"], env);
    expect(tooLong.code).toBe(1);
    expect(tooLong.stderr).toContain("--expires");
  });
});

describe("unauthenticated routes under load or outage", () => {
  it("500 anonymous /oauth2/start requests add no Redis key and are rate-limited (429) per client", async () => {
    const before = await prefixKeys();
    redisCalls.length = 0;
    const ip = freshIp();
    const statuses = new Map<number, number>();
    for (let i = 0; i < 500; i++) {
      const res = await get(`/oauth2/start?login_hint=user${i}@example.com`, ip);
      statuses.set(res.statusCode, (statuses.get(res.statusCode) ?? 0) + 1);
    }
    expect(statuses.get(403)).toBe(config.OAUTH_RATE_LIMIT_PER_MINUTE);
    expect(statuses.get(429)).toBe(500 - config.OAUTH_RATE_LIMIT_PER_MINUTE);
    // The callback shares the budget; another client is not affected.
    expect((await get("/oauth2/callback?state=x&code=y", ip)).statusCode).toBe(429);
    expect((await get("/oauth2/start", freshIp())).statusCode).toBe(403);
    expect(redisCalls).toEqual([]);
    expect(await prefixKeys()).toEqual(before);
  });

  it("/pubsub/push is rate-limited per client too", async () => {
    const push = Fastify();
    registerPushRoute(push, {
      db: t.db,
      redis: r.redis,
      log: createLogger("silent"),
      keyPrefix: r.prefix,
      authenticate: async () => ({ ok: false, why: "test: no token" }),
      enqueueIncremental: async () => ({ coalesced: false }),
      rateLimitPerMinute: 20,
    });
    const statuses: number[] = [];
    for (let i = 0; i < 30; i++)
      statuses.push(
        (await push.inject({ method: "POST", url: "/pubsub/push", payload: {}, remoteAddress: "10.1.1.1" })).statusCode,
      );
    await push.close();
    expect(statuses.filter((s) => s === 401)).toHaveLength(20);
    expect(statuses.filter((s) => s === 429)).toHaveLength(10);
  });

  it("with Redis down, /oauth2/start and /oauth2/callback answer 503 within seconds", async () => {
    // Nothing listens on this port; the client retries forever, as the app's does (BullMQ needs that).
    const down = new Redis(`redis://127.0.0.1:${await freePort()}`, { maxRetriesPerRequest: null, lazyConnect: false });
    down.on("error", () => {});
    const offline = Fastify();
    registerOAuthRoutes(offline, {
      db: t.db,
      redis: down,
      config,
      keyRing,
      log: createLogger("silent"),
      onConnected: async () => {},
    });
    try {
      const token = signConnectLink(connectLinkKeys(keyRing)[0] as Buffer, {
        id: "some-id",
        exp: Math.floor(Date.now() / 1000) + 600,
      });
      for (const url of [startUrl(token), "/oauth2/callback?state=abc&code=def"]) {
        const began = Date.now();
        const res = await offline.inject({ method: "GET", url });
        expect(res.statusCode, url).toBe(503);
        expect(Date.now() - began).toBeLessThan(4_000);
      }
      // A request without a link is still refused at once: it never waits for Redis.
      const began = Date.now();
      expect((await offline.inject({ method: "GET", url: "/oauth2/start" })).statusCode).toBe(403);
      expect(Date.now() - began).toBeLessThan(500);
    } finally {
      await offline.close();
      down.disconnect();
    }
  });
});
