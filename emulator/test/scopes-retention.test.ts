// Scope rules (gmail.metadata refuses q and format=full/raw), time-based history retention, and
// access-token expiry.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../src/server.ts";
import { clientFor, rawGet } from "./helpers.ts";

const METADATA = "https://www.googleapis.com/auth/gmail.metadata";
const READONLY = "https://www.googleapis.com/auth/gmail.readonly";
let emu: Emulator;

beforeAll(async () => {
  // 0.0006 h = 2.16 s of history retention.
  emu = await startEmulator({ seed: 17, messages: 3, historyRetentionHours: 0.0006 });
});
afterAll(async () => {
  await emu.close();
});

describe("scopes", () => {
  it("refuses q and format=full under gmail.metadata, even with gmail.readonly", async () => {
    const { auth, api } = await clientFor(emu, "alice@example.com", [METADATA, READONLY]);
    const q = await rawGet(emu, auth, "/gmail/v1/users/me/messages?q=from:x");
    expect(q.status).toBe(403);
    expect(((await q.json()) as { error: { message: string } }).error.message).toBe(
      "Metadata scope does not support 'q' parameter",
    );
    const id = (await emu.control.mailbox("alice@example.com")).messages[0]?.id as string;
    const full = await rawGet(emu, auth, `/gmail/v1/users/me/messages/${id}`);
    expect(full.status).toBe(403);
    expect(((await full.json()) as { error: { message: string } }).error.message).toBe(
      "Metadata scope doesn't allow format FULL",
    );
    const meta = await api.users.messages.get({ userId: "me", id, format: "metadata" });
    expect(meta.data.payload?.headers?.length).toBeGreaterThan(0);
  });

  it("answers 403 insufficientPermissions without a Gmail scope", async () => {
    const { auth } = await clientFor(emu, "alice@example.com", ["openid", "email"]);
    const res = await rawGet(emu, auth, "/gmail/v1/users/me/profile");
    expect(res.status).toBe(403);
    expect(((await res.json()) as { error: { errors: Array<{ reason: string }> } }).error.errors[0]?.reason).toBe(
      "insufficientPermissions",
    );
  });
});

describe("retention and expiry", () => {
  it("ages history records out after the retention window and 404s older start ids", async () => {
    const { auth } = await clientFor(emu);
    const start = (await emu.control.mailbox("alice@example.com")).historyId;
    await emu.control.deliver("alice@example.com", {});
    const fresh = await rawGet(emu, auth, `/gmail/v1/users/me/history?startHistoryId=${start}`);
    // One messagesAdded record (a delivery may also write records holding only `messages`).
    expect(
      ((await fresh.json()) as { history: Array<{ messagesAdded?: unknown[] }> }).history.filter(
        (h) => h.messagesAdded,
      ),
    ).toHaveLength(1);
    await new Promise((r) => setTimeout(r, 2300));
    const stale = await rawGet(emu, auth, `/gmail/v1/users/me/history?startHistoryId=${start}`);
    expect(stale.status).toBe(404);
  });

  it("refuses an expired access token with 401", async () => {
    const short = await startEmulator({ seed: 18, accessTokenTtlSeconds: 2 });
    try {
      const res = await fetch(short.tokenUrl, {
        method: "POST",
        headers: { "content-type": "application/x-www-form-urlencoded" },
        body: new URLSearchParams({
          grant_type: "refresh_token",
          refresh_token: await short.control.issueRefreshToken("alice@example.com"),
          client_id: short.clientId,
          client_secret: short.clientSecret,
        }),
      });
      const tokens = (await res.json()) as { access_token: string; expires_in: number };
      expect(tokens.expires_in).toBe(2);
      const ok = await fetch(`${short.url}/gmail/v1/users/me/profile`, {
        headers: { authorization: `Bearer ${tokens.access_token}` },
      });
      expect(ok.status).toBe(200);
      await new Promise((r) => setTimeout(r, 2100));
      const expired = await fetch(`${short.url}/gmail/v1/users/me/profile`, {
        headers: { authorization: `Bearer ${tokens.access_token}` },
      });
      expect(expired.status).toBe(401);
    } finally {
      await short.close();
    }
  });
});
