// Single calls and batches share one refresh-on-401 path (src/gmail/refresh-on-401.ts): an access
// token Gmail rejects before its expiry is refreshed once and what got the 401 is sent again, and a
// 401 right after that refresh is transient, not a revoked grant. The emulator expires its access
// tokens after a second while our client still believes in them; the always-401 "Gmail" is a tiny
// server answering every request with Google's 401 envelope (the POST of a batch included).
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { OAuth2Client } from "google-auth-library";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator, type EmulatorStats } from "@gmail-sync/emulator";
import { createGmailPort, type GmailPortDeps } from "../../src/gmail/client.ts";
import { createQuotaGovernor, type QuotaGovernor } from "../../src/gmail/quota.ts";
import { createLogger } from "../../src/log.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";

const ALICE = "alice@example.com";
let emu: Emulator;
let r: TestRedis;
let quota: QuotaGovernor;
let gmail401: Server;
let seen401: string[] = [];

beforeAll(async () => {
  [emu, r] = await Promise.all([
    startEmulator({ accounts: [ALICE], messages: 8, seed: 7, accessTokenTtlSeconds: 1 }),
    createTestRedis(),
  ]);
  quota = createQuotaGovernor(r.redis, { prefix: r.prefix, unitsPerSecond: 2000, projectUnitsPerMinute: 10_000_000 });
  gmail401 = createServer((req, res) => {
    seen401.push(`${req.method} ${req.url}`);
    res.writeHead(401, {
      "content-type": "application/json; charset=UTF-8",
      "www-authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"',
    });
    const errors = [{ message: "Invalid Credentials", domain: "global", reason: "authError" }];
    const message = "Request had invalid authentication credentials.";
    res.end(JSON.stringify({ error: { code: 401, message, errors, status: "UNAUTHENTICATED" } }));
  });
  await new Promise<void>((ok) => gmail401.listen(0, "127.0.0.1", ok));
});

afterAll(async () => {
  await new Promise((ok) => gmail401.close(ok));
  await Promise.all([emu?.close(), r?.cleanup()]);
});

/** An OAuth client holding an access token the emulator has already expired, with a far expiry of its own. */
async function staleClient(): Promise<{ auth: OAuth2Client; refreshes: () => number }> {
  const { clientId, clientSecret, tokenUrl } = emu;
  const auth = new OAuth2Client({ clientId, clientSecret, endpoints: { oauth2TokenUrl: tokenUrl } });
  auth.setCredentials({ refresh_token: await emu.control.issueRefreshToken(ALICE) });
  await auth.getAccessToken(); // minted with a 1 s lifetime at the emulator
  auth.setCredentials({ ...auth.credentials, expiry_date: Date.now() + 3_600_000 });
  await new Promise((ok) => setTimeout(ok, 1100));
  let n = 0;
  auth.on("tokens", () => void n++);
  return { auth, refreshes: () => n };
}

function port(auth: OAuth2Client, rootUrl: string, extra: Partial<GmailPortDeps> = {}) {
  return createGmailPort({ auth, accountId: 1, quota, rootUrl, log: createLogger("silent"), ...extra });
}

const sumStatus = (s: EmulatorStats, status: string) =>
  Object.values(s.requests).reduce((n, byStatus) => n + (byStatus[status] ?? 0), 0);

describe("one refresh on a 401, for single calls and batches alike", () => {
  it("a single get and a batch get, each with a token the emulator expired, refresh once and succeed", async () => {
    const ids = (await emu.control.mailbox(ALICE)).messages.slice(0, 5).map((m) => m.id);
    const cases = [
      { name: "single get", strategy: "parallel" as const, ids: ids.slice(0, 1), rejected: 1, batchPosts: 0 },
      // The POST is answered 200; each of its parts 401: the chunk refreshes once and resends them.
      { name: "batch get", strategy: "batch" as const, ids, rejected: ids.length, batchPosts: 2 },
    ];
    for (const c of cases) {
      const { auth, refreshes } = await staleClient();
      const before = await emu.control.stats();
      const res = await port(auth, emu.gmailRootUrl, { fetchStrategy: c.strategy }).getMessages(c.ids);
      const after = await emu.control.stats();
      expect(
        res.map((f) => f.message?.id),
        c.name,
      ).toEqual(c.ids);
      expect(refreshes(), c.name).toBe(1);
      expect(sumStatus(after, "401") - sumStatus(before, "401"), c.name).toBe(c.rejected);
      const batchPosts = (s: EmulatorStats) => s.requests.batch?.["200"] ?? 0;
      expect(batchPosts(after) - batchPosts(before), c.name).toBe(c.batchPosts);
    }
  });

  it("a 401 right after the refresh is transient for a single get and a batch get, and revokes nothing", async () => {
    const id = "0000000000000001";
    const rootUrl = `http://127.0.0.1:${(gmail401.address() as AddressInfo).port}/`;
    for (const strategy of ["parallel", "batch"] as const) {
      const { auth, refreshes } = await staleClient();
      let revoked = 0;
      seen401 = [];
      const onAuthRevoked = async () => void revoked++;
      const gmail = port(auth, rootUrl, { fetchStrategy: strategy, retry: { maxAttempts: 1 }, onAuthRevoked });
      const [res] = await gmail.getMessages([id]);
      const transient = { kind: "transient", status: 401, reason: "unauthorizedAfterRefresh" };
      expect(res?.error, strategy).toMatchObject(transient);
      expect(refreshes(), strategy).toBe(1);
      // The first 401, the refresh at the emulator, the second 401.
      const want = strategy === "batch" ? "POST /batch" : `GET /gmail/v1/users/me/messages/${id}?format=full`;
      expect(seen401, strategy).toEqual([want, want]);
      expect(revoked, strategy).toBe(0);
    }
  });
});
