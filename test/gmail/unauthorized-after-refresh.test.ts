// A 401 from Gmail right after the token was refreshed successfully is not a revoked grant (a
// revoked one fails at the token endpoint with invalid_grant): the call fails transiently and
// the account is left active. The token endpoint is the emulator's; the "Gmail" here is a tiny
// server that answers every request 401 with Google's envelope.
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { OAuth2Client } from "google-auth-library";
import { afterAll, beforeAll, expect, it } from "vitest";
import { startEmulator, type Emulator } from "@gmail-sync/emulator";
import { isGmailError } from "../../src/errors.ts";
import { createGmailPort } from "../../src/gmail/client.ts";
import { createQuotaGovernor } from "../../src/gmail/quota.ts";
import { createLogger } from "../../src/log.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";

let emu: Emulator;
let r: TestRedis;
let gmail401: Server;
let seen = 0;

beforeAll(async () => {
  emu = await startEmulator({ seed: 31 });
  r = await createTestRedis();
  gmail401 = createServer((_req, res) => {
    seen++;
    res.writeHead(401, {
      "content-type": "application/json; charset=UTF-8",
      "www-authenticate": 'Bearer realm="https://accounts.google.com/", error="invalid_token"',
    });
    res.end(
      JSON.stringify({
        error: {
          code: 401,
          message: "Request had invalid authentication credentials.",
          errors: [{ message: "Invalid Credentials", domain: "global", reason: "authError" }],
          status: "UNAUTHENTICATED",
        },
      }),
    );
  });
  await new Promise<void>((ok) => gmail401.listen(0, "127.0.0.1", ok));
});
afterAll(async () => {
  await new Promise((ok) => gmail401.close(ok));
  await r.cleanup();
  await emu.close();
});

it("a 401 after a successful refresh is transient and does not revoke the account", async () => {
  const auth = new OAuth2Client({
    clientId: emu.clientId,
    clientSecret: emu.clientSecret,
    endpoints: { oauth2TokenUrl: emu.tokenUrl },
  });
  auth.setCredentials({ refresh_token: await emu.control.issueRefreshToken(emu.accounts[0] as string) });
  let revoked = 0;
  const port = createGmailPort({
    auth,
    accountId: 1,
    quota: createQuotaGovernor(r.redis, { prefix: r.prefix, unitsPerSecond: 1000, projectUnitsPerMinute: 1_000_000 }),
    rootUrl: `http://127.0.0.1:${(gmail401.address() as AddressInfo).port}/`,
    log: createLogger("silent"),
    retry: { maxAttempts: 1 },
    onAuthRevoked: async () => void revoked++,
  });
  const err = await port.getProfile().then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(isGmailError(err, "transient")).toBe(true);
  expect((err as { reason?: string }).reason).toBe("unauthorizedAfterRefresh");
  expect(seen).toBe(2); // the first 401, a refresh at the emulator, the second 401
  expect(revoked).toBe(0);
  // The port still works for later calls (it did not latch a revocation).
  await expect(port.getProfile()).rejects.toMatchObject({ kind: "transient" });
});
