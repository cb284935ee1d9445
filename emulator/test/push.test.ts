// Pub/Sub push from watched mailboxes: Google's envelope, an OIDC JWT that verifies against the
// emulator's JWKS / PEM certs (and fails against any other key), rate limit, redelivery, drops
// and duplicates.
import { createPublicKey, generateKeyPairSync, verify } from "node:crypto";
import { createServer, type Server } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, afterEach, beforeAll, describe, expect, it } from "vitest";
import { OAuth2Client } from "google-auth-library";
import { startEmulator, type Emulator } from "../src/server.ts";
import { clientFor } from "./helpers.ts";

/** The push payload, as a subscriber decodes Pub/Sub's envelope. */
function decodePushEnvelope(body: Received["body"]): { emailAddress: string; historyId: string } {
  const data = JSON.parse(Buffer.from(body.message.data, "base64").toString("utf8")) as {
    emailAddress: string;
    historyId: number;
  };
  // Gmail's payload carries historyId as a JSON number; the API's historyId fields are strings.
  return { emailAddress: data.emailAddress, historyId: String(data.historyId) };
}

/** Verifies the push's bearer token the way a subscriber does with google-auth-library. */
async function verifyPush(
  certsUrl: string,
  authorization: string,
  audience: string,
  serviceAccount: string,
): Promise<boolean> {
  const certs = (await (await fetch(certsUrl)).json()) as Record<string, string>;
  try {
    const ticket = await new OAuth2Client().verifySignedJwtWithCertsAsync(
      authorization.replace(/^Bearer /, ""),
      certs,
      audience,
      ["https://accounts.google.com", "accounts.google.com"],
    );
    const payload = ticket.getPayload();
    return payload?.email === serviceAccount && payload.email_verified === true;
  } catch {
    return false;
  }
}

interface Received {
  at: number;
  authorization: string;
  body: {
    message: {
      data: string;
      messageId: string;
      message_id: string;
      publishTime: string;
      publish_time: string;
      attributes?: unknown;
    };
    subscription: string;
  };
}

