// The deployment is safe as shipped: docker-compose.yml publishes nothing beyond loopback, has no
// default Grafana password and no Prometheus lifecycle API, hands secrets over as files, and the
// app connects to Postgres as a role that is not a superuser (deploy/postgres-init/, checked against
// the real Postgres); the production image leaves out the emulator package and the demo.
// Compose itself (`docker compose config` or Debian's docker-compose 1.29, no engine needed) must
// refuse the file without GRAFANA_ADMIN_PASSWORD and accept it with one.
import { spawnSync } from "node:child_process";
import { randomBytes } from "node:crypto";
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import pg from "pg";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { parse as parseYaml } from "yaml";
import { runCli } from "../helpers/cli.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { adminUrl, databaseUrlFor } from "../helpers/env.ts";
import { hasBinary, rel, run } from "../observability/tools.ts";

interface Service {
  build?: string | { context: string; target?: string };
  command?: string[] | string;
  environment?: Record<string, string>;
  ports?: Array<string | { host_ip?: string; published?: string | number; target: number }>;
  secrets?: Array<string | { source: string }>;
  volumes?: string[];
}
interface Compose {
  services: Record<string, Service>;
  secrets?: Record<string, { file?: string; environment?: string }>;
}

const composeText = readFileSync(rel("docker-compose.yml"), "utf8");
const compose = parseYaml(composeText, { merge: true }) as Compose;
const svc = (name: string): Service => {
  const s = compose.services[name];
  if (!s) throw new Error(`no service ${name}`);
  return s;
};
// The secrets each app service is given; only the worker serves the operator page and the feed.
const APP_SECRETS: Record<string, string[]> = {
  migrate: ["TOKEN_ENCRYPTION_KEY", "DATABASE_URL", "GOOGLE_CLIENT_SECRET"],
  worker: ["TOKEN_ENCRYPTION_KEY", "DATABASE_URL", "GOOGLE_CLIENT_SECRET", "OPERATOR_TOKEN", "CHANGES_API_TOKEN"],
};

/** Host address a published port binds to ("" = every interface). Short and long syntax. */
function hostIps(s: Service): string[] {
  return (s.ports ?? []).map((p) => {
    if (typeof p === "object") return p.host_ip ?? "";
    const parts = String(p).split(":");
    return parts.length === 3 ? (parts[0] as string) : "";
  });
}

