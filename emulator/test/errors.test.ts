// Error shapes as Gmail sends them, compared with recorded answers (../shared/gmail-real-samples,
// read in place): 401 "Login Required." with details[] ErrorInfo, 401 "Invalid Credentials", 403
// insufficient scope with ErrorInfo, 403 metadata scope + q, 403 watch on a topic without the
// publisher grant; Google's HTML 404 for a path no API serves; and Gmail's JSON serialization
// (pretty, `<` `>` escaped) for answers and errors alike.
import { gmail, type gmail_v1 } from "@googleapis/gmail";
import type { OAuth2Client } from "google-auth-library";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { GMAIL_SCOPES } from "../src/oauth.ts";
import { startEmulator, type Emulator } from "../src/server.ts";
import { clientFor, rawGet } from "./helpers.ts";
import { loadSample, samplesPresent, shapeDiff, shapeOf } from "./sample-shape.ts";

const EMAIL = "alice@example.com";
let emu: Emulator;
let api: gmail_v1.Gmail;
let auth: OAuth2Client;

beforeAll(async () => {
  emu = await startEmulator({ seed: 4, messages: 3, attachments: false });
  ({ api, auth } = await clientFor(emu));
});
afterAll(async () => {
  await emu.close();
});

interface GaxiosLike {
  status: number;
  response: { data: { error: Record<string, unknown> }; headers: Headers | Record<string, string> };
}

async function failure(p: Promise<unknown>): Promise<GaxiosLike> {
  const err = await p.then(
    () => undefined,
    (e: unknown) => e,
  );
  expect(err, "the call should have failed").toBeDefined();
  return err as GaxiosLike;
}

/** Differences from the recorded body's structure (empty when the samples are absent). */
function diffFromSample(served: unknown, sample: string): string[] {
  const recorded = loadSample(sample);
  return recorded ? shapeDiff(served, shapeOf(recorded.body)) : [];
}

describe("401", () => {
  it.skipIf(!samplesPresent)(
    "no token: 'Login Required.' with details[] ErrorInfo CREDENTIALS_MISSING naming the method, as recorded",
    async () => {
      const anonymous = gmail({ version: "v1", rootUrl: emu.gmailRootUrl });
      const err = await failure(anonymous.users.history.list({ userId: "me", startHistoryId: "1" }));
      expect(err.status).toBe(401);
      const body = err.response.data;
      expect(diffFromSample(body, "error_401_missing_credentials.json")).toEqual([]);
      expect(body.error).toEqual({
        code: 401,
        message:
          "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential. See https://developers.google.com/identity/sign-in/web/devconsole-project.",
        errors: [
          {
            message: "Login Required.",
            domain: "global",
            reason: "required",
            location: "Authorization",
            locationType: "header",
          },
        ],
        status: "UNAUTHENTICATED",
        details: [
          {
            "@type": "type.googleapis.com/google.rpc.ErrorInfo",
            reason: "CREDENTIALS_MISSING",
            domain: "googleapis.com",
            metadata: { method: "caribou.api.proto.MailboxService.ListHistory", service: "gmail.googleapis.com" },
          },
        ],
      });
    },
  );

  it.skipIf(!samplesPresent)("a bad token: 'Invalid Credentials', no details[], as recorded", async () => {
    const res = await fetch(`${emu.url}/gmail/v1/users/me/messages`, {
      headers: { authorization: "Bearer ya29.nope" },
    });
    expect(res.status).toBe(401);
    expect(res.headers.get("www-authenticate")).toBe(
      'Bearer realm="https://accounts.google.com/", error="invalid_token"',
    );
    const body = (await res.json()) as { error: Record<string, unknown> };
    expect(diffFromSample(body, "error_401_invalid_credentials.json")).toEqual([]);
    expect(body.error.details).toBeUndefined();
  });
});

