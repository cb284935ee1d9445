// HTTP batch (limits, per-part answers, LF and CRLF, Google's framing, parts fanned out against the
// concurrency cap), the strict per-second quota mode with the "retry-after" forms (429 +
// Retry-After + "Retry after <timestamp>", legacy 403), the concurrency cap, and injected faults.
// The minute window and Gmail's mixed refusal forms are in quota.test.ts.
import type { OAuth2Client } from "google-auth-library";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { startEmulator, type Emulator } from "../src/server.ts";
import { clientFor } from "./helpers.ts";

let emu: Emulator;
let auth: OAuth2Client;
let token: string;
let ids: string[];

beforeAll(async () => {
  emu = await startEmulator({ seed: 5, messages: 30, attachments: false });
  ({ auth } = await clientFor(emu));
  token = (await auth.getAccessToken()).token as string;
  ids = (await emu.control.mailbox("alice@example.com")).messages.map((m) => m.id);
});
afterAll(async () => {
  await emu.close();
});

function batchBody(paths: string[], eol: string, boundary: string): string {
  const parts = paths.map((p, i) =>
    [
      `--${boundary}`,
      "Content-Type: application/http",
      `Content-ID: <${i + 1}>`,
      "",
      `GET ${p} HTTP/1.1`,
      "Accept: application/json",
      "",
      "",
    ].join(eol),
  );
  return `${parts.join("")}--${boundary}--${eol}`;
}

async function postBatch(path: string, body: string, contentType: string): Promise<Response> {
  return fetch(emu.url + path, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": contentType },
    body,
  });
}

interface PartAnswer {
  contentId: string | undefined;
  status: number;
  headers: Record<string, string>;
  json: unknown;
}

function parseAnswer(res: Response, text: string): PartAnswer[] {
  const boundary = /boundary=([^;]+)/.exec(res.headers.get("content-type") ?? "")?.[1] as string;
  return text
    .split(`--${boundary}`)
    .slice(1, -1)
    .map((chunk) => {
      const [outer = "", status = "", ...rest] = chunk.split("\r\n\r\n");
      const [statusLine = "", ...headerLines] = status.split("\r\n");
      const headers = Object.fromEntries(
        headerLines.map((l) => [l.slice(0, l.indexOf(":")).toLowerCase(), l.slice(l.indexOf(":") + 1).trim()]),
      );
      return {
        contentId: /Content-ID: <([^>]+)>/.exec(outer)?.[1],
        status: Number(statusLine.split(" ")[1]),
        headers,
        json: JSON.parse(rest.join("\r\n\r\n").trim() || "null"),
      };
    });
}

