// Push authentication under junk: Google's certificates are fetched once at a time and not asked
// for again for a few seconds after a failure (20 junk pushes with the certificate URL down made
// 80 outbound fetches before), and a rejected token never reaches the log whole.
import http from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { boundedReason, createPushAuthenticator, googleCerts } from "../../src/pubsub.ts";

let hits = 0;
let up = false;
let server: http.Server;
let url: string;

beforeAll(async () => {
  server = http.createServer((_req, res) => {
    hits++;
    // Slow enough that concurrent verifications overlap with the fetch in flight.
    setTimeout(() => {
      if (!up) return void res.writeHead(503).end("down");
      res
        .writeHead(200, { "content-type": "application/json", "cache-control": "public, max-age=600" })
        .end(JSON.stringify({ k1: "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n" }));
    }, 50);
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  url = `http://127.0.0.1:${(server.address() as AddressInfo).port}/certs`;
});
afterAll(() => new Promise<void>((r) => server.close(() => r())));

describe("Google's certificates", () => {
  it("with the certificate URL down, 20 concurrent junk pushes make one fetch, and a burst right after makes none", async () => {
    up = false;
    hits = 0;
    const auth = createPushAuthenticator({
      certsUrl: url,
      audience: "https://example.test/push",
      serviceAccount: "push@example.iam.gserviceaccount.com",
      verificationToken: undefined,
    });
    const junk = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJ4In0.c2lnbmF0dXJl";
    const results = await Promise.all(Array.from({ length: 20 }, () => auth(`Bearer ${junk}`, undefined)));
    expect(results.every((r) => !r.ok)).toBe(true);
    expect(hits).toBe(1);
    await Promise.all(Array.from({ length: 20 }, () => auth(`Bearer ${junk}`, undefined)));
    expect(hits).toBe(1);
  });

  it("once up, concurrent callers share one fetch and the max-age cache", async () => {
    up = true;
    hits = 0;
    const certs = googleCerts(url);
    const got = await Promise.all(Array.from({ length: 10 }, () => certs()));
    expect(got.every((c) => Object.keys(c).join() === "k1")).toBe(true);
    await certs();
    expect(hits).toBe(1);
  });
});

describe("rejection reasons", () => {
  it("never carry the token", () => {
    const jwt = `eyJhbGciOiJSUzI1NiJ9.${"eyJzdWIiOiIxMjM0NTY3ODkwIn0".repeat(5)}.${"s".repeat(300)}`;
    const reason = boundedReason(`Wrong number of segments in token: ${jwt}\nat verify`);
    expect(reason).not.toContain("eyJzdWIi");
    expect(reason).toContain("Wrong number of segments in token");
    expect(reason.length).toBeLessThanOrEqual(160);
  });
});