describe("403", () => {
  it.skipIf(!samplesPresent)("metadata scope with q, as recorded", async () => {
    const { api: metadataApi } = await clientFor(emu, EMAIL, [GMAIL_SCOPES.metadata]);
    const err = await failure(metadataApi.users.messages.list({ userId: "me", q: "from:bob" }));
    expect(err.status).toBe(403);
    expect(diffFromSample(err.response.data, "error_403_metadata_scope_q.json")).toEqual([]);
    expect(err.response.data.error.message).toBe("Metadata scope does not support 'q' parameter");
  });

  it("insufficient scope: details[] ErrorInfo ACCESS_TOKEN_SCOPE_INSUFFICIENT naming the method (googleworkspace/php-samples#123)", async () => {
    const { api: labelsApi } = await clientFor(emu, EMAIL, [GMAIL_SCOPES.labels]);
    const err = await failure(labelsApi.users.messages.list({ userId: "me" }));
    expect(err.status).toBe(403);
    expect(err.response.data.error).toMatchObject({
      code: 403,
      message: "Request had insufficient authentication scopes.",
      errors: [{ message: "Insufficient Permission", domain: "global", reason: "insufficientPermissions" }],
      status: "PERMISSION_DENIED",
      details: [
        {
          "@type": "type.googleapis.com/google.rpc.ErrorInfo",
          reason: "ACCESS_TOKEN_SCOPE_INSUFFICIENT",
          domain: "googleapis.com",
          metadata: { method: "caribou.api.proto.MailboxService.ListMessages", service: "gmail.googleapis.com" },
        },
      ],
    });
  });

  it("watch on a topic lacking the publisher grant (unauthorizedTopics): 'Error sending test message to Cloud PubSub …'; other topics are watched", async () => {
    const locked = "projects/acme/topics/locked";
    await emu.control.updateSettings({ unauthorizedTopics: [locked] });
    try {
      const err = await failure(api.users.watch({ userId: "me", requestBody: { topicName: locked } }));
      expect(err.status).toBe(403);
      expect(diffFromSample(err.response.data, "error_403_watch_pubsub_not_authorized.json")).toEqual([]);
      expect(err.response.data.error).toEqual({
        code: 403,
        message: `Error sending test message to Cloud PubSub ${locked} : User not authorized to perform this action.`,
        errors: [
          {
            message: `Error sending test message to Cloud PubSub ${locked} : User not authorized to perform this action.`,
            domain: "global",
            reason: "forbidden",
          },
        ],
        status: "PERMISSION_DENIED",
      });
      const ok = await api.users.watch({ userId: "me", requestBody: { topicName: "projects/acme/topics/open" } });
      expect(ok.data.historyId).toMatch(/^\d+$/);
    } finally {
      await emu.control.updateSettings({ unauthorizedTopics: [] });
    }
    const ok = await api.users.watch({ userId: "me", requestBody: { topicName: locked } });
    expect(ok.status).toBe(200);
    await api.users.stop({ userId: "me" });
  });
});

describe("paths no API serves", () => {
  it("answer Google's HTML 404 page, not JSON", async () => {
    const res = await rawGet(emu, auth, "/gmail/v1/users/me/no-such-collection?x=1");
    expect(res.status).toBe(404);
    expect(res.headers.get("content-type")).toBe("text/html; charset=UTF-8");
    const html = await res.text();
    expect(html).toContain("<title>Error 404 (Not Found)!!1</title>");
    expect(html).toContain(
      "The requested URL <code>/gmail/v1/users/me/no-such-collection</code> was not found on this server.",
    );
  });
});

describe("JSON as Gmail writes it", () => {
  it("answers and errors are pretty-printed with < and > escaped; prettyPrint=false or prettyJson off gives compact JSON", async () => {
    const profile = await rawGet(emu, auth, "/gmail/v1/users/me/profile");
    const text = await profile.text();
    expect(text).toBe(JSON.stringify(JSON.parse(text), null, 2));
    expect(text).toContain('{\n  "emailAddress": "alice@example.com",\n');

    // An error echoing the request's text: angle brackets escaped, as Gmail's are.
    const bad = await rawGet(
      emu,
      auth,
      `/gmail/v1/users/me/messages/${(await emu.control.mailbox(EMAIL)).messages[0]?.id}?format=${encodeURIComponent("<b>")}`,
    );
    expect(bad.status).toBe(400);
    const errText = await bad.text();
    expect(errText).toContain("\\u003cb\\u003e");
    expect(errText).not.toContain("<b>");
    expect(errText).toMatch(/^{\n {2}"error": {\n {4}"code": 400,/);
    expect((JSON.parse(errText) as { error: { message: string } }).error.message).toContain("<b>");

    const compact = await (await rawGet(emu, auth, "/gmail/v1/users/me/profile?prettyPrint=false")).text();
    expect(compact).toBe(JSON.stringify(JSON.parse(compact)));
    await emu.control.updateSettings({ prettyJson: false });
    try {
      const plain = await (await rawGet(emu, auth, "/gmail/v1/users/me/profile")).text();
      expect(plain).toBe(JSON.stringify(JSON.parse(plain)));
      const plainErr = await (await fetch(`${emu.url}/gmail/v1/users/me/profile`)).text();
      expect(plainErr).toBe(JSON.stringify(JSON.parse(plainErr)));
    } finally {
      await emu.control.updateSettings({ prettyJson: true });
    }
    // The real client reads pretty JSON as any JSON.
    expect((await api.users.getProfile({ userId: "me" })).data.emailAddress).toBe(EMAIL);
  });
});