describe("docker-compose.yml", () => {
  it("publishes every port on 127.0.0.1 only; Postgres and Redis not at all", () => {
    const published = Object.entries(compose.services).filter(([, s]) => (s.ports ?? []).length > 0);
    expect(published.map(([n]) => n).sort()).toEqual(["grafana", "prometheus", "worker"]);
    for (const [name, s] of published) expect(hostIps(s), name).toEqual(hostIps(s).map(() => "127.0.0.1"));
    for (const name of ["postgres", "redis"]) expect(svc(name).ports, name).toBeUndefined();
  });

  it("runs Prometheus without the lifecycle API (POST /-/quit, /-/reload)", () => {
    const cmd = svc("prometheus").command as string[];
    expect(cmd.length).toBeGreaterThan(0);
    expect(cmd.some((a) => a.includes("enable-lifecycle"))).toBe(false);
    expect(composeText).not.toContain("--web.enable-lifecycle\n");
  });

  it("has no default Grafana admin password: compose refuses without GRAFANA_ADMIN_PASSWORD", () => {
    const env = svc("grafana").environment ?? {};
    expect(env.GF_SECURITY_ADMIN_PASSWORD).toMatch(/^\$\{GRAFANA_ADMIN_PASSWORD:\?[^}]+\}$/);
    expect(Object.keys(env).filter((k) => k.startsWith("GF_SECURITY_ADMIN_PASSWORD"))).toEqual([
      "GF_SECURITY_ADMIN_PASSWORD",
    ]);
    expect(composeText).not.toMatch(/GRAFANA_ADMIN_PASSWORD:-/);
  });

  it("gives the app its secrets as files (compose secrets), never as environment values", () => {
    for (const [name, secrets] of Object.entries(APP_SECRETS)) {
      const env = svc(name).environment ?? {};
      const mounted = (svc(name).secrets ?? []).map((s) => (typeof s === "string" ? s : s.source));
      for (const secret of secrets) {
        expect(env[secret], `${name}: ${secret}`).toBeUndefined();
        const file = env[`${secret}_FILE`] ?? "";
        const source = /^\/run\/secrets\/(\w+)$/.exec(file)?.[1];
        expect(source, `${name}: ${secret}_FILE=${file}`).toBeDefined();
        expect(mounted, `${name} mounts ${source}`).toContain(source);
        // File-based, from the git-ignored secrets directory (or SECRETS_DIR).
        expect(compose.secrets?.[source as string]?.file).toBe(`\${SECRETS_DIR:-./secrets}/${source}`);
      }
    }
    // Every secret file compose mounts is one deploy/make-secrets.sh makes.
    const script = readFileSync(rel("deploy/make-secrets.sh"), "utf8");
    for (const source of Object.keys(compose.secrets ?? {})) expect(script, source).toContain(`put ${source} `);
    // No credentials written into the file itself.
    expect(composeText).not.toMatch(/postgres:\/\/[^\s/]*:[^\s/@]*@/);
    expect(composeText).not.toMatch(/POSTGRES_PASSWORD:/);
  });

  it("keeps the secret files out of git and out of the image's build context", () => {
    expect(run("git", ["check-ignore", "-q", "secrets/token_encryption_key"]).status).toBe(0);
    expect(run("git", ["check-ignore", "-q", ".env"]).status).toBe(0);
    const dockerignore = readFileSync(rel(".dockerignore"), "utf8")
      .split("\n")
      .map((l) => l.trim());
    expect(dockerignore).toContain("secrets");
    expect(dockerignore).toContain(".env");
  });

  it("connects the app as a non-superuser role made by the init script, with a password from a secret", () => {
    const pgEnv = svc("postgres").environment ?? {};
    expect(pgEnv.POSTGRES_PASSWORD_FILE).toMatch(/^\/run\/secrets\/\w+$/);
    expect(pgEnv.APP_DB_PASSWORD_FILE).toMatch(/^\/run\/secrets\/\w+$/);
    const appUser = pgEnv.APP_DB_USER as string;
    expect(appUser).toMatch(/^\w+$/);
    expect(appUser).not.toBe(pgEnv.POSTGRES_USER);
    expect(appUser).not.toBe("postgres");
    expect(svc("postgres").volumes).toContain("./deploy/postgres-init:/docker-entrypoint-initdb.d:ro");
    expect(readdirSync(rel("deploy/postgres-init")).some((f) => f.endsWith(".sql"))).toBe(true);
    // The generated DATABASE_URL logs in as that role, its password the one the role gets.
    const script = readFileSync(rel("deploy/make-secrets.sh"), "utf8");
    expect(script).toContain(
      `put database_url "postgres://${appUser}:$(cat "$dir/postgres_app_password")@postgres:5432/${pgEnv.POSTGRES_DB}"`,
    );
  });

  it("builds migrate and the worker from the production target, the demo services from the demo one", () => {
    const target = (name: string) => {
      const b = svc(name).build;
      return typeof b === "object" ? b.target : undefined;
    };
    for (const name of Object.keys(APP_SECRETS)) expect(target(name), name).toBe("production");
    for (const name of ["emulator", "traffic"]) expect(target(name), name).toBe("demo");
  });
});