describe("batch", () => {
  it("answers a 50-part batch part by part, in order, with per-part errors (LF, quoted boundary, /batch)", async () => {
    // Focused on framing and order: parts are not refused for concurrency here (see the fan-out test).
    await emu.control.updateSettings({ maxConcurrentPerUser: 0 });
    const paths = Array.from({ length: 50 }, (_, i) =>
      i === 7
        ? "/gmail/v1/users/me/messages/00000000000000aa"
        : i === 8
          ? "/gmail/v1/users/me/messages/nothex"
          : `/gmail/v1/users/me/messages/${ids[i % ids.length]}?format=minimal`,
    );
    const res = await postBatch("/batch", batchBody(paths, "\n", "b0und"), 'multipart/mixed; boundary="b0und"');
    expect(res.status).toBe(200);
    const parts = parseAnswer(res, await res.text());
    expect(parts).toHaveLength(50);
    expect(parts.map((p) => p.contentId)).toEqual(paths.map((_, i) => `response-${i + 1}`));
    expect(parts[7]?.status).toBe(404);
    expect(parts[8]?.status).toBe(400);
    expect((parts[8]!.json as { error: { message: string } }).error.message).toBe("Invalid id value");
    for (const [i, p] of parts.entries())
      if (i !== 7 && i !== 8) expect((p.json as { id: string }).id).toBe(ids[i % ids.length]);
    const stats = await emu.control.stats();
    expect(stats.requests["gmail.users.messages.get"]?.["200"]).toBeGreaterThanOrEqual(48);
    await emu.control.updateSettings({ maxConcurrentPerUser: 10 });
  });

  it("fans a batch's parts out at once: over the per-user cap of 10 in flight, parts answer 429 'Too many concurrent requests for user' (domain global) inside a 200", async () => {
    const paths = Array.from(
      { length: 25 },
      (_, i) => `/gmail/v1/users/me/messages/${ids[i % ids.length]}?format=minimal`,
    );
    const res = await postBatch("/batch", batchBody(paths, "\r\n", "fan"), "multipart/mixed; boundary=fan");
    expect(res.status).toBe(200);
    const parts = parseAnswer(res, await res.text());
    expect(parts.filter((p) => p.status === 200)).toHaveLength(10);
    const refused = parts.filter((p) => p.status === 429);
    expect(refused).toHaveLength(15);
    expect((refused[0]!.json as { error: unknown }).error).toEqual({
      code: 429,
      message: "Too many concurrent requests for user",
      errors: [{ message: "Too many concurrent requests for user", domain: "global", reason: "rateLimitExceeded" }],
      status: "RESOURCE_EXHAUSTED",
    });
    // Gmail is not known to send Retry-After; its default forms carry none.
    expect(refused[0]?.headers["retry-after"]).toBeUndefined();
    expect((await emu.control.stats()).rateLimitedByForm.tooManyConcurrent).toBeGreaterThanOrEqual(15);

    // Off by name: parts answered one at a time, or no cap at all, and every part is served.
    for (const off of [{ batchPartParallelism: 1 }, { maxConcurrentPerUser: 0 }]) {
      await emu.control.updateSettings(off);
      const again = await postBatch("/batch", batchBody(paths, "\r\n", "fan"), "multipart/mixed; boundary=fan");
      expect(parseAnswer(again, await again.text()).map((p) => p.status)).toEqual(paths.map(() => 200));
      await emu.control.updateSettings({ batchPartParallelism: 100, maxConcurrentPerUser: 10 });
    }
  });

  it("frames answers as Google does: Content-ID response-<id> (brackets only if the request had them), an HTTP/1.1 status line, a blank line before the next boundary", async () => {
    const b = "frm";
    const part = (cid: string | undefined, path: string) =>
      [
        `--${b}`,
        "Content-Type: application/http",
        ...(cid !== undefined ? [`Content-ID: ${cid}`] : []),
        "",
        `GET ${path}`,
        "",
        "",
      ].join("\r\n");
    const body = `${part("<a1>", "/gmail/v1/users/me/profile") + part("b2", "/gmail/v1/users/me/profile") + part(undefined, "/gmail/v1/users/me/labels")}--${b}--\r\n`;
    const res = await postBatch("/batch", body, `multipart/mixed; boundary=${b}`);
    const text = await res.text();
    const boundary = /boundary=([^;]+)/.exec(res.headers.get("content-type") ?? "")?.[1] as string;
    const chunks = text.split(`--${boundary}`).slice(1, -1);
    expect(chunks.map((c) => /Content-ID: (.*)\r\n/.exec(c)?.[1])).toEqual([
      "<response-a1>",
      "response-b2",
      "response-",
    ]);
    for (const c of chunks) {
      expect(c).toMatch(
        /^\r\nContent-Type: application\/http\r\nContent-ID: [^\r]*\r\n\r\nHTTP\/1\.1 200 OK\r\nContent-Type: application\/json; charset=UTF-8\r\n/,
      );
      // The pretty JSON body, then an empty line, then the next boundary.
      expect(c).toMatch(/\n}\r\n\r\n$/);
    }
  });

  it("applies the outer query (prettyPrint=false) to every part", async () => {
    const res = await postBatch(
      "/batch?prettyPrint=false",
      batchBody(["/gmail/v1/users/me/profile", "/gmail/v1/users/me/profile?prettyPrint=true"], "\r\n", "pp"),
      "multipart/mixed; boundary=pp",
    );
    const text = await res.text();
    expect(text).toContain('{"emailAddress":"alice@example.com"');
    expect(text).toContain('{\n  "emailAddress": "alice@example.com"');
  });

  it("accepts CRLF and a bare boundary at /batch/gmail/v1", async () => {
    const res = await postBatch(
      "/batch/gmail/v1",
      batchBody(
        [
          "/gmail/v1/users/me/profile",
          `/gmail/v1/users/me/messages/${ids[0]}?format=metadata&metadataHeaders=Subject`,
          "https://gmail.googleapis.com/gmail/v1/users/me/profile",
          "/batch",
        ],
        "\r\n",
        "xyz",
      ),
      "multipart/mixed; boundary=xyz",
    );
    const parts = parseAnswer(res, await res.text());
    expect(parts.map((p) => p.status)).toEqual([200, 200, 400, 400]);
    expect((parts[0]!.json as { emailAddress: string }).emailAddress).toBe("alice@example.com");
  });

  it("refuses a batch over 100 parts", async () => {
    const paths = Array.from({ length: 200 }, () => "/gmail/v1/users/me/profile");
    const res = await postBatch("/batch", batchBody(paths, "\r\n", "big"), "multipart/mixed; boundary=big");
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { message: string } }).error.message).toBe(
      "Inner request count exceeds the limit. Received: 200, Limit: 100",
    );
  });
});

