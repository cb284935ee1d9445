// Races and faults seen in the field: a just-added message answering 404 for a moment (Gmail's
// post-push race: byeokim/gmailpush#10, openclaw/gogcli#379), faults hitting single parts inside a
// batch that answers 200 (got-your-back#544), and the batch POST itself answered with Google's HTML
// error page (the retired global batch endpoint).
import type { gmail_v1 } from "@googleapis/gmail";
import type { OAuth2Client } from "google-auth-library";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { unitHash } from "../src/added-race.ts";
import { startEmulator, type Emulator } from "../src/server.ts";
import { clientFor, compose, rawGet } from "./helpers.ts";

const EMAIL = "alice@example.com";
const SEED = 21;
let emu: Emulator;
let api: gmail_v1.Gmail;
let auth: OAuth2Client;
let token: string;
/** The mailbox as generated at start, before any test delivers (and may race) new mail. */
let generatedIds: string[];

beforeAll(async () => {
  emu = await startEmulator({ seed: SEED, messages: 5, attachments: false });
  ({ api, auth } = await clientFor(emu));
  token = (await auth.getAccessToken()).token as string;
  generatedIds = (await emu.control.mailbox(EMAIL)).messages.map((m) => m.id);
});
afterAll(async () => {
  await emu.close();
});

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

const NOT_FOUND = {
  error: {
    code: 404,
    message: "Requested entity was not found.",
    errors: [{ message: "Requested entity was not found.", domain: "global", reason: "notFound" }],
    status: "NOT_FOUND",
  },
};

async function withAttachment(subject: string): Promise<Buffer> {
  return compose({
    from: "bob@example.net",
    to: EMAIL,
    subject,
    text: "see attached",
    attachments: [{ filename: "notes.txt", content: "n".repeat(3000), contentType: "text/plain" }],
  });
}

describe("post-push race (addedNotFoundRate, addedNotFoundWindowMs)", () => {
  it("a just-added message answers 404 to messages.get and attachments.get and is left out of threads.get, while messages.list and history show it; after the window it is served", async () => {
    await emu.control.updateSettings({ addedNotFoundRate: 1, addedNotFoundWindowMs: 1500 });
    try {
      const start = (await emu.control.mailbox(EMAIL)).historyId;
      const { id, threadId } = await emu.control.deliver(EMAIL, { raw: await withAttachment("first") });
      const res = await rawGet(emu, auth, `/gmail/v1/users/me/messages/${id}`);
      expect(res.status).toBe(404);
      expect(await res.json()).toEqual(NOT_FOUND);
      // The client sees a plain 404 (not retried).
      await expect(api.users.messages.get({ userId: "me", id })).rejects.toMatchObject({ status: 404 });
      expect((await rawGet(emu, auth, `/gmail/v1/users/me/threads/${threadId}`)).status).toBe(404);
      const listed = await api.users.messages.list({ userId: "me" });
      expect(listed.data.messages?.map((m) => m.id)).toContain(id);
      const history = await api.users.history.list({ userId: "me", startHistoryId: start });
      expect(history.data.history?.flatMap((h) => (h.messagesAdded ?? []).map((a) => a.message?.id))).toContain(id);

      // A reply in the same thread races while the first message (its window over) is served.
      await sleep(1600);
      const reply = await emu.control.deliver(EMAIL, {
        raw: await compose({
          from: "bob@example.net",
          to: EMAIL,
          subject: "Re: first",
          inReplyTo:
            (await api.users.messages.get({ userId: "me", id, format: "metadata", metadataHeaders: ["Message-ID"] }))
              .data.payload?.headers?.[0]?.value ?? "",
          text: "reply",
        }),
      });
      const thread = await api.users.threads.get({ userId: "me", id: reply.threadId, format: "minimal" });
      expect(reply.threadId).toBe(threadId);
      expect(thread.data.messages?.map((m) => m.id)).toEqual([id]);

      // attachments.get races too: a window made long again covers the first message.
      const full = await api.users.messages.get({ userId: "me", id });
      const attachmentId = full.data.payload?.parts?.find((p) => p.filename === "notes.txt")?.body
        ?.attachmentId as string;
      expect((await rawGet(emu, auth, `/gmail/v1/users/me/messages/${id}/attachments/${attachmentId}`)).status).toBe(
        200,
      );
      await emu.control.updateSettings({ addedNotFoundWindowMs: 60_000 });
      const raced = await rawGet(emu, auth, `/gmail/v1/users/me/messages/${id}/attachments/${attachmentId}`);
      expect(raced.status).toBe(404);
      expect(await raced.json()).toEqual(NOT_FOUND);
      await emu.control.updateSettings({ addedNotFoundWindowMs: 1500 });
      await sleep(1600);
      const both = await api.users.threads.get({ userId: "me", id: threadId, format: "minimal" });
      expect(both.data.messages?.map((m) => m.id)).toEqual([id, reply.id]);
      expect((await emu.control.stats()).addedNotFound).toBeGreaterThanOrEqual(5);
    } finally {
      await emu.control.updateSettings({ addedNotFoundRate: 0.05, addedNotFoundWindowMs: 2000 });
    }
  });

  it("decides per message from the seed and the id: stable for that message, never for mail generated at start; the default rate races a few of 200 new messages", async () => {
    // Mail delivered by the tests above may still be inside its race window; mail generated at
    // start never races.
    expect(generatedIds).toHaveLength(5);
    for (const id of generatedIds)
      expect((await rawGet(emu, auth, `/gmail/v1/users/me/messages/${id}?format=minimal`)).status).toBe(200);
    await emu.control.updateSettings({ addedNotFoundWindowMs: 60_000 }); // default rate 0.05
    try {
      const ids: string[] = [];
      // Ids come from the clock, so which race varies by run: 200 make "none raced" a 1-in-30,000
      // event (0.95^200) where 60 made it 1 in 20.
      for (let i = 0; i < 200; i++) ids.push((await emu.control.deliver(EMAIL, { attachments: false })).id);
      const statuses = async () =>
        Promise.all(
          ids.map(async (id) => (await rawGet(emu, auth, `/gmail/v1/users/me/messages/${id}?format=minimal`)).status),
        );
      const first = await statuses();
      expect(await statuses()).toEqual(first);
      const expected = ids.map((id) => (unitHash(SEED, id) < 0.05 ? 404 : 200));
      expect(first).toEqual(expected);
      const raced = first.filter((s) => s === 404).length;
      expect(raced).toBeGreaterThanOrEqual(1);
      expect(raced).toBeLessThanOrEqual(30);
      // Off by name: every new message is served at once.
      await emu.control.updateSettings({ addedNotFoundRate: 0 });
      expect(new Set(await statuses())).toEqual(new Set([200]));
    } finally {
      await emu.control.updateSettings({ addedNotFoundRate: 0.05, addedNotFoundWindowMs: 2000 });
    }
  });
});

