// The emulator as its own process (its CLI), for benchmarks whose load would otherwise share the
// emulator's event loop and heap: a 2,000-mailbox emulator holds ~4 GB, and its garbage collection
// would stall whatever else ran in that process (the push endpoint, the latency probes).
import { type ChildProcess, spawn } from "node:child_process";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { createControlClient, type Emulator } from "@gmail-sync/emulator";

const cli = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../../bin/gmail-sync.js");

export interface EmulatorProcess {
  /** The emulator's URLs and settings, with a control client over HTTP; close() stops the process. */
  emulator: Emulator;
  child: ChildProcess;
  /** From spawn to the ready line. */
  wallMs: number;
  readyMs: number;
}

/** Starts `gmail-sync emulator --port 0 …args` and resolves once it prints its ready line. */
export async function startEmulatorProcess(args: string[]): Promise<EmulatorProcess> {
  const started = performance.now();
  const child = spawn(process.execPath, [cli, "emulator", "--port", "0", ...args], {
    stdio: ["ignore", "pipe", "inherit"],
  });
  const info = await new Promise<Omit<Emulator, "control" | "close"> & { readyMs: number }>((resolve, reject) => {
    let out = "";
    child.stdout?.on("data", (c: Buffer) => {
      out += c.toString();
      const line = out.split("\n").find((l) => l.startsWith("{"));
      if (line && out.includes("\n")) resolve(JSON.parse(line));
    });
    child.on("exit", (code) => reject(new Error(`emulator exited with ${code}`)));
  });
  const close = async () => {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise((r) => child.once("exit", r));
    child.kill("SIGTERM");
    await exited;
  };
  return {
    emulator: { ...info, control: createControlClient(info.controlUrl), close },
    child,
    wallMs: performance.now() - started,
    readyMs: info.readyMs,
  };
}
