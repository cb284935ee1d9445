// docker-compose.yml and the Dockerfile, checked without a Docker engine: Debian's docker-compose
// 1.29 validates the file (`config -q`), and structural assertions pin what the stack relies on.
import { spawn } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { loadConfig } from "../../src/config.ts";
import { parseKeyRing } from "../../src/token-crypto.ts";
import { cliPath } from "../helpers/cli.ts";
import { freePort, hasBinary, rel, run, skipNotice } from "./tools.ts";

interface Service {
  image?: string;
  build?: unknown;
  command?: string[] | string;
  entrypoint?: string[];
  environment?: Record<string, string>;
  healthcheck?: { test: string[]; start_interval?: string };
  depends_on?: Record<string, { condition: string; restart?: boolean; required?: boolean }>;
  volumes?: string[];
  user?: string;
}
interface Compose {
  name?: string;
  services: Record<string, Service>;
}

const composeText = readFileSync(rel("docker-compose.yml"), "utf8");
const compose = parseYaml(composeText, { merge: true }) as Compose;
const svc = (name: string): Service => {
  const s = compose.services[name];
  if (!s) throw new Error(`no service ${name}`);
  return s;
};
// No engine, no socket: config -q must not need either. Grafana's admin password has no default
// (test/security/deployment.test.ts checks compose refuses to start without it).
const composeEnv = { GRAFANA_ADMIN_PASSWORD: "test-only", DOCKER_HOST: "unix:///nonexistent/docker.sock" };

describe("docker-compose config -q (Debian docker-compose 1.29, no engine)", () => {
  beforeAll(() => skipNotice("docker-compose", "docker-compose"));

  it.skipIf(!hasBinary("docker-compose"))("validates docker-compose.yml", () => {
    const r = run("docker-compose", ["-f", "docker-compose.yml", "config", "-q"], { env: composeEnv });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
  });

  it.skipIf(!hasBinary("docker-compose"))(
    "rejects a misspelled key and a newer-schema key (the validation is real)",
    () => {
      const dir = mkdtempSync(path.join(tmpdir(), "compose-check-"));
      try {
        for (const broken of [
          composeText.replace("retries: 10", "retriez: 10"),
          composeText.replace("      start_period: 10s\n", "      start_period: 10s\n      start_interval: 1s\n"),
        ]) {
          expect(broken).not.toBe(composeText);
          const file = path.join(dir, "docker-compose.yml");
          writeFileSync(file, broken);
          const r = run("docker-compose", ["-f", file, "--project-directory", rel("."), "config", "-q"], {
            env: composeEnv,
          });
          expect(r.status).not.toBe(0);
        }
      } finally {
        rmSync(dir, { recursive: true, force: true });
      }
    },
  );
});

