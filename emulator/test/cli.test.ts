// `gmail-emulator`: one JSON line when ready, a working server behind it, clean exit on SIGTERM.
import { execFile, spawn } from "node:child_process";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";
import { createControlClient } from "../src/control.ts";

const cliPath = fileURLToPath(new URL("../bin/gmail-emulator.js", import.meta.url));

function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    execFile(
      process.execPath,
      [cliPath, ...args],
      { env: { PATH: process.env.PATH }, timeout: 30_000 },
      (err, stdout, stderr) => {
        resolve({ code: err ? (typeof err.code === "number" ? err.code : 1) : 0, stdout, stderr });
      },
    );
  });
}

describe("gmail-emulator", () => {
  it("prints its URLs as one JSON line, serves, and exits 0 on SIGTERM", async () => {
    const child = spawn(
      process.execPath,
      [cliPath, "--port", "0", "--messages", "5", "--accounts", "a@example.com,b@example.com", "--seed", "9"],
      { stdio: ["ignore", "pipe", "pipe"] },
    );
    let out = "";
    const line = await new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`no ready line; stdout so far: ${out}`)), 30_000);
      child.stdout.on("data", (c: Buffer) => {
        out += c.toString();
        if (out.includes("\n")) {
          clearTimeout(timer);
          resolve(out.slice(0, out.indexOf("\n")));
        }
      });
      child.on("exit", (code) => reject(new Error(`exited early with ${code}`)));
    });
    const info = JSON.parse(line) as Record<string, unknown>;
    for (const key of [
      "gmailRootUrl",
      "authUrl",
      "tokenUrl",
      "jwksUrl",
      "controlUrl",
      "clientId",
      "clientSecret",
      "pushServiceAccount",
      "accounts",
    ])
      expect(info).toHaveProperty(key);
    expect(info.accounts).toEqual(["a@example.com", "b@example.com"]);
    expect(info.gmailRootUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/$/);
    const control = createControlClient(info.controlUrl as string);
    expect((await control.mailbox("b@example.com")).messages).toHaveLength(5);
    const jwks = (await (await fetch(info.jwksUrl as string)).json()) as { keys: unknown[] };
    expect(jwks.keys).toHaveLength(1);
    const exited = new Promise<number | null>((r) => child.once("exit", (code) => r(code)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it("refuses a bad option value with exit code 1", async () => {
    const res = await runCli(["--fault-rate", "2"]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("--fault-rate");
  });
});
