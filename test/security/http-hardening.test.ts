// The two listeners: the operator's endpoints (/metrics, /readyz) exist only on the internal one,
// which binds loopback by default; both answer with security headers, a 5xx says nothing about the
// inside (the detail goes to the log), and a client that sends nothing is cut off.
import net from "node:net";
import { Writable } from "node:stream";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { buildHttpServer, buildPublicServer, listen } from "../../src/http.ts";
import type { Logger } from "../../src/log.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";

let tdb: TestDatabase;
let tredis: TestRedis;
const logged: string[] = [];
const log = pino(
  { level: "info" },
  new Writable({
    write(chunk, _enc, cb) {
      logged.push(String(chunk));
      cb();
    },
  }),
) as unknown as Logger;
const config = loadConfig({
  HTTP_HOST: "127.0.0.1",
  HTTP_PORT: "0",
  INTERNAL_HTTP_PORT: "0",
  HTTP_REQUEST_TIMEOUT_MS: "1000",
});
let publicUrl: string;
let internalUrl: string;
const servers: Array<{ close(): Promise<unknown> }> = [];

beforeAll(async () => {
  tdb = await createTestDatabase();
  tredis = await createTestRedis();
  const pub = buildPublicServer({ config, log });
  pub.get("/boom", async () => {
    throw new Error("connection to postgres://app:hunter2@db.internal failed");
  });
  pub.post("/echo", async (req) => req.body);
  const internal = buildHttpServer({ config, log, db: tdb.db, redis: tredis.redis });
  servers.push(pub, internal);
  publicUrl = await listen(pub, config, "public");
  internalUrl = await listen(internal, config, "internal");
});
afterAll(async () => {
  for (const s of servers) await s.close();
  await tdb?.drop();
  await tredis?.cleanup();
});

describe("two listeners", () => {
  it("the internal listener binds loopback unless told otherwise; the public one is separate", () => {
    const defaults = loadConfig({});
    expect(defaults.INTERNAL_HTTP_HOST).toBe("127.0.0.1");
    expect(defaults.INTERNAL_HTTP_PORT).not.toBe(defaults.HTTP_PORT);
  });

  it("serves /metrics and /readyz only on the internal listener", async () => {
    expect((await fetch(`${internalUrl}/metrics`)).status).toBe(200);
    expect((await fetch(`${internalUrl}/readyz`)).status).toBe(200);
    expect((await fetch(`${publicUrl}/metrics`)).status).toBe(404);
    expect((await fetch(`${publicUrl}/readyz`)).status).toBe(404);
    expect((await fetch(`${publicUrl}/healthz`)).status).toBe(200);
  });

  it("answers with security headers on both listeners, errors included", async () => {
    for (const url of [`${publicUrl}/healthz`, `${publicUrl}/nowhere`, `${internalUrl}/metrics`]) {
      const r = await fetch(url);
      expect(r.headers.get("x-content-type-options"), url).toBe("nosniff");
      expect(r.headers.get("x-frame-options"), url).toBe("DENY");
      expect(r.headers.get("content-security-policy"), url).toContain("default-src 'none'");
      expect(r.headers.get("referrer-policy"), url).toBe("no-referrer");
    }
  });

  it("a 500 says nothing about the inside; the detail is in the log", async () => {
    const r = await fetch(`${publicUrl}/boom`);
    expect(r.status).toBe(500);
    const body = await r.text();
    expect(body).toBe(JSON.stringify({ error: "internal error" }));
    expect(logged.join("")).toContain("hunter2"); // the operator still learns what failed
  });

  it("a client error still says what was wrong with the request", async () => {
    const r = await fetch(`${publicUrl}/echo`, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: "{not json",
    });
    expect(r.status).toBe(400);
    expect((await r.json()) as { error: string }).toMatchObject({ error: expect.stringMatching(/JSON/i) });
  });

  it("cuts off a client that opens a request and never finishes it (request timeout)", async () => {
    const { port } = new URL(publicUrl);
    const started = Date.now();
    let answer = "";
    const closedAfter = await new Promise<number>((resolve, reject) => {
      const socket = net.connect(Number(port), "127.0.0.1", () =>
        socket.write(
          "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{",
        ),
      );
      socket.on("data", (d) => (answer += String(d)));
      socket.on("close", () => resolve(Date.now() - started));
      socket.on("error", reject);
      setTimeout(() => reject(new Error("the server kept the slow request open for 10 s")), 10_000).unref();
    });
    // Whichever fires first closes it: the request timeout (with a 408) or the idle-socket timeout
    // (silently); both are set to HTTP_REQUEST_TIMEOUT_MS. Node's default would keep it 300 s.
    if (answer !== "") expect(answer).toMatch(/^HTTP\/1\.1 408/);
    expect(closedAfter).toBeLessThan(5_000);
  });
});
