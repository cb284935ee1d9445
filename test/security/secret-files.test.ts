// Secrets from files (`X_FILE`, the Docker/Kubernetes convention) for the four secret settings:
// the value comes from the file with its trailing newline removed, the variable and its _FILE
// together are refused, and an unreadable or empty file stops start-up with a line naming it.
import { chmodSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import path from "node:path";
import { afterAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { ConfigError } from "../../src/errors.ts";

const dir = mkdtempSync(path.join(tmpdir(), "secret-files-"));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

let n = 0;
function secretFile(contents: string): string {
  const file = path.join(dir, `secret-${++n}`);
  writeFileSync(file, contents, { mode: 0o600 });
  return file;
}

function configError(env: Record<string, string>): string {
  try {
    loadConfig(env);
  } catch (err) {
    expect(err).toBeInstanceOf(ConfigError);
    return (err as Error).message;
  }
  throw new Error("loadConfig accepted the environment");
}

const values = {
  TOKEN_ENCRYPTION_KEY: "a2V5LW9uZS1rZXktb25lLWtleS1vbmUta2V5LW9uZTE=",
  DATABASE_URL: "postgres://gmail_sync:s3cret@db.internal:5432/gmail_sync",
  GOOGLE_CLIENT_SECRET: "GOCSPX-from-a-file",
  REDIS_URL: "redis://:pw@redis.internal:6379",
} as const;

describe("X_FILE", () => {
  it.each(Object.entries(values))("%s comes from its _FILE, trailing newline removed", (name, value) => {
    const config = loadConfig({ [`${name}_FILE`]: secretFile(`${value}\n`) }) as Record<string, unknown>;
    expect(config[name]).toBe(value);
    expect(config[`${name}_FILE`]).toBeUndefined();
  });

  it("removes a CRLF or several trailing newlines, and nothing else", () => {
    expect(loadConfig({ GOOGLE_CLIENT_SECRET_FILE: secretFile("abc\r\n") }).GOOGLE_CLIENT_SECRET).toBe("abc");
    expect(loadConfig({ GOOGLE_CLIENT_SECRET_FILE: secretFile("abc\n\n") }).GOOGLE_CLIENT_SECRET).toBe("abc");
    expect(loadConfig({ GOOGLE_CLIENT_SECRET_FILE: secretFile(" a b ") }).GOOGLE_CLIENT_SECRET).toBe(" a b ");
  });

  it("an empty _FILE means unset, like an empty variable", () => {
    expect(loadConfig({ DATABASE_URL_FILE: "" }).DATABASE_URL).toBe("postgres://postgres@127.0.0.1:5432/gmail_sync");
  });

  it("refuses the variable and its _FILE together, naming the variable", () => {
    const msg = configError({
      TOKEN_ENCRYPTION_KEY: values.TOKEN_ENCRYPTION_KEY,
      TOKEN_ENCRYPTION_KEY_FILE: secretFile(values.TOKEN_ENCRYPTION_KEY),
    });
    expect(msg).toMatch(/TOKEN_ENCRYPTION_KEY and TOKEN_ENCRYPTION_KEY_FILE are both set/);
    expect(msg).not.toContain(values.TOKEN_ENCRYPTION_KEY);
  });

  it("refuses a missing file, naming the variable and the path", () => {
    const missing = path.join(dir, "does-not-exist");
    const msg = configError({ DATABASE_URL_FILE: missing });
    expect(msg).toContain("DATABASE_URL_FILE cannot be read");
    expect(msg).toContain(missing);
    expect(msg).toContain("ENOENT");
    expect(msg.split("\n")).toHaveLength(1);
  });

  it.skipIf(process.getuid?.() === 0)("refuses a file it may not read", () => {
    const file = secretFile(values.REDIS_URL);
    chmodSync(file, 0o000);
    expect(configError({ REDIS_URL_FILE: file })).toMatch(/REDIS_URL_FILE cannot be read .*EACCES/);
  });

  it("refuses a directory (what Docker mounts when the secret's source file is missing)", () => {
    expect(configError({ GOOGLE_CLIENT_SECRET_FILE: dir })).toMatch(
      /GOOGLE_CLIENT_SECRET_FILE cannot be read .*EISDIR/,
    );
  });

  it("refuses an empty file", () => {
    expect(configError({ TOKEN_ENCRYPTION_KEY_FILE: secretFile("\n") })).toMatch(
      /TOKEN_ENCRYPTION_KEY_FILE names an empty file/,
    );
  });

  it("validates a value read from a file like any other, without printing it", () => {
    const msg = configError({ DATABASE_URL_FILE: secretFile("mysql://root:hunter2@db/x\n") });
    expect(msg).toMatch(/DATABASE_URL must be a postgres:\/\/ URL.*\(read from DATABASE_URL_FILE\)/);
    expect(msg).not.toContain("hunter2");
  });

  it("reports file problems and other bad variables in the same line", () => {
    const msg = configError({ DATABASE_URL_FILE: path.join(dir, "nope"), HTTP_PORT: "70000" });
    expect(msg).toContain("DATABASE_URL_FILE");
    expect(msg).toContain("HTTP_PORT");
  });

  it("only the four secrets have a _FILE form", () => {
    const config = loadConfig({ LOG_LEVEL_FILE: secretFile("debug") });
    expect(config.LOG_LEVEL).toBe("info");
  });
});
