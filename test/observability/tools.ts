// The external tools the observability checks shell out to (Debian's prometheus package gives
// promtool; docker-compose 1.29 validates compose files without a Docker engine). .ci/run installs
// both; a developer machine without them skips those checks with a message saying how to get them.
import { execFileSync, spawnSync } from "node:child_process";
import path from "node:path";
import { repoRoot } from "../helpers/cli.ts";

export { repoRoot };

export function hasBinary(name: string): boolean {
  try {
    execFileSync("sh", ["-c", `command -v ${name}`], { stdio: "ignore" });
    return true;
  } catch {
    return false;
  }
}

export function skipNotice(name: string, pkg: string): void {
  if (!hasBinary(name)) {
    console.warn(`SKIPPED: ${name} is not installed (apt-get install ${pkg}, or run .ci/run which installs it)`);
  }
}

export interface Run {
  status: number;
  stdout: string;
  stderr: string;
}

export function run(cmd: string, args: string[], opts: { input?: string; env?: Record<string, string> } = {}): Run {
  const r = spawnSync(cmd, args, {
    cwd: repoRoot,
    input: opts.input,
    encoding: "utf8",
    timeout: 30_000,
    env: { PATH: process.env.PATH ?? "", HOME: process.env.HOME ?? "", ...opts.env },
  });
  return { status: r.status ?? -1, stdout: r.stdout ?? "", stderr: r.stderr ?? "" };
}

export const rel = (...p: string[]) => path.join(repoRoot, ...p);

/**
 * Lint lines promtool may print for our scrape that are accepted: prom-client's three default
 * gauges end in _total, and the seed fixed the name orphaned_temp_files_gauge.
 */
export const PROMTOOL_LINT_ALLOWED = [
  "nodejs_active_handles_total",
  "nodejs_active_requests_total",
  "nodejs_active_resources_total",
  "orphaned_temp_files_gauge",
];

/** Runs `promtool check metrics` on an exposition and returns the lint lines not allow-listed. */
export function promtoolLint(exposition: string): { problems: string[]; status: number; all: string[] } {
  const r = run("promtool", ["check", "metrics"], { input: exposition });
  const all = `${r.stdout}\n${r.stderr}`
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l.length > 0);
  const problems = all.filter((l) => !PROMTOOL_LINT_ALLOWED.some((name) => l.startsWith(`${name} `)));
  return { problems, status: r.status, all };
}

export { freePort } from "../../src/http.ts";
