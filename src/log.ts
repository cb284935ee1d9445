// JSON-lines logger. Token-bearing fields are redacted by path so a careless log call cannot leak
// a credential; attachment bytes and message bodies are never passed to the logger at all.
import pino, { type Logger } from "pino";

export type { Logger };

export const redactPaths = [
  "token",
  "tokens",
  "*.token",
  "*.tokens",
  "access_token",
  "refresh_token",
  "*.access_token",
  "*.refresh_token",
  "*.accessToken",
  "*.refreshToken",
  "authorization",
  "*.authorization",
  "headers.authorization",
  "*.headers.authorization",
  "req.headers.authorization",
  "code",
  "*.code_verifier",
  "client_secret",
  "*.client_secret",
];

export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino(
    {
      level,
      base: { service: "gmail-sync" },
      redact: { paths: redactPaths, censor: "[redacted]" },
      timestamp: pino.stdTimeFunctions.isoTime,
    },
    destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
