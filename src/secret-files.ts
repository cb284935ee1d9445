// Secrets from files, the Docker/Kubernetes convention: `X_FILE=/run/secrets/x` stands for `X` with
// the file's contents. A secret mounted as a file stays out of the process environment, where a
// child process, a crash dump or `docker inspect` would otherwise show it.
import { readFileSync } from "node:fs";

/** The settings that may come from a file instead of the environment. */
export const SECRET_FILE_VARIABLES = [
  "TOKEN_ENCRYPTION_KEY",
  "DATABASE_URL",
  "GOOGLE_CLIENT_SECRET",
  "REDIS_URL",
  "OPERATOR_TOKEN",
  "OPERATOR_PASSWORD",
  "CHANGES_API_TOKEN",
] as const;

export interface ResolvedSecrets {
  env: Record<string, string>;
  /** Variables whose value was read from their `_FILE`. */
  fromFile: Set<string>;
  /** One line per problem, each naming the variable; never a secret's value. */
  problems: string[];
}

/**
 * Replaces every `X_FILE` of SECRET_FILE_VARIABLES by `X` holding the file's contents (trailing
 * newlines removed: `echo`, editors and `kubectl create secret --from-file` leave one).
 * `env` holds only set, non-empty values.
 */
export function resolveSecretFiles(env: Record<string, string>): ResolvedSecrets {
  const out: Record<string, string> = { ...env };
  const fromFile = new Set<string>();
  const problems: string[] = [];
  for (const name of SECRET_FILE_VARIABLES) {
    const fileVar = `${name}_FILE`;
    const file = env[fileVar];
    delete out[fileVar];
    if (file === undefined) continue;
    // Two sources would leave one of them silently unused: whoever set it would believe it applies.
    if (env[name] !== undefined) {
      problems.push(`${name} and ${fileVar} are both set; set only one`);
      continue;
    }
    let text: string;
    try {
      text = readFileSync(file, "utf8");
    } catch (err) {
      const e = err as NodeJS.ErrnoException;
      problems.push(`${fileVar} cannot be read (${file}: ${e.code ?? e.message})`);
      continue;
    }
    const value = text.replace(/[\r\n]+$/, "");
    if (value === "") {
      problems.push(`${fileVar} names an empty file (${file})`);
      continue;
    }
    out[name] = value;
    fromFile.add(name);
  }
  return { env: out, fromFile, problems };
}
