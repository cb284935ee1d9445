// Tokens, authorization codes and mail travel to the Google endpoint settings: plain http is
// refused unless the endpoint is on loopback (the emulator in tests and the demo) or the operator
// says it is an emulator elsewhere (GOOGLE_ENDPOINTS_ALLOW_HTTP, the compose demo).
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";

describe("Google endpoint settings", () => {
  it("accept https, and http on loopback", () => {
    expect(() => loadConfig({})).not.toThrow();
    expect(() =>
      loadConfig({
        GMAIL_API_ROOT_URL: "http://127.0.0.1:8085/",
        GOOGLE_OAUTH_TOKEN_URL: "http://localhost:8085/token",
      }),
    ).not.toThrow();
  });

  it.each(["GMAIL_API_ROOT_URL", "GOOGLE_OAUTH_AUTH_URL", "GOOGLE_OAUTH_TOKEN_URL", "GOOGLE_CERTS_URL"])(
    "refuse plain http off loopback for %s",
    (name) => {
      expect(() => loadConfig({ [name]: "http://gmail.example.net/x" })).toThrow(new RegExp(`${name} must be https`));
    },
  );

  it("accept http off loopback only when told it is an emulator", () => {
    expect(() =>
      loadConfig({ GMAIL_API_ROOT_URL: "http://emulator:8085/", GOOGLE_ENDPOINTS_ALLOW_HTTP: "true" }),
    ).not.toThrow();
  });
});
