// Issue 17, "Parsers cannot reach secrets": an extraction child, started exactly as the pool starts
// them (childSpawnSpec + forkExtractChild), runs a probe in place of child.ts that tries what a
// parser exploit would: read the secrets from its environment, the parent's /proc environ and a key
// file, spawn a process, start a worker, load a native addon, and open a TCP connection.
import { mkdtempSync, mkdirSync, readdirSync, realpathSync, rmSync, writeFileSync } from "node:fs";
import net from "node:net";
import os from "node:os";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { childSpawnSpec, forkExtractChild } from "../../src/extract/child-spawn.ts";
import type { Attempt, ProbeReport, ProbeRequest } from "./fixtures/sandbox-probe.ts";

const probe = fileURLToPath(new URL("./fixtures/sandbox-probe.ts", import.meta.url));
const projectFile = fileURLToPath(new URL("../../package.json", import.meta.url));

/** The prebuilt binary of @napi-rs/canvas (pdf.js loads it when allowed): a readable native addon. */
function canvasAddon(): string {
  const scope = fileURLToPath(new URL("../../node_modules/@napi-rs/", import.meta.url));
  for (const dir of readdirSync(scope)) {
    const file = readdirSync(path.join(scope, dir)).find((f) => f.endsWith(".node"));
    if (file) return realpathSync(path.join(scope, dir, file));
  }
  throw new Error("no @napi-rs/canvas binary installed");
}

// Fake secrets in the parent's environment, as a worker configured through variables would have.
const SECRETS: Record<string, string> = {
  TOKEN_ENCRYPTION_KEY: "sandbox-test-token-key-0123456789abcdef",
  DATABASE_URL: "postgres://app:sandbox-test-db-password@127.0.0.1:5432/gmail",
  GOOGLE_CLIENT_SECRET: "sandbox-test-google-client-secret",
  REDIS_URL: "redis://:sandbox-test-redis-password@127.0.0.1:6379",
};
const KEY_CONTENT = "sandbox-test-key-file-contents";

let root: string;
let report: ProbeReport;
let server: net.Server;
const saved: Record<string, string | undefined> = {};

// The message names the outcome only: a broken sandbox must not print a real environ into CI logs.
function denied(a: Attempt): void {
  expect(a.ok ? "allowed" : a.code, a.ok ? "the attempt succeeded" : a.message).toBe("ERR_ACCESS_DENIED");
}

beforeAll(async () => {
  root = mkdtempSync(path.join(os.tmpdir(), "gmail-sync-sandbox-"));
  const tempDir = path.join(root, "attachments");
  mkdirSync(tempDir, { mode: 0o700 });
  const tempFile = path.join(tempDir, "att-probe.bin");
  writeFileSync(tempFile, "attachment bytes", { mode: 0o600 });
  // Outside the temp dir, as TOKEN_ENCRYPTION_KEY_FILE would be (a /run/secrets file).
  const keyFile = path.join(root, "token-encryption-key");
  writeFileSync(keyFile, KEY_CONTENT, { mode: 0o600 });
  for (const [k, v] of Object.entries({ ...SECRETS, TOKEN_ENCRYPTION_KEY_FILE: keyFile })) {
    saved[k] = process.env[k];
    process.env[k] = v;
  }
  // Stands in for Postgres/Redis on loopback: a listener this test owns, so the result does not
  // depend on which services happen to run.
  server = net.createServer((s) => s.end());
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  const tcpPort = (server.address() as net.AddressInfo).port;

  const child = forkExtractChild(childSpawnSpec({ rssLimitMb: 256, tempDir, entry: probe }));
  const request: ProbeRequest = {
    parentPid: process.pid,
    keyFile,
    projectFile,
    tempFile,
    tcpPort,
    addonFile: canvasAddon(),
  };
  report = await new Promise<ProbeReport>((resolve, reject) => {
    child.once("message", (m) => resolve(m as ProbeReport));
    child.once("exit", (code, signal) => reject(new Error(`probe exited (${signal ?? code}) without a report`)));
    child.send(request);
  });
}, 30_000);

afterAll(async () => {
  for (const [k, v] of Object.entries(saved)) {
    if (v === undefined) delete process.env[k];
    else process.env[k] = v;
  }
  await new Promise((r) => server?.close(r));
  if (root) rmSync(root, { recursive: true, force: true });
});

describe("extraction child sandbox", () => {
  it("(a) starts with a scrubbed environment: no secret, no secret file path, no NODE_OPTIONS", () => {
    const names = Object.keys(report.env);
    const values = Object.values(report.env);
    for (const [name, value] of Object.entries(SECRETS)) {
      expect(names).not.toContain(name);
      expect(
        values.some((v) => v?.includes(value)),
        `a value carries ${name}`,
      ).toBe(false);
    }
    expect(names).not.toContain("TOKEN_ENCRYPTION_KEY_FILE");
    // Only the allow-listed names plus what fork adds for the IPC channel.
    const allowed = new Set([
      "PATH",
      "TMPDIR",
      "NODE_ENV",
      "TZ",
      "LANG",
      "NODE_CHANNEL_FD",
      "NODE_CHANNEL_SERIALIZATION_MODE",
    ]);
    expect(names.filter((k) => !allowed.has(k))).toEqual([]);
  });

  it("(b) cannot read the parent's /proc/<pid>/environ", () => {
    denied(report.parentEnviron);
  });

  it("(c) cannot read a key file or the project outside its allowed directories, but reads its temp file", () => {
    denied(report.keyFile);
    denied(report.projectFile);
    // The control: the temp-file route still works, so the denials above are the allow-list at work.
    expect(report.tempFile).toEqual({ ok: true, value: "attachment bytes" });
  });

  it("(d) cannot spawn a process", () => {
    denied(report.spawn);
  });

  it("(d) cannot start a worker thread", () => {
    denied(report.worker);
  });

  it("(d) cannot load a native addon (the @napi-rs/canvas pdf.js would use)", () => {
    // Without --allow-addons, --permission turns addon loading off altogether.
    expect(report.addon.ok ? "loaded" : report.addon.code).toBe("ERR_DLOPEN_DISABLED");
  });

  it("cannot generate code from strings (eval, new Function)", () => {
    expect(report.evalCode.ok ? "evaluated" : report.evalCode.code).toBe("EvalError");
  });

  it("(e) cannot open a socket (to Postgres or Redis on loopback): no-network.ts, preloaded", () => {
    // Node 24's permission model has no network rule; the preloaded no-network.ts refuses sockets.
    denied(report.tcp);
  });
});
