// A Redis server of the test's own (own port, own data directory), so a test can shut it down and
// start it again without touching the shared Redis other test files use. With appendonly the data
// survives a restart, as in a real deployment.
import { type ChildProcess, execFile, spawn } from "node:child_process";
import { mkdtemp, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { promisify } from "node:util";
import { freePort } from "../../../src/http.ts";

const run = promisify(execFile);

export interface OwnRedis {
  port: number;
  url: string;
  dir: string;
  /** SHUTDOWN (AOF flushed), then waits for the process to exit. */
  shutdown(): Promise<void>;
  /** SIGKILL: what survives is what the AOF had fsynced. */
  kill(): Promise<void>;
  /** Starts the server again on the same port and directory. */
  start(): Promise<void>;
  /** Stops it for good and removes its directory. */
  destroy(): Promise<void>;
}

async function ping(port: number): Promise<boolean> {
  try {
    const { stdout } = await run("redis-cli", ["-p", String(port), "ping"], { timeout: 2000 });
    return stdout.trim() === "PONG";
  } catch {
    return false;
  }
}

/** `appendfsync: "always"` makes a SIGKILL lose nothing acknowledged (the default everysec may lose ~1 s). */
export async function startOwnRedis(opts: {
  appendonly: boolean;
  appendfsync?: "always" | "everysec";
}): Promise<OwnRedis> {
  const port = await freePort();
  const dir = await mkdtemp(path.join(os.tmpdir(), "gmail-sync-redis-"));
  let proc: ChildProcess | undefined;
  let exited: Promise<void> = Promise.resolve();

  async function start(): Promise<void> {
    const args = [
      "--port",
      String(port),
      "--bind",
      "127.0.0.1",
      "--save",
      "",
      "--dir",
      dir,
      "--appendonly",
      opts.appendonly ? "yes" : "no",
      "--appendfsync",
      opts.appendfsync ?? "everysec",
      "--daemonize",
      "no",
    ];
    const child = spawn("redis-server", args, { stdio: "ignore" });
    proc = child;
    exited = new Promise((r) => child.once("exit", () => r()));
    const until = Date.now() + 10_000;
    while (!(await ping(port))) {
      if (child.exitCode !== null) throw new Error(`redis-server exited with ${child.exitCode}`);
      if (Date.now() > until) throw new Error(`redis-server on port ${port} did not answer`);
      await new Promise((r) => setTimeout(r, 20));
    }
  }

  await start();
  return {
    port,
    url: `redis://127.0.0.1:${port}`,
    dir,
    async shutdown() {
      await run("redis-cli", ["-p", String(port), "shutdown"], { timeout: 5000 }).catch(() => {}); // the connection drops as it exits
      await exited;
    },
    async kill() {
      proc?.kill("SIGKILL");
      await exited;
    },
    start,
    async destroy() {
      if (proc !== undefined && proc.exitCode === null && proc.signalCode === null) {
        proc.kill("SIGKILL");
        await exited;
      }
      await rm(dir, { recursive: true, force: true });
    },
  };
}