describe("quota", () => {
  it("answers 429 with Retry-After and Gmail's text under a burst, charging batch parts one by one", async () => {
    await emu.control.updateSettings({ quotaUnitsPerSecond: 20, quotaErrorForms: "retry-after" });
    try {
      const before = (await emu.control.stats()).quotaUnits["alice@example.com"] ?? 0;
      const answers = await Promise.all(
        Array.from({ length: 8 }, () =>
          fetch(`${emu.url}/gmail/v1/users/me/messages/${ids[0]}`, { headers: { authorization: `Bearer ${token}` } }),
        ),
      );
      const statuses = answers.map((r) => r.status);
      // 20 units of burst / 5 per get = 4, plus whatever refilled while the burst arrived (a loaded machine).
      const ok = statuses.filter((s) => s === 200).length;
      expect(ok).toBeGreaterThanOrEqual(4);
      expect(ok).toBeLessThanOrEqual(6);
      expect(statuses.filter((s) => s === 429)).toHaveLength(8 - ok);
      const limited = answers.find((r) => r.status === 429) as Response;
      expect(Number(limited.headers.get("retry-after"))).toBeGreaterThanOrEqual(1);
      const body = (await limited.json()) as {
        error: { message: string; status: string; errors: Array<{ reason: string; domain: string }> };
      };
      expect(body.error.message).toMatch(
        /^User-rate limit exceeded\. {2}Retry after \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/,
      );
      expect(body.error.status).toBe("RESOURCE_EXHAUSTED");
      expect(body.error.errors[0]).toMatchObject({ reason: "rateLimitExceeded", domain: "usageLimits" });
      const stats = await emu.control.stats();
      expect(stats.rateLimited).toBeGreaterThanOrEqual(8 - ok);
      expect((stats.quotaUnits["alice@example.com"] ?? 0) - before).toBe(5 * ok);

      // Refilled after a second: of 40 history.list parts (2 units each, 80 in all) the bucket's
      // 20 units pay for 10 (plus any refill while the batch runs); the rest are 429 part by part
      // (parts answered 10 at a time here, so the concurrency cap does not refuse them first).
      await new Promise((r) => setTimeout(r, 1100));
      await emu.control.updateSettings({ batchPartParallelism: 10 });
      const start = (await emu.control.mailbox("alice@example.com")).historyId;
      const res = await postBatch(
        "/batch",
        batchBody(
          Array.from({ length: 40 }, () => `/gmail/v1/users/me/history?startHistoryId=${start}`),
          "\r\n",
          "q",
        ),
        "multipart/mixed; boundary=q",
      );
      expect(res.status).toBe(200);
      const parts = parseAnswer(res, await res.text());
      expect(parts.filter((p) => p.status === 200).length).toBeGreaterThanOrEqual(10);
      expect(parts.filter((p) => p.status === 429).length).toBeGreaterThanOrEqual(20);
      expect(parts.find((p) => p.status === 429)?.headers["retry-after"]).toMatch(/^\d+$/);
    } finally {
      await emu.control.updateSettings({ quotaUnitsPerSecond: 0, quotaErrorForms: "gmail", batchPartParallelism: 100 });
    }
  });

  it("can answer quota errors in Gmail's legacy 403 userRateLimitExceeded form", async () => {
    await emu.control.updateSettings({ quotaUnitsPerSecond: 5, quotaErrorForms: "retry-after", quotaErrorStatus: 403 });
    try {
      const answers = await Promise.all(
        Array.from({ length: 3 }, () =>
          fetch(`${emu.url}/gmail/v1/users/me/messages/${ids[0]}`, { headers: { authorization: `Bearer ${token}` } }),
        ),
      );
      const limited = answers.filter((r) => r.status === 403);
      expect(limited.length).toBeGreaterThanOrEqual(1);
      expect(
        ((await (limited[0] as Response).json()) as { error: { errors: Array<{ reason: string }> } }).error.errors[0]
          ?.reason,
      ).toBe("userRateLimitExceeded");
    } finally {
      await emu.control.updateSettings({ quotaUnitsPerSecond: 0, quotaErrorForms: "gmail", quotaErrorStatus: 429 });
    }
  });

  it("caps concurrent requests per user (plain requests)", async () => {
    // Each request stays in flight 500 ms, so the 14 sent at once overlap (even on a loaded machine).
    await emu.control.updateSettings({ latencyMs: 500 });
    try {
      const answers = await Promise.all(
        Array.from({ length: 14 }, () =>
          fetch(`${emu.url}/gmail/v1/users/me/profile`, { headers: { authorization: `Bearer ${token}` } }),
        ),
      );
      const limited = answers.filter((r) => r.status === 429);
      expect(answers.filter((r) => r.status === 200)).toHaveLength(10);
      expect(limited).toHaveLength(4);
      expect(((await (limited[0] as Response).json()) as { error: { message: string } }).error.message).toBe(
        "Too many concurrent requests for user",
      );
      // Off by name: no cap.
      await emu.control.updateSettings({ maxConcurrentPerUser: 0 });
      const uncapped = await Promise.all(
        Array.from({ length: 14 }, () =>
          fetch(`${emu.url}/gmail/v1/users/me/profile`, { headers: { authorization: `Bearer ${token}` } }),
        ),
      );
      expect(uncapped.map((r) => r.status)).toEqual(uncapped.map(() => 200));
    } finally {
      await emu.control.updateSettings({ latencyMs: 0, maxConcurrentPerUser: 10 });
    }
  });
});

describe("faults", () => {
  it("injects 500/503 backendError and dropped connections at the fault rate", async () => {
    await emu.control.updateSettings({ faultRate: 1 });
    try {
      const seen = new Set<string>();
      for (let i = 0; i < 25; i++) {
        try {
          const r = await fetch(`${emu.url}/gmail/v1/users/me/profile`, {
            headers: { authorization: `Bearer ${token}` },
          });
          const body = (await r.json()) as { error: { errors: Array<{ reason: string }> } };
          expect(body.error.errors[0]?.reason).toBe("backendError");
          seen.add(String(r.status));
        } catch {
          seen.add("dropped");
        }
      }
      expect(seen).toEqual(new Set(["500", "503", "dropped"]));
    } finally {
      await emu.control.updateSettings({ faultRate: 0 });
    }
    const ok = await fetch(`${emu.url}/gmail/v1/users/me/profile`, { headers: { authorization: `Bearer ${token}` } });
    expect(ok.status).toBe(200);
  });
});