describe("compose structure", () => {
  it("has the whole stack", () => {
    expect(Object.keys(compose.services).sort()).toEqual([
      "emulator",
      "grafana",
      "migrate",
      "postgres",
      "prometheus",
      "redis",
      "traffic",
      "worker",
    ]);
  });

  it("avoids keys the older schema rejects", () => {
    expect(compose.name).toBeUndefined();
    for (const [name, s] of Object.entries(compose.services)) {
      expect(s.healthcheck?.start_interval, name).toBeUndefined();
      for (const dep of Object.values(s.depends_on ?? {})) {
        expect(dep.restart, name).toBeUndefined();
        expect(dep.required, name).toBeUndefined();
      }
    }
  });

  it("gives every long-running service a healthcheck", () => {
    for (const name of ["postgres", "redis", "emulator", "worker", "prometheus", "grafana"]) {
      expect(svc(name).healthcheck?.test.length, name).toBeGreaterThan(0);
    }
    expect(svc("worker").healthcheck?.test.join(" ")).toContain("/readyz");
  });

  it("runs Redis with noeviction and AOF", () => {
    const cmd = svc("redis").command as string[];
    expect(cmd[cmd.indexOf("--maxmemory-policy") + 1]).toBe("noeviction");
    expect(cmd[cmd.indexOf("--appendonly") + 1]).toBe("yes");
  });

  it("orders start-up: migrate after healthy databases, the worker after a successful migrate", () => {
    expect(svc("migrate").command).toEqual(["migrate"]);
    expect(svc("migrate").depends_on).toEqual({
      postgres: { condition: "service_healthy" },
      redis: { condition: "service_healthy" },
    });
    expect(svc("worker").command).toEqual(["serve"]);
    expect(svc("worker").depends_on).toMatchObject({
      migrate: { condition: "service_completed_successfully" },
      postgres: { condition: "service_healthy" },
      redis: { condition: "service_healthy" },
    });
    expect(svc("grafana").depends_on).toMatchObject({ prometheus: { condition: "service_healthy" } });
    expect(svc("traffic").depends_on).toMatchObject({
      emulator: { condition: "service_healthy" },
      worker: { condition: "service_healthy" },
    });
  });

  it("points the worker at the emulator unless Google settings are given", () => {
    const env = svc("worker").environment ?? {};
    // biome-ignore lint/suspicious/noTemplateCurlyInString: compose's own ${VAR:-default} syntax, verbatim.
    expect(env.GMAIL_API_ROOT_URL).toBe("${GMAIL_API_ROOT_URL:-http://emulator:8085/}");
    expect(env.PUBSUB_AUDIENCE).toContain("http://worker:9464/pubsub/push");
    expect((svc("emulator").command as string[]).join(" ")).toContain("--push-endpoint http://worker:9464/pubsub/push");
    // The same app settings everywhere; the worker alone adds the operator's and the feed's tokens.
    const { OPERATOR_TOKEN_FILE, CHANGES_API_TOKEN_FILE, ...shared } = env;
    expect([OPERATOR_TOKEN_FILE, CHANGES_API_TOKEN_FILE]).toEqual([
      "/run/secrets/operator_token",
      "/run/secrets/changes_api_token",
    ]);
    expect(svc("migrate").environment).toEqual(shared);
  });

  it("the app environment is a valid configuration naming only known variables", () => {
    // Compose's interpolation with nothing set: ${X:-default} → default; ${X:?msg} is required.
    const resolved = Object.fromEntries(
      Object.entries(svc("worker").environment ?? {}).map(([k, v]) => [
        k,
        String(v)
          .replace(/\$\{\w+:-([^}]*)\}/g, "$1")
          .replace(/\$\{\w+:\?[^}]*\}/g, randomBytes(32).toString("base64")),
      ]),
    );
    // Secrets are files compose mounts under /run/secrets: the ones deploy/make-secrets.sh makes.
    const dir = mkdtempSync(path.join(tmpdir(), "compose-secrets-"));
    try {
      const made = run("sh", [rel("deploy/make-secrets.sh")], { env: { SECRETS_DIR: dir } });
      expect(made.status, made.stderr).toBe(0);
      const values = Object.fromEntries(
        readdirSync(dir).map((f) => [f, readFileSync(path.join(dir, f), "utf8").replace(/\n$/, "")]),
      );
      for (const [k, v] of Object.entries(resolved)) {
        const secret = /^\/run\/secrets\/(\w+)$/.exec(v)?.[1];
        if (secret === undefined) continue;
        expect(values, `${k}: make-secrets.sh makes ${secret}`).toHaveProperty(secret);
        resolved[k] = path.join(dir, secret);
      }
      const config = loadConfig(resolved) as Record<string, unknown>;
      expect(Object.keys(resolved).filter((k) => !(k.replace(/_FILE$/, "") in config))).toEqual([]);
      expect(config.GMAIL_API_ROOT_URL).toBe("http://emulator:8085/");
      expect(config.DATABASE_URL).toBe(values.database_url);
      expect(() => parseKeyRing(config.TOKEN_ENCRYPTION_KEY as string)).not.toThrow();
      expect(config.OPERATOR_TOKEN).toBe(values.operator_token);
      expect(config.CHANGES_API_TOKEN).toBe(values.changes_api_token);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("the emulator service's command starts the real emulator (every flag exists)", async () => {
    const port = String(await freePort());
    const args = (svc("emulator").command as string[]).map((a, i, all) => (all[i - 1] === "--port" ? port : a));
    const child = spawn(process.execPath, [cliPath, ...args], { stdio: ["ignore", "pipe", "pipe"] });
    let out = "";
    child.stdout?.on("data", (d) => (out += String(d)));
    child.stderr?.on("data", (d) => (out += String(d)));
    try {
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`emulator not ready in 30 s: ${out}`)), 30_000);
        child.stdout?.on("data", () => {
          if (out.includes("\n")) {
            clearTimeout(timer);
            resolve();
          }
        });
        child.once("exit", (code) => reject(new Error(`emulator exited ${code}: ${out}`)));
      });
      const ready = JSON.parse(out.split("\n")[0] as string) as { gmailRootUrl: string; accounts: string[] };
      expect(ready.gmailRootUrl).toBe("http://emulator:8085/");
      expect(ready.accounts).toEqual(["alice@example.com", "bob@example.com"]);
      const certs = await fetch(`http://127.0.0.1:${port}/oauth2/v3/certs`); // what its healthcheck asks
      expect(certs.status).toBe(200);
    } finally {
      child.kill("SIGTERM");
    }
  });

  it("the traffic script compiles", () => {
    const script = (svc("traffic").command as string[])[0] as string;
    const AsyncFunction = (async () => {}).constructor as new (body: string) => unknown;
    expect(() => new AsyncFunction(script)).not.toThrow();
    expect(svc("traffic").entrypoint).toEqual(["node", "--input-type=module", "-e"]);
  });

  it("Grafana: anonymous viewer, the provisioned dashboard as home", () => {
    const g = svc("grafana");
    expect(g.environment).toMatchObject({ GF_AUTH_ANONYMOUS_ENABLED: "true", GF_AUTH_ANONYMOUS_ORG_ROLE: "Viewer" });
    const home = g.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH as string;
    const mount = (g.volumes ?? []).find((v) => v.startsWith("./grafana/dashboards:")) as string;
    const target = mount.split(":")[1] as string;
    expect(home.startsWith(`${target}/`)).toBe(true);
    expect(() => readFileSync(rel("grafana/dashboards", path.basename(home)))).not.toThrow();
    expect(g.volumes).toContain("./grafana/provisioning:/etc/grafana/provisioning:ro");
  });

  it("Prometheus mounts prometheus/ and scrapes the worker's internal HTTP port", () => {
    expect(svc("prometheus").volumes).toContain("./prometheus:/etc/prometheus:ro");
    const prom = parseYaml(readFileSync(rel("prometheus/prometheus.yml"), "utf8")) as {
      rule_files: string[];
      scrape_configs: Array<{ job_name: string; dns_sd_configs?: Array<{ names: string[]; port: number }> }>;
    };
    const job = prom.scrape_configs.find((j) => j.job_name === "gmail-sync");
    // /metrics is on the internal listener (reached over the compose network, never published).
    expect(job?.dns_sd_configs?.[0]).toMatchObject({ names: ["worker"], port: 9465 });
    expect(svc("worker").environment?.INTERNAL_HTTP_PORT).toBe("9465");
    expect(svc("worker").environment?.INTERNAL_HTTP_HOST).toBe("0.0.0.0");
    expect(svc("worker").healthcheck?.test.join(" ")).toContain("127.0.0.1:9465/readyz");
    expect(prom.rule_files).toEqual(["alerts.yml"]);
  });
});