function batchOf(paths: string[], boundary: string): string {
  return `${paths.map((p, i) => `--${boundary}\r\nContent-Type: application/http\r\nContent-ID: <${i}>\r\n\r\nGET ${p}\r\n\r\n`).join("")}--${boundary}--\r\n`;
}

async function postBatch(paths: string[]): Promise<Response> {
  return fetch(`${emu.url}/batch`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": "multipart/mixed; boundary=fb" },
    body: batchOf(paths, "fb"),
  });
}

function partStatuses(text: string): number[] {
  return [...text.matchAll(/^HTTP\/1\.1 (\d{3})/gm)].map((m) => Number(m[1]));
}

describe("faults inside batches (faultRate)", () => {
  it("hits single parts with 500/503 backendError inside a batch that answers 200, never dropping the connection", async () => {
    await emu.control.updateSettings({ faultRate: 0.4 });
    const statuses: number[] = [];
    try {
      for (let i = 0; i < 8; i++) {
        const res = await postBatch(Array.from({ length: 10 }, () => "/gmail/v1/users/me/profile"));
        expect(res.status).toBe(200);
        const text = await res.text();
        statuses.push(...partStatuses(text));
        for (const m of text.matchAll(/"reason": "(\w+)"/g)) expect(m[1]).toBe("backendError");
      }
    } finally {
      await emu.control.updateSettings({ faultRate: 0 });
    }
    expect(statuses).toHaveLength(80);
    expect(new Set(statuses)).toEqual(new Set([200, 500, 503]));
    const faulted = statuses.filter((s) => s !== 200).length;
    expect(faulted).toBeGreaterThan(10);
    expect(faulted).toBeLessThan(60);
    const res = await postBatch(Array.from({ length: 10 }, () => "/gmail/v1/users/me/profile"));
    expect(partStatuses(await res.text())).toEqual(Array.from({ length: 10 }, () => 200));
  });
});

describe("the batch POST failing as a whole (batchFailureRate, batchFailureStatus)", () => {
  it("answers Google's HTML 404 page (nothing ran) or 502 page (the parts ran, their answers lost); 0 turns it off", async () => {
    const units = async () => (await emu.control.stats()).quotaUnits[EMAIL] ?? 0;
    const paths = Array.from({ length: 4 }, () => "/gmail/v1/users/me/profile");
    await emu.control.updateSettings({ batchFailureRate: 1, batchFailureStatus: 404 });
    try {
      const before = await units();
      const res = await postBatch(paths);
      expect(res.status).toBe(404);
      expect(res.headers.get("content-type")).toBe("text/html; charset=UTF-8");
      const html = await res.text();
      expect(html).toMatch(/^<!DOCTYPE html>/);
      expect(html).toContain("<title>Error 404 (Not Found)!!1</title>");
      expect(html).toContain("The requested URL <code>/batch</code> was not found on this server.");
      expect(await units()).toBe(before);

      await emu.control.updateSettings({ batchFailureStatus: 502 });
      const bad = await postBatch(paths);
      expect(bad.status).toBe(502);
      expect(bad.headers.get("content-type")).toBe("text/html; charset=UTF-8");
      expect(await bad.text()).toContain("<title>Error 502 (Server Error)!!1</title>");
      expect(await units()).toBe(before + 4);
      expect((await emu.control.stats()).batchFailures).toBe(2);
    } finally {
      await emu.control.updateSettings({ batchFailureRate: 0, batchFailureStatus: 404 });
    }
    const ok = await postBatch(paths);
    expect(ok.status).toBe(200);
    expect(partStatuses(await ok.text())).toEqual([200, 200, 200, 200]);
  });

  it("fails about batchFailureRate of batch POSTs", async () => {
    await emu.control.updateSettings({ batchFailureRate: 0.3 });
    try {
      const statuses: number[] = [];
      for (let i = 0; i < 40; i++) {
        const res = await postBatch(["/gmail/v1/users/me/profile"]);
        await res.arrayBuffer();
        statuses.push(res.status);
      }
      const failed = statuses.filter((s) => s === 404).length;
      expect(failed).toBeGreaterThan(3);
      expect(failed).toBeLessThan(25);
      expect(statuses.filter((s) => s !== 404 && s !== 200)).toEqual([]);
    } finally {
      await emu.control.updateSettings({ batchFailureRate: 0 });
    }
  });
});