describe("the production image", () => {
  const dockerfile = readFileSync(rel("Dockerfile"), "utf8");
  const pkg = JSON.parse(readFileSync(rel("package.json"), "utf8")) as {
    dependencies: Record<string, string>;
    devDependencies: Record<string, string>;
    workspaces: string[];
  };
  const REMOVED_DIRS = ["src/demo"];
  const GENERATOR_PACKAGES = ["pdf-lib", "docx", "nodemailer", "cli-progress", "@gmail-sync/emulator"];

  it("is the default target, copies no emulator, drops the demo, and installs without workspace or dev packages", () => {
    const froms = dockerfile.split("\n").filter((l) => l.startsWith("FROM "));
    expect(froms.at(-1)).toMatch(/ AS production$/);
    // Each stage's text by name; the production image is built from these three alone.
    const stages = new Map(dockerfile.split(/^(?=FROM )/m).map((t) => [/^FROM \S+ AS (\S+)/.exec(t)?.[1] ?? "", t]));
    for (const name of ["production-deps", "production-src", "production"]) {
      expect(stages.get(name), name).toBeDefined();
      expect(stages.get(name), name).not.toMatch(/COPY[^\n]*emulator/);
      expect(stages.get(name), name).not.toMatch(/--from=demo/);
    }
    expect(dockerfile).toContain(`RUN rm -rf ${REMOVED_DIRS.join(" ")}`);
    expect(dockerfile).toContain("delete p.workspaces;delete p.devDependencies");
    expect(dockerfile).toMatch(/npm install --omit=dev/);
    expect(pkg.workspaces).toEqual(["emulator"]);
    for (const name of GENERATOR_PACKAGES) expect(pkg.dependencies, name).not.toHaveProperty(name);
  });

  it("lints clean (dockerfile-utils), and both targets build from stages defined before them", () => {
    // No Docker engine here: the lint and this stage graph stand in for a build.
    const lint = spawnSync(rel("node_modules/.bin/dockerfile-utils"), ["lint", rel("Dockerfile")], {
      encoding: "utf8",
    });
    expect(lint.stdout + lint.stderr).toBe("");
    expect(lint.status).toBe(0);
    const defined: string[] = [];
    for (const line of dockerfile.split("\n")) {
      const from = /^FROM (\S+)(?: AS (\S+))?/.exec(line);
      if (from) {
        if (!from[1]?.includes(":")) expect(defined, line).toContain(from[1]);
        if (from[2]) defined.push(from[2]);
      }
      const copyFrom = /^COPY --from=(\S+)/.exec(line);
      if (copyFrom) expect(defined, line).toContain(copyFrom[1]);
    }
    expect(defined).toEqual(expect.arrayContaining(["demo", "production"]));
  });

  it("needs nothing it drops: product code imports only its own dependencies statically", () => {
    const offenders: string[] = [];
    const files = ["src", "bin"].flatMap((d) =>
      (readdirSync(rel(d), { recursive: true }) as string[])
        .filter((f) => /\.(ts|js)$/.test(f))
        .map((f) => path.join(d, f)),
    );
    for (const f of files) {
      if (REMOVED_DIRS.some((d) => f.startsWith(`${d}/`))) continue;
      const text = readFileSync(rel(f), "utf8");
      // Static imports only: a dynamic import() runs when its command does (`demo` in a demo image).
      for (const m of text.matchAll(/^\s*(?:import|export)\s+(?!type\s)[^;]*?from\s+["']([^"']+)["']/gm)) {
        const spec = m[1] as string;
        if (spec.startsWith("node:")) continue;
        const local = spec.startsWith(".") ? path.normalize(path.join(path.dirname(f), spec)) : "";
        if (local) {
          if (REMOVED_DIRS.some((d) => local === d || local.startsWith(`${d}/`))) offenders.push(`${f}: ${spec}`);
          continue;
        }
        const name = spec.startsWith("@") ? spec.split("/").slice(0, 2).join("/") : (spec.split("/")[0] as string);
        if (!(name in pkg.dependencies)) offenders.push(`${f}: ${spec}`);
      }
    }
    expect(files.length).toBeGreaterThan(20);
    expect(offenders).toEqual([]);
  });
});