let receiver: Server;
let endpoint: string;
let received: Received[] = [];
/** Status the receiver answers with, per call index (default 204). */
let answer: (n: number) => number = () => 204;

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let data = "";
    req.on("data", (c: Buffer) => (data += c.toString()));
    req.on("end", () => {
      received.push({ at: Date.now(), authorization: req.headers.authorization ?? "", body: JSON.parse(data) });
      res.statusCode = answer(received.length);
      res.end();
    });
  });
  await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", r));
  endpoint = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/push`;
});
afterAll(async () => {
  await new Promise((r) => receiver.close(r));
});

const emulators: Emulator[] = [];
afterEach(async () => {
  await Promise.all(emulators.splice(0).map((e) => e.close()));
  received = [];
  answer = () => 204;
});

async function watched(opts: Parameters<typeof startEmulator>[0] = {}) {
  const emu = await startEmulator({ seed: 11, pushEndpoint: endpoint, pushMinBackoffMs: 50, ...opts });
  emulators.push(emu);
  const { api } = await clientFor(emu);
  const watch = (
    await api.users.watch({
      userId: "me",
      requestBody: { topicName: "projects/demo/topics/gmail", labelIds: ["INBOX"], labelFilterBehavior: "INCLUDE" },
    })
  ).data;
  return { emu, api, watch };
}

async function until(cond: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!cond()) {
    if (Date.now() > end) throw new Error("timed out waiting");
    await new Promise((r) => setTimeout(r, 20));
  }
}

describe("push", () => {
  it("sends Google's envelope with an OIDC JWT that verifies against the emulator's keys only", async () => {
    const { emu, watch } = await watched();
    expect(watch.historyId).toMatch(/^\d+$/);
    expect(Number(watch.expiration) - Date.now()).toBeGreaterThan(6 * 86_400_000);
    // A successful watch sends one notification at once.
    await until(() => received.length === 1);
    const first = received[0] as Received;
    expect(first.body.subscription).toMatch(/^projects\/[^/]+\/subscriptions\/[^/]+$/);
    expect(first.body.message.messageId).toBe(first.body.message.message_id);
    expect(first.body.message.publishTime).toBe(first.body.message.publish_time);
    expect(first.body.message.attributes).toBeUndefined();
    expect(JSON.parse(Buffer.from(first.body.message.data, "base64").toString())).toEqual({
      emailAddress: "alice@example.com",
      historyId: Number(watch.historyId),
    });
    expect(decodePushEnvelope(first.body)).toMatchObject({
      emailAddress: "alice@example.com",
      historyId: watch.historyId,
    });

    // google-auth-library's verification over the PEM certs accepts it, for this audience only.
    expect(await verifyPush(emu.certsUrl, first.authorization, endpoint, emu.pushServiceAccount)).toBe(true);
    expect(
      await verifyPush(emu.certsUrl, first.authorization, "https://elsewhere.example", emu.pushServiceAccount),
    ).toBe(false);

    // Claims and signature against the JWKS.
    const [h, p, s] = first.authorization.replace(/^Bearer /, "").split(".") as [string, string, string];
    const header = JSON.parse(Buffer.from(h, "base64url").toString());
    const claims = JSON.parse(Buffer.from(p, "base64url").toString());
    expect(header).toMatchObject({ alg: "RS256", typ: "JWT" });
    expect(claims).toMatchObject({
      iss: "https://accounts.google.com",
      aud: endpoint,
      email: emu.pushServiceAccount,
      email_verified: true,
    });
    expect(claims.exp - claims.iat).toBe(3600);
    const jwks = (await (await fetch(emu.jwksUrl)).json()) as { keys: Array<{ kid: string }> };
    const jwk = jwks.keys.find((k) => k.kid === header.kid);
    expect(jwk).toBeDefined();
    const signed = Buffer.from(`${h}.${p}`);
    expect(
      verify("sha256", signed, createPublicKey({ key: jwk as never, format: "jwk" }), Buffer.from(s, "base64url")),
    ).toBe(true);
    const other = generateKeyPairSync("rsa", { modulusLength: 2048 }).publicKey;
    expect(verify("sha256", signed, other, Buffer.from(s, "base64url"))).toBe(false);

    // Another emulator's certs (another key) refuse the token.
    const stranger = await startEmulator({ seed: 12 });
    emulators.push(stranger);
    expect(await verifyPush(stranger.certsUrl, first.authorization, endpoint, emu.pushServiceAccount)).toBe(false);
  });

  it("notifies at most once per second per user, with the latest history id", async () => {
    const { emu } = await watched();
    await until(() => received.length === 1);
    for (let i = 0; i < 5; i++) await emu.control.deliver("alice@example.com", {});
    await until(() => received.length === 2);
    await new Promise((r) => setTimeout(r, 300));
    expect(received).toHaveLength(2);
    // Spaced a second apart when sent; arrival times carry the delivery jitter of a loaded host
    // (the first POST may arrive late), hence the margin.
    expect((received[1] as Received).at - (received[0] as Received).at).toBeGreaterThanOrEqual(900);
    const latest = (await emu.control.mailbox("alice@example.com")).historyId;
    expect(decodePushEnvelope((received[1] as Received).body).historyId).toBe(latest);
  });

  it("follows the watch's label filter and stops after users.stop", async () => {
    const { emu, api } = await watched();
    await until(() => received.length === 1);
    await emu.control.deliver("alice@example.com", { labelIds: ["SPAM"] });
    await new Promise((r) => setTimeout(r, 1200));
    expect(received).toHaveLength(1);
    await api.users.stop({ userId: "me" });
    await emu.control.deliver("alice@example.com", { labelIds: ["INBOX"] });
    await new Promise((r) => setTimeout(r, 1200));
    expect(received).toHaveLength(1);
  });

  it("matches the label filter against every entry of a multi-message record", async () => {
    // Counts notifications per change: the extra records holding only `messages` would add their own.
    const { emu } = await watched({ historyMessagesOnlyRate: 0 });
    const { api: modifier } = await clientFor(emu, "alice@example.com", [
      "https://www.googleapis.com/auth/gmail.modify",
    ]);
    await until(() => received.length === 1);
    const sentAlone = await emu.control.deliver("alice@example.com", {
      raw: Buffer.from(
        "From: alice@example.com\r\nTo: x@example.net\r\nSubject: alone\r\nMessage-ID: <alone@example.com>\r\n\r\nhi\r\n",
      ),
      labelIds: ["SENT"],
    });
    const sent = await emu.control.deliver("alice@example.com", {
      raw: Buffer.from(
        "From: alice@example.com\r\nTo: x@example.net\r\nSubject: q\r\nMessage-ID: <q@example.com>\r\n\r\nhi\r\n",
      ),
      labelIds: ["SENT"],
    });
    await new Promise((r) => setTimeout(r, 1100));
    expect(received).toHaveLength(1); // nothing with INBOX yet
    await emu.control.deliver("alice@example.com", {
      raw: Buffer.from(
        "From: x@example.net\r\nTo: alice@example.com\r\nSubject: Re: q\r\nIn-Reply-To: <q@example.com>\r\n\r\nyes\r\n",
      ),
      labelIds: ["INBOX"],
    });
    await until(() => received.length === 2);
    await new Promise((r) => setTimeout(r, 1100));
    // A record touching only a message outside INBOX: no notification.
    await modifier.users.messages.modify({ userId: "me", id: sentAlone.id, requestBody: { addLabelIds: ["STARRED"] } });
    await new Promise((r) => setTimeout(r, 1100));
    expect(received).toHaveLength(2);
    // One record for the thread: its second entry is in INBOX, so it is notified.
    await modifier.users.threads.modify({ userId: "me", id: sent.threadId, requestBody: { addLabelIds: ["STARRED"] } });
    await until(() => received.length === 3);
  });

  it("redelivers the same message after a non-2xx answer", async () => {
    answer = (n) => (n === 1 ? 503 : 200);
    const { emu } = await watched();
    await until(() => received.length === 2);
    expect((received[1] as Received).body.message.messageId).toBe((received[0] as Received).body.message.messageId);
    const stats = await emu.control.stats();
    expect(stats.pushes).toMatchObject({ sent: 2, acked: 1, nacked: 1 });
  });

  it("drops and duplicates at the configured rates", async () => {
    // One record per delivery, so one notification to drop (a record holding only `messages` would add one).
    const { emu } = await watched({ pushDuplicateRate: 1, historyMessagesOnlyRate: 0 });
    await until(() => received.length === 2);
    expect((received[1] as Received).body.message.messageId).toBe((received[0] as Received).body.message.messageId);
    await emu.control.updateSettings({ pushDuplicateRate: 0, pushDropRate: 1 });
    await new Promise((r) => setTimeout(r, 1000));
    await emu.control.deliver("alice@example.com", {});
    await new Promise((r) => setTimeout(r, 1100));
    expect(received).toHaveLength(2);
    expect((await emu.control.stats()).pushes).toMatchObject({ duplicated: 1, dropped: 1 });
  });

  it("delays deliveries by pushDelayMs", async () => {
    const before = Date.now();
    await watched({ pushDelayMs: 400 });
    await until(() => received.length === 1);
    expect((received[0] as Received).at - before).toBeGreaterThanOrEqual(400);
  });

  it("rejects a malformed topic name", async () => {
    const emu = await startEmulator({ seed: 13 });
    emulators.push(emu);
    const { api } = await clientFor(emu);
    await expect(api.users.watch({ userId: "me", requestBody: { topicName: "gmail" } })).rejects.toMatchObject({
      status: 400,
    });
  });
});
