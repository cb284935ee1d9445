// The operator page's credentials (src/operator/auth.ts, the OPERATOR_* settings): what is accepted
// and what is not, without a server. The browser test (operator-page.test.ts) covers the routes.
import { mkdtempSync, rmSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import {
  authenticate,
  crossSite,
  csrfMatches,
  csrfToken,
  loginMatches,
  newSession,
  operatorCredentials,
  SESSION_COOKIE,
  SESSION_TTL_SECONDS,
  sessionCookie,
  tokenMatches,
  verifySession,
} from "../../src/operator/auth.ts";
import { esc } from "../../src/operator/pages.ts";

const TOKEN = "t".repeat(40);
const creds = (over: Record<string, string | undefined> = {}) => {
  const c = operatorCredentials({
    OPERATOR_TOKEN: TOKEN,
    OPERATOR_USER: "ops",
    OPERATOR_PASSWORD: "p".repeat(20),
    ...over,
  });
  if (c === null) throw new Error("no credentials");
  return c;
};

describe("operator credentials", () => {
  it("are absent unless a token or a user and password are configured", () => {
    expect(
      operatorCredentials({ OPERATOR_TOKEN: undefined, OPERATOR_USER: undefined, OPERATOR_PASSWORD: undefined }),
    ).toBeNull();
    expect(creds({ OPERATOR_USER: undefined, OPERATOR_PASSWORD: undefined }).user).toBeUndefined();
  });

  it("are validated by the config: lengths, and a user only with a password", () => {
    expect(() => loadConfig({ OPERATOR_TOKEN: "short" })).toThrow(/OPERATOR_TOKEN must be at least 32/);
    expect(() => loadConfig({ OPERATOR_USER: "ops" })).toThrow(
      /OPERATOR_USER and OPERATOR_PASSWORD must be set together/,
    );
    expect(() => loadConfig({ OPERATOR_USER: "o:ps", OPERATOR_PASSWORD: "p".repeat(20) })).toThrow(/OPERATOR_USER/);
    expect(() => loadConfig({ OPERATOR_USER: "ops", OPERATOR_PASSWORD: "short" })).toThrow(/OPERATOR_PASSWORD/);
    // The message names the variable, never the value.
    let message = "";
    try {
      loadConfig({ OPERATOR_TOKEN: "hunter2" });
    } catch (err) {
      message = (err as Error).message;
    }
    expect(message).toMatch(/OPERATOR_TOKEN/);
    expect(message).not.toContain("hunter2");
  });

  it("may come from files (OPERATOR_TOKEN_FILE, OPERATOR_PASSWORD_FILE)", () => {
    const dir = mkdtempSync(path.join(os.tmpdir(), "operator-secrets-"));
    try {
      writeFileSync(path.join(dir, "token"), `${TOKEN}\n`);
      writeFileSync(path.join(dir, "password"), `${"p".repeat(20)}\n`);
      const c = loadConfig({
        OPERATOR_TOKEN_FILE: path.join(dir, "token"),
        OPERATOR_USER: "ops",
        OPERATOR_PASSWORD_FILE: path.join(dir, "password"),
      });
      expect(c.OPERATOR_TOKEN).toBe(TOKEN);
      expect(c.OPERATOR_PASSWORD).toBe("p".repeat(20));
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it("match only exactly, bearer and basic alike", () => {
    const c = creds();
    expect(tokenMatches(c, TOKEN)).toBe(true);
    expect(tokenMatches(c, `${TOKEN}x`)).toBe(false);
    expect(tokenMatches(c, "")).toBe(false);
    expect(tokenMatches(creds({ OPERATOR_TOKEN: undefined }), "")).toBe(false);
    expect(loginMatches(c, "ops", "p".repeat(20))).toBe(true);
    expect(loginMatches(c, "ops", "p".repeat(19))).toBe(false);
    expect(loginMatches(c, "Ops", "p".repeat(20))).toBe(false);
    expect(loginMatches(creds({ OPERATOR_USER: undefined, OPERATOR_PASSWORD: undefined }), "", "")).toBe(false);
    const basic = (s: string) => `Basic ${Buffer.from(s).toString("base64")}`;
    expect(authenticate(c, { authorization: `Bearer ${TOKEN}` })).toEqual({ method: "bearer", sid: "bearer" });
    expect(authenticate(c, { authorization: basic(`ops:${"p".repeat(20)}`) })).toMatchObject({ method: "basic" });
    expect(authenticate(c, { authorization: basic("ops") })).toBeNull();
    expect(authenticate(c, { authorization: `Digest ${TOKEN}` })).toBeNull();
    expect(authenticate(c, {})).toBeNull();
  });
});

describe("operator sessions", () => {
  it("are signed, expire, and end when a credential changes", () => {
    const c = creds();
    const now = Date.now();
    const { cookie, sid } = newSession(c, now);
    expect(verifySession(c, cookie, now)).toBe(sid);
    expect(authenticate(c, { cookie: `a=b; ${SESSION_COOKIE}=${cookie}` }, now)).toEqual({ method: "session", sid });
    expect(verifySession(c, cookie, now + SESSION_TTL_SECONDS * 1000 + 1000)).toBeNull();
    const [payload, sig] = cookie.split(".") as [string, string];
    const longer = Buffer.from(JSON.stringify({ sid, exp: 9e9 })).toString("base64url");
    expect(verifySession(c, `${longer}.${sig}`, now)).toBeNull();
    expect(verifySession(c, `${payload}.${sig.slice(0, -2)}`, now)).toBeNull();
    expect(verifySession(creds({ OPERATOR_PASSWORD: "q".repeat(20) }), cookie, now)).toBeNull();
    expect(verifySession(creds({ OPERATOR_TOKEN: "u".repeat(40) }), cookie, now)).toBeNull();
  });

  it("set an HttpOnly, SameSite=Strict cookie on /operator, and clear it", () => {
    expect(sessionCookie("v")).toBe(
      `${SESSION_COOKIE}=v; Path=/operator; Max-Age=${SESSION_TTL_SECONDS}; HttpOnly; SameSite=Strict`,
    );
    expect(sessionCookie("")).toContain("Max-Age=0");
  });

  it("bind the anti-CSRF token to the session", () => {
    const c = creds();
    const a = newSession(c);
    const b = newSession(c);
    expect(csrfMatches(c, a.sid, csrfToken(c, a.sid))).toBe(true);
    expect(csrfMatches(c, a.sid, csrfToken(c, b.sid))).toBe(false);
    expect(csrfMatches(c, a.sid, "")).toBe(false);
  });

  it("tell a cross-site POST from a same-origin one", () => {
    expect(crossSite({ host: "127.0.0.1:9465", origin: "http://127.0.0.1:9465" })).toBe(false);
    expect(crossSite({ host: "127.0.0.1:9465" })).toBe(false);
    expect(crossSite({ host: "localhost:80", origin: "http://localhost" })).toBe(false);
    expect(crossSite({ host: "127.0.0.1:9465", origin: "http://127.0.0.1:9466" })).toBe(true);
    expect(crossSite({ host: "127.0.0.1:9465", origin: "http://evil.example" })).toBe(true);
    expect(crossSite({ host: "127.0.0.1:9465", origin: "null" })).toBe(true);
    expect(crossSite({ host: "127.0.0.1:9465", "sec-fetch-site": "cross-site" })).toBe(true);
    expect(crossSite({ host: "127.0.0.1:9465", "sec-fetch-site": "same-site" })).toBe(true);
    expect(crossSite({ host: "127.0.0.1:9465", "sec-fetch-site": "same-origin" })).toBe(false);
  });
});

it("escapes everything it renders", () => {
  expect(esc(`<a href="x" onclick='y'>&</a>`)).toBe("&lt;a href=&quot;x&quot; onclick=&#39;y&#39;&gt;&amp;&lt;/a&gt;");
  expect(esc(null)).toBe("");
});