// The init script against the real Postgres, as the postgres image runs it: psql as the superuser,
// connected to the app's database, APP_DB_USER and APP_DB_PASSWORD_FILE set.
describe.skipIf(!hasBinary("psql"))("deploy/postgres-init: the application role", () => {
  const role = `gmail_sync_app_${randomBytes(4).toString("hex")}`;
  const password = randomBytes(18).toString("hex");
  const dir = mkdtempSync(path.join(tmpdir(), "pg-init-"));
  const passwordFile = path.join(dir, "postgres_app_password");
  const dbs: string[] = [];
  let upgraded: TestDatabase | undefined;

  const admin = async <T>(fn: (c: pg.Client) => Promise<T>, url = adminUrl): Promise<T> => {
    const c = new pg.Client({ connectionString: url });
    await c.connect();
    try {
      return await fn(c);
    } finally {
      await c.end();
    }
  };
  const appUrl = (db: string) => {
    const u = new URL(databaseUrlFor(db));
    u.username = role;
    u.password = password;
    return u.toString();
  };
  const initScript = (db: string) =>
    spawnSync("psql", [databaseUrlFor(db), "-X", "-q", "-f", rel("deploy/postgres-init/10-app-role.sql")], {
      encoding: "utf8",
      env: { PATH: process.env.PATH ?? "", APP_DB_USER: role, APP_DB_PASSWORD_FILE: passwordFile },
    });
  /** `gmail-sync migrate` as the app role, its URL from a secret file as in compose. */
  const migrateAsApp = async (db: string, ...args: string[]) => {
    const urlFile = path.join(dir, `database_url_${db}`);
    writeFileSync(urlFile, `${appUrl(db)}\n`, { mode: 0o600 });
    return runCli(["migrate", "--no-schedules", ...args], { DATABASE_URL_FILE: urlFile });
  };

  beforeAll(() => writeFileSync(passwordFile, `${password}\n`, { mode: 0o600 }));
  afterAll(async () => {
    await upgraded?.drop();
    await admin(async (c) => {
      for (const db of dbs) await c.query(`DROP DATABASE IF EXISTS ${pg.escapeIdentifier(db)} WITH (FORCE)`);
      await c.query(`DROP ROLE IF EXISTS ${pg.escapeIdentifier(role)}`);
    });
    rmSync(dir, { recursive: true, force: true });
  });

  it("on a new database: a non-superuser role that runs every migration and can do nothing beyond it", async () => {
    const db = `gmail_sync_init_${randomBytes(4).toString("hex")}`;
    dbs.push(db);
    await admin((c) => c.query(`CREATE DATABASE ${pg.escapeIdentifier(db)}`)); // POSTGRES_DB, as the image makes it
    const init = initScript(db);
    expect(init.stderr).toBe("");
    expect(init.status).toBe(0);

    const migrated = await migrateAsApp(db);
    expect(migrated.stderr).toBe("");
    expect(migrated.code).toBe(0);

    await admin(async (c) => {
      const r = await c.query(
        "SELECT rolsuper, rolcreatedb, rolcreaterole, rolreplication, rolbypassrls FROM pg_roles WHERE rolname = current_user",
      );
      expect(r.rows[0]).toEqual({
        rolsuper: false,
        rolcreatedb: false,
        rolcreaterole: false,
        rolreplication: false,
        rolbypassrls: false,
      });
      const tables = await c.query("SELECT tablename, tableowner FROM pg_tables WHERE schemaname = 'public'");
      expect(tables.rows.length).toBeGreaterThan(3);
      expect(tables.rows.filter((t) => t.tableowner !== role)).toEqual([]);
      // What a superuser could do and this role must not: run programs, read server files, make roles.
      for (const q of [
        "COPY (SELECT 1) TO PROGRAM 'true'",
        "SELECT pg_read_file('/etc/passwd')",
        "CREATE ROLE intruder",
        `CREATE DATABASE ${db}_2`,
      ]) {
        await expect(c.query(q), q).rejects.toMatchObject({ code: "42501" });
      }
    }, appUrl(db));
  });

  it("on a database migrated as the superuser (an existing volume): rerun by hand, it hands the tables over", async () => {
    upgraded = await createTestDatabase(); // migrated, every table owned by the superuser
    const init = initScript(upgraded.name);
    expect(init.stderr).toBe("");
    expect(init.status).toBe(0);
    // Down and up again: dropping and altering tables needs their ownership.
    for (const args of [["--down"], []]) {
      const r = await migrateAsApp(upgraded.name, ...args);
      expect(r.stderr, args.join(" ")).toBe("");
      expect(r.code, args.join(" ")).toBe(0);
    }
  });

  it("refuses to make the role without a password", () => {
    const db = dbs[0] as string;
    const r = spawnSync("psql", [databaseUrlFor(db), "-X", "-q", "-f", rel("deploy/postgres-init/10-app-role.sql")], {
      encoding: "utf8",
      env: { PATH: process.env.PATH ?? "", APP_DB_USER: role, APP_DB_PASSWORD_FILE: path.join(dir, "missing") },
    });
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("APP_DB_PASSWORD_FILE is unset, unreadable or empty");
  });
});

// `docker compose config` (v2) when the plugin is there, else Debian's docker-compose 1.29; both
// interpolate and validate without an engine. An empty --env-file keeps a developer's .env out.
const composeCli: string[] | undefined =
  spawnSync("docker", ["compose", "version"], { stdio: "ignore" }).status === 0
    ? ["docker", "compose"]
    : hasBinary("docker-compose")
      ? ["docker-compose"]
      : undefined;

describe("compose config", () => {
  beforeAll(() => {
    if (composeCli === undefined)
      console.warn(
        "SKIPPED: neither `docker compose` nor docker-compose is installed (apt-get install docker-compose, or run .ci/run)",
      );
  });

  const config = (env: Record<string, string>) => {
    const dir = mkdtempSync(path.join(tmpdir(), "compose-env-"));
    try {
      const envFile = path.join(dir, "empty.env");
      writeFileSync(envFile, "");
      const [cmd, ...pre] = composeCli as [string, ...string[]];
      return run(cmd, [...pre, "--env-file", envFile, "-f", "docker-compose.yml", "config"], {
        env: { DOCKER_HOST: "unix:///nonexistent/docker.sock", ...env },
      });
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  };

  it.skipIf(composeCli === undefined)("refuses to start without GRAFANA_ADMIN_PASSWORD", () => {
    const r = config({});
    expect(r.status).not.toBe(0);
    expect(r.stderr).toContain("GRAFANA_ADMIN_PASSWORD");
  });

  it.skipIf(composeCli === undefined)("accepts the file with it; what it resolves binds loopback only", () => {
    const r = config({ GRAFANA_ADMIN_PASSWORD: "a-real-password" });
    expect(r.stderr).toBe("");
    expect(r.status).toBe(0);
    const resolved = parseYaml(r.stdout) as Compose;
    expect(resolved.services.grafana?.environment?.GF_SECURITY_ADMIN_PASSWORD).toBe("a-real-password");
    for (const [name, s] of Object.entries(resolved.services)) {
      for (const ip of hostIps(s)) expect(ip, name).toBe("127.0.0.1");
    }
  });
});
