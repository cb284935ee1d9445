// `gmail-sync serve` as a real child process: it comes up, answers /healthz and /readyz, accepts
// nothing unauthenticated on /pubsub/push, and exits 0 promptly on SIGTERM; bad flags fail in one line.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { cliPath, repoRoot, runCli } from "../helpers/cli.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";

let t: TestDatabase;
let r: TestRedis;
beforeAll(async () => {
  [t, r] = await Promise.all([createTestDatabase(), createTestRedis()]);
});
afterAll(async () => {
  await Promise.all([t?.drop(), r?.cleanup()]);
});

describe("gmail-sync serve", () => {
  it("serves health, readiness and metrics, rejects unauthenticated pushes, and stops cleanly on SIGTERM", async () => {
    const child = spawn(path.join(repoRoot, "node_modules/.bin/node"), [cliPath, "serve", "--port", "0"], {
      env: {
        PATH: process.env.PATH,
        DATABASE_URL: t.url,
        REDIS_URL: r.url,
        QUEUE_PREFIX: `{${r.prefix}}`,
        TOKEN_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
        HTTP_HOST: "127.0.0.1",
        INTERNAL_HTTP_PORT: "0",
        LOG_LEVEL: "info",
        PUBSUB_AUDIENCE: "https://example.test/pubsub/push",
        PUBSUB_SERVICE_ACCOUNT: "push@example.iam.gserviceaccount.com",
      },
      stdio: ["ignore", "pipe", "pipe"],
    });
    let out = "";
    child.stdout.on("data", (d: Buffer) => (out += d.toString()));
    child.stderr.on("data", (d: Buffer) => (out += d.toString()));
    const exited = new Promise<number | null>((res) => child.on("exit", (code) => res(code)));
    try {
      const [url, internalUrl] = await new Promise<[string, string]>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`serve did not start: ${out}`)), 30_000);
        const check = () => {
          const m = out.match(
            /"url":"(http:\/\/127\.0\.0\.1:\d+)","internalUrl":"(http:\/\/127\.0\.0\.1:\d+)"[^\n]*"msg":"serving"/,
          );
          if (m?.[1] && m[2]) {
            clearTimeout(timer);
            resolve([m[1], m[2]]);
          } else setTimeout(check, 50);
        };
        check();
      });
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
      const ready = await fetch(`${internalUrl}/readyz`);
      expect(ready.status).toBe(200);
      expect(await ready.json()).toMatchObject({ status: "ready" });
      const metrics = await (await fetch(`${internalUrl}/metrics`)).text();
      expect(metrics).toContain("gmail_sync_messages_total");
      // The operator's endpoints are not on the public listener.
      expect((await fetch(`${url}/metrics`)).status).toBe(404);
      expect((await fetch(`${url}/readyz`)).status).toBe(404);
      const push = await fetch(`${url}/pubsub/push`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: "{}",
      });
      expect(push.status).toBe(401);
      const started = Date.now();
      child.kill("SIGTERM");
      expect(await exited).toBe(0);
      expect(Date.now() - started).toBeLessThan(30_000);
      expect(out).not.toMatch(/"level":(50|60)/); // no error or fatal lines
    } finally {
      child.kill("SIGKILL");
    }
  }, 60_000);

  it.each([
    [["serve", "--port", "http"], /--port.*must be a port number/],
    [["serve", "--bogus"], /unknown option '--bogus'/],
  ])("fails with exit 1 on bad input: %j", async (args, pattern) => {
    const res = await runCli(args, { DATABASE_URL: t.url });
    expect(res.code).toBe(1);
    expect(res.stderr).toMatch(pattern);
  });
});
