// `gmail-sync emulator …` hands its arguments to the emulator package's CLI (emulator/src/cli.ts):
// the same ready line and exit codes as `gmail-emulator`.
import { spawn } from "node:child_process";
import { describe, expect, it } from "vitest";
import { cliPath, runCli } from "../helpers/cli.ts";

describe("gmail-sync emulator", () => {
  it("passes its options through: a ready line with the emulator's URLs, exit 0 on SIGTERM", async () => {
    const child = spawn(
      process.execPath,
      [cliPath, "emulator", "--port", "0", "--messages", "2", "--accounts", "x@example.com"],
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
    const info = JSON.parse(line) as { accounts: string[]; gmailRootUrl: string };
    expect(info.accounts).toEqual(["x@example.com"]);
    const exited = new Promise<number | string | null>((r) => child.once("exit", (code, signal) => r(code ?? signal)));
    child.kill("SIGTERM");
    expect(await exited).toBe(0);
  });

  it("reports a bad emulator option in one line with exit 1", async () => {
    const res = await runCli(["emulator", "--fault-rate", "2"]);
    expect(res.code).toBe(1);
    expect(res.stderr).toContain("--fault-rate");
  });

  it("shows the emulator's own options on --help", async () => {
    const res = await runCli(["emulator", "--help"]);
    expect(res.code).toBe(0);
    expect(res.stdout).toContain("--added-not-found-rate");
  });
});
