// The control API's per-message failure: messages.get of that id (plain and as a batch part) and
// threads.get of its thread answer the status with Gmail's envelope, `times` times or always, until
// cleared; other ids and threads are untouched; stats count the injected answers, message-gets the successful ones.
// Also: the hostile option reaches the generator.
import type { OAuth2Client } from "google-auth-library";
import { afterAll, beforeAll, expect, it } from "vitest";
import { FIXED_FILENAMES, HOSTILE_KINDS } from "../src/generate/attachment-parts.ts";
import { startEmulator, type Emulator } from "../src/server.ts";
import { clientFor, rawGet } from "./helpers.ts";

const EMAIL = "alice@example.com";
let emu: Emulator;
let auth: OAuth2Client;
let ids: string[];

beforeAll(async () => {
  emu = await startEmulator({ seed: 9, messages: 5, attachments: false });
  ({ auth } = await clientFor(emu));
  ids = (await emu.control.mailbox(EMAIL)).messages.map((m) => m.id);
});
afterAll(async () => {
  await emu.close();
});

const get = (id: string) => rawGet(emu, auth, `/gmail/v1/users/me/messages/${id}?format=minimal`);

it("fails one id always with 500 backendError until cleared", async () => {
  const [bad, good] = ids as [string, string];
  await emu.control.failMessage(EMAIL, bad, { status: 500 });
  for (let i = 0; i < 3; i++) {
    const res = await get(bad);
    expect(res.status).toBe(500);
    expect(await res.json()).toEqual({
      error: {
        code: 500,
        message: "Backend Error",
        errors: [{ message: "Backend Error", domain: "global", reason: "backendError" }],
        status: "INTERNAL",
      },
    });
  }
  expect((await get(good)).status).toBe(200);
  // Its thread cannot be served either (threads.get renders every member); another thread can.
  const threadOf = new Map((await emu.control.mailbox(EMAIL)).messages.map((m) => [m.id, m.threadId]));
  expect((await rawGet(emu, auth, `/gmail/v1/users/me/threads/${threadOf.get(bad)}?format=minimal`)).status).toBe(500);
  const otherThread = [...threadOf.values()].find((t) => t !== threadOf.get(bad));
  expect((await rawGet(emu, auth, `/gmail/v1/users/me/threads/${otherThread}?format=minimal`)).status).toBe(200);

  const { token } = await auth.getAccessToken();
  const boundary = "b1";
  const body = `${[bad, good].map((id, i) => [`--${boundary}`, "Content-Type: application/http", `Content-ID: <${i + 1}>`, "", `GET /gmail/v1/users/me/messages/${id}?format=minimal HTTP/1.1`, "", ""].join("\r\n")).join("")}--${boundary}--\r\n`;
  const batch = await fetch(`${emu.url}/batch/gmail/v1`, {
    method: "POST",
    headers: { authorization: `Bearer ${token}`, "content-type": `multipart/mixed; boundary=${boundary}` },
    body,
  });
  const text = await batch.text();
  expect(batch.status).toBe(200);
  expect(text).toMatch(/HTTP\/1\.1 500[\s\S]*backendError[\s\S]*HTTP\/1\.1 200/);

  expect((await emu.control.stats()).injectedFailures?.[EMAIL]?.[bad]).toBe(5);
  await emu.control.failMessage(EMAIL, bad, { status: 0 });
  expect((await get(bad)).status).toBe(200);
  // Only successful answers count as fetches: good twice (plain, batch), bad once (after clearing).
  expect(await emu.control.messageGets(EMAIL)).toMatchObject({ [good]: 2, [bad]: 1 });
});

it("fails `times` times, then answers normally; rejects bad bodies", async () => {
  const id = ids[2] as string;
  await emu.control.failMessage(EMAIL, id, { status: 503, times: 2 });
  expect((await get(id)).status).toBe(503);
  expect((await get(id)).status).toBe(503);
  expect((await get(id)).status).toBe(200);
  await expect(emu.control.failMessage(EMAIL, id, { status: 200 })).rejects.toThrow(/400/);
  await expect(emu.control.failMessage("nobody@example.com", id, { status: 500 })).rejects.toThrow(/404/);
});

it("hostile: false reaches the generator: no hostile attachment in the mailbox", async () => {
  const filenames = async (hostile: boolean) => {
    const e = await startEmulator({ seed: 9, messages: 60, accounts: [EMAIL], hostile });
    try {
      return new Set((await e.control.mailbox(EMAIL)).messages.flatMap((m) => m.attachments.map((a) => a.filename)));
    } finally {
      await e.close();
    }
  };
  const hostileNames = Object.entries(FIXED_FILENAMES)
    .filter(([kind]) => (HOSTILE_KINDS as readonly string[]).includes(kind))
    .map(([, name]) => name);
  expect(hostileNames).toContain("ledger-recursive.pdf"); // the PDF built to hit the extraction timeout
  const withHostile = await filenames(true);
  const tame = await filenames(false);
  expect(hostileNames.filter((n) => withHostile.has(n)).length).toBeGreaterThan(0);
  expect(hostileNames.filter((n) => tame.has(n))).toEqual([]);
  expect(tame.size).toBeGreaterThan(0); // ordinary attachments stay
});