describe("Dockerfile", () => {
  const lines = readFileSync(rel("Dockerfile"), "utf8")
    .split("\n")
    .map((l) => l.trim())
    .filter((l) => l !== "" && !l.startsWith("#"));

  it("is multi-stage and runs as a non-root user", () => {
    const froms = lines.filter((l) => l.startsWith("FROM "));
    expect(froms.length).toBeGreaterThanOrEqual(2);
    const finalStage = lines.slice(lines.lastIndexOf(froms[froms.length - 1] as string));
    const users = finalStage.filter((l) => l.startsWith("USER "));
    expect(users.length).toBeGreaterThan(0);
    expect(users[users.length - 1]).not.toMatch(/^USER (root|0)(:|$)/);
    // And compose never overrides it back to root.
    for (const [name, s] of Object.entries(compose.services)) {
      if (s.build !== undefined) expect(s.user, name).toBeUndefined();
    }
  });

  it("everything src/, bin/ and migrations/ import at run time is a production dependency (the image omits dev ones)", () => {
    const pkg = JSON.parse(readFileSync(rel("package.json"), "utf8")) as { dependencies: Record<string, string> };
    const files = ["src", "bin", "migrations"].flatMap((d) =>
      (readdirSync(rel(d), { recursive: true }) as string[])
        .filter((f) => /\.(ts|js)$/.test(f))
        .map((f) => path.join(d, f)),
    );
    expect(files.length).toBeGreaterThan(20);
    const missing = new Set<string>();
    for (const f of files) {
      // The production image leaves out the demo; the emulator is loaded only by `gmail-sync
      // emulator`, which says it is not installed there (src/commands/emulator.ts).
      if (f.startsWith("src/demo/")) continue;
      const text = readFileSync(rel(f), "utf8");
      // Static imports and re-exports (type-only ones are erased), dynamic import() and require.resolve().
      const specs = [
        ...[...text.matchAll(/^\s*(?:import|export)\s+(?!type\s)[^;]*?from\s+["']([^"']+)["']/gm)].map((m) => m[1]),
        ...[...text.matchAll(/^\s*import\s+["']([^"']+)["']/gm)].map((m) => m[1]),
        ...[...text.matchAll(/(?:import|require\.resolve|require)\(\s*["']([^"']+)["']/g)].map((m) => m[1]),
      ] as string[];
      for (const spec of specs) {
        if (
          spec.startsWith(".") ||
          spec.startsWith("node:") ||
          spec.startsWith("/") ||
          spec.startsWith("@gmail-sync/emulator")
        )
          continue;
        const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : (spec.split("/")[0] as string);
        if (!(name in pkg.dependencies)) missing.add(`${name} (${f})`);
      }
    }
    expect([...missing]).toEqual([]);
  });

  it("enters through the CLI and copies what it needs at run time", () => {
    expect(lines).toContain('ENTRYPOINT ["node", "bin/gmail-sync.js"]');
    for (const dir of ["bin", "src", "migrations"]) expect(lines.some((l) => l.startsWith(`COPY ${dir} `))).toBe(true);
    // Production dependencies only (the production-deps stage); the demo stage installs everything.
    expect(lines.some((l) => l.includes("npm install --omit=dev"))).toBe(true);
  });
});
