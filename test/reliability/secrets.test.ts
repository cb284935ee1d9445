// Secrets never leave their one encrypted column: after a full run (backfill, then incremental
// sync) of a mailbox with binary attachments by a real `gmail-sync worker` child at LOG_LEVEL
// trace, with every attachment over 1 KB routed through a temp file, neither the refresh token,
// the access token the worker used, nor any distinctive byte window of an attachment appears
//  - in Postgres (every column of every table, except accounts.*_encrypted),
//  - in Redis (every key under the test prefix: names and values of every type),
//  - in the worker's logs (stdout and stderr, trace level),
//  - on disk (ATTACHMENT_TEMP_DIR, and anything under the worker's own TMPDIR).
// Byte windows are searched raw and as hex, base64 and base64url.
import { setTimeout as sleep } from "node:timers/promises";
import { type ChildProcess, spawn } from "node:child_process";
import { lstat, mkdtemp, readdir, readFile, rm } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { gmail } from "@googleapis/gmail";
import { OAuth2Client } from "google-auth-library";
import { sql } from "kysely";
import { afterAll, beforeAll, expect, it } from "vitest";
import { makeDocx, makePdf, makePng } from "@gmail-sync/emulator/generate";
import { decryptToken, parseKeyRing } from "../../src/token-crypto.ts";
import { cliPath } from "../helpers/cli.ts";
import {
  connectTestAccount,
  expectDbEqualsMailbox,
  type Harness,
  queuesIdle,
  startHarness,
  syncState,
  syncToMailbox,
  waitFor,
} from "../sync/harness.ts";

const EMAIL = "secretive@example.com";
let h: Harness;
let worker: ChildProcess;
const logs: Buffer[] = [];

beforeAll(async () => {
  h = await startHarness({
    // Faults make the error paths run too (error messages, retries): a Gaxios error carries the
    // request's headers and body, a careless log of it would leak a token.
    emulator: { accounts: [EMAIL], messages: 30, seed: 777, attachments: true, faultRate: 0.1 },
    // Every attachment over 1 KB goes through a temp file: the disk route is exercised too.
    env: { INCLUDE_SPAM_TRASH: "true", ATTACHMENT_MEMORY_MAX_BYTES: "1024", EXTRACT_POOL_SIZE: "1" },
  });
  // Random faults may spare a run this small: one message (and so its thread) fails twice for sure.
  const [first] = (await h.emulator.control.mailbox(EMAIL)).messages;
  await h.emulator.control.failMessage(EMAIL, first!.id, { status: 503, times: 2 });
});
afterAll(async () => {
  await stopWorker();
  await h?.close();
});

async function stopWorker(): Promise<void> {
  if (!worker || worker.exitCode !== null || worker.signalCode !== null) return;
  const exited = new Promise((r) => worker.once("exit", r));
  worker.kill("SIGTERM");
  await Promise.race([exited, sleep(15_000, undefined, { ref: false })]);
  if (worker.exitCode === null && worker.signalCode === null) worker.kill("SIGKILL");
}

const CRLF = "\r\n";
function withAttachments(subject: string, files: Array<{ name: string; type: string; bytes: Buffer }>): string {
  const boundary = `sec-${subject.replace(/\W/g, "")}`;
  const lines = [
    `From: Sender <s@example.net>`,
    `To: ${EMAIL}`,
    `Subject: ${subject}`,
    `Message-ID: <${boundary}@example.net>`,
    "MIME-Version: 1.0",
    `Content-Type: multipart/mixed; boundary="${boundary}"`,
    "",
  ];
  lines.push(`--${boundary}`, "Content-Type: text/plain; charset=utf-8", "", `Files for ${subject}.`);
  for (const f of files) {
    lines.push(
      `--${boundary}`,
      `Content-Type: ${f.type}`,
      `Content-Disposition: attachment; filename="${f.name}"`,
      "Content-Transfer-Encoding: base64",
      "",
      f.bytes.toString("base64").replace(/.{76}/g, `$&${CRLF}`),
    );
  }
  lines.push(`--${boundary}--`, "");
  return Buffer.from(lines.join(CRLF)).toString("base64url");
}

/** Attachment bytes as Gmail serves them, fetched with our own token (not the worker's). */
async function attachmentBodies(): Promise<Buffer[]> {
  const auth = new OAuth2Client({
    clientId: h.emulator.clientId,
    clientSecret: h.emulator.clientSecret,
    endpoints: { oauth2TokenUrl: h.emulator.tokenUrl },
  });
  auth.setCredentials({ refresh_token: await h.emulator.control.issueRefreshToken(EMAIL) });
  const api = gmail({ version: "v1", rootUrl: h.emulator.gmailRootUrl, auth });
  const box = await h.emulator.control.mailbox(EMAIL);
  const out: Buffer[] = [];
  for (const m of box.messages.filter((x) => x.attachments.length > 0)) {
    const full = await api.users.messages.get({ userId: "me", id: m.id, format: "full" });
    const walk = async (
      p:
        | {
            parts?: unknown[] | null;
            body?: { attachmentId?: string | null; data?: string | null } | null;
            mimeType?: string | null;
          }
        | undefined,
    ): Promise<void> => {
      if (!p) return;
      for (const c of (p.parts ?? []) as Array<typeof p>) await walk(c);
      if (p.body?.attachmentId) {
        const a = await api.users.messages.attachments.get({ userId: "me", messageId: m.id, id: p.body.attachmentId });
        out.push(Buffer.from(a.data.data ?? "", "base64url"));
      }
    };
    await walk(full.data.payload ?? undefined);
  }
  return out;
}

/** Up to 3 binary 33-byte windows per attachment (offsets multiple of 3: base64 stays aligned). */
function distinctiveWindows(bytes: Buffer): Buffer[] {
  const out: Buffer[] = [];
  const isBinary = (w: Buffer) => w.filter((b) => b < 0x20 || b > 0x7e).length >= 8 && new Set(w).size >= 12;
  for (const frac of [0.25, 0.5, 0.75]) {
    for (
      let o = Math.floor((bytes.length * frac) / 3) * 3;
      o + 33 <= bytes.length && o < bytes.length * frac + 3000;
      o += 3
    ) {
      const w = bytes.subarray(o, o + 33);
      if (isBinary(w)) {
        out.push(Buffer.from(w));
        break;
      }
    }
  }
  return out;
}

interface Needle {
  what: string;
  forms: Buffer[];
}
function tokenNeedle(what: string, token: string): Needle {
  return {
    what,
    forms: [Buffer.from(token), Buffer.from(token).toString("base64"), encodeURIComponent(token)].map((f) =>
      typeof f === "string" ? Buffer.from(f) : f,
    ),
  };
}
function bytesNeedle(what: string, w: Buffer): Needle {
  return {
    what,
    forms: [w, Buffer.from(w.toString("hex")), Buffer.from(w.toString("base64")), Buffer.from(w.toString("base64url"))],
  };
}
function findIn(haystacks: Array<{ where: string; data: Buffer }>, needles: Needle[]): string[] {
  const hits: string[] = [];
  for (const hs of haystacks)
    for (const n of needles)
      for (const f of n.forms) if (hs.data.indexOf(f) !== -1) hits.push(`${n.what} in ${hs.where}`);
  return [...new Set(hits)];
}

async function postgresDump(): Promise<Array<{ where: string; data: Buffer }>> {
  const cols = await sql<{ table_name: string; column_name: string }>`
    SELECT table_name, column_name FROM information_schema.columns WHERE table_schema = 'public' ORDER BY table_name, ordinal_position`.execute(
    h.app.db,
  );
  const byTable = new Map<string, string[]>();
  for (const c of cols.rows) {
    if (c.table_name === "accounts" && c.column_name.endsWith("_encrypted")) continue;
    byTable.set(c.table_name, [...(byTable.get(c.table_name) ?? []), c.column_name]);
  }
  const out: Array<{ where: string; data: Buffer }> = [];
  for (const [table, columns] of byTable) {
    const list = sql.join(columns.map((c) => sql.ref(c)));
    const rows = await sql<{
      j: string;
    }>`SELECT row_to_json(t)::text AS j FROM (SELECT ${list} FROM ${sql.table(table)}) t`.execute(h.app.db);
    out.push({ where: `postgres ${table}`, data: Buffer.from(rows.rows.map((r) => r.j).join("\n")) });
  }
  return out;
}

async function redisDump(): Promise<Array<{ where: string; data: Buffer }>> {
  const r = h.tredis.redis;
  const out: Array<{ where: string; data: Buffer }> = [];
  let cursor = "0";
  do {
    const [next, keys] = await r.scan(cursor, "MATCH", `*${h.tredis.prefix}*`, "COUNT", 1000);
    cursor = next;
    for (const key of keys) {
      const type = await r.type(key);
      const parts: Buffer[] = [Buffer.from(key)];
      if (type === "string") parts.push((await r.getBuffer(key)) ?? Buffer.alloc(0));
      else if (type === "hash")
        for (const [k, v] of Object.entries(await r.hgetallBuffer(key))) parts.push(Buffer.from(k), v);
      else if (type === "list") parts.push(...(await r.lrangeBuffer(key, 0, -1)));
      else if (type === "set") parts.push(...(await r.smembersBuffer(key)));
      else if (type === "zset") parts.push(...(await r.zrangeBuffer(key, 0, -1, "WITHSCORES")));
      else if (type === "stream") parts.push(Buffer.from(JSON.stringify(await r.xrange(key, "-", "+"))));
      out.push({
        where: `redis ${key} (${type})`,
        data: Buffer.concat(parts.map((p, i) => (i === 0 ? p : Buffer.concat([Buffer.from("\n"), p])))),
      });
    }
  } while (cursor !== "0");
  return out;
}

/** Regular files under dir (depth-limited) modified since the run started. */
async function filesSince(dir: string, sinceMs: number, depth = 4): Promise<string[]> {
  const out: string[] = [];
  let entries: string[];
  try {
    entries = await readdir(dir);
  } catch {
    return out;
  }
  for (const name of entries) {
    const p = path.join(dir, name);
    try {
      const st = await lstat(p);
      if (st.isDirectory() && depth > 0) out.push(...(await filesSince(p, sinceMs, depth - 1)));
      else if (st.isFile() && st.mtimeMs >= sinceMs - 1000 && st.size < 256 * 1024 * 1024) out.push(p);
    } catch {
      // vanished or unreadable: another process's file
    }
  }
  return out;
}

it("no token or attachment bytes in Postgres, Redis, the logs or on disk after a full run", {
  timeout: 90_000,
}, async () => {
  // Binary attachments we know the bytes of, on top of the generated mail's.
  await h.emulator.control.deliver(EMAIL, {
    raw: withAttachments("binary files", [
      { name: "report.pdf", type: "application/pdf", bytes: await makePdf({ pages: 2 }) },
      { name: "pixels.png", type: "image/png", bytes: makePng({ width: 64, height: 64, seed: 9 }) },
      {
        name: "memo.docx",
        type: "application/vnd.openxmlformats-officedocument.wordprocessingml.document",
        bytes: await makeDocx({ paragraphs: ["Confidential memo body.", "Second paragraph."] }),
      },
    ]),
  });
  const accountId = await connectTestAccount(h, EMAIL);
  // The worker's own TMPDIR: other test files (and benchmarks) write the same generated fixtures to
  // the shared temp dir in parallel, so only what this worker wrote is searched.
  const workerTmp = await mkdtemp(path.join(os.tmpdir(), "gmail-sync-secrets-worker-"));
  worker = spawn(process.execPath, [cliPath, "worker", "--concurrency", "2"], {
    env: { PATH: process.env.PATH, HOME: process.env.HOME, ...h.env, TMPDIR: workerTmp, LOG_LEVEL: "trace" },
    stdio: ["ignore", "pipe", "pipe"],
  });
  worker.stdout?.on("data", (d: Buffer) => logs.push(d));
  worker.stderr?.on("data", (d: Buffer) => logs.push(d));

  await h.app.enqueueBackfill(accountId, { reason: "connect" });
  await waitFor(
    "backfill",
    async () => (await syncState(h, accountId)).backfill_phase === "done" && (await queuesIdle(h)),
    60_000,
  );
  // The incremental path too: more mail with attachments.
  await h.emulator.control.deliver(EMAIL, { attachments: true });
  await h.emulator.control.deliver(EMAIL, {
    raw: withAttachments("more binary", [
      {
        name: "second.pdf",
        type: "application/pdf",
        bytes: await makePdf({ pages: 1, text: () => "Another document entirely." }),
      },
    ]),
  });
  await syncToMailbox(h, accountId, EMAIL);
  const counts = await expectDbEqualsMailbox(h, accountId, EMAIL);
  expect(counts.attachments).toBeGreaterThanOrEqual(4);
  for (const q of [h.app.queues.backfill, h.app.queues.incremental]) {
    expect(await q.getJobCounts("failed", "active", "waiting", "delayed"), q.name).toEqual({
      failed: 0,
      active: 0,
      waiting: 0,
      delayed: 0,
    });
  }

  // The secrets: the tokens the worker held (decrypted from their one column) and attachment bytes.
  const keyRing = parseKeyRing(h.env.TOKEN_ENCRYPTION_KEY);
  const account = await h.app.db
    .selectFrom("accounts")
    .select(["refresh_token_encrypted", "access_token_encrypted"])
    .where("id", "=", accountId)
    .executeTakeFirstOrThrow();
  expect(account.access_token_encrypted, "the worker stored the access token it used").not.toBeNull();
  const refreshToken = decryptToken(keyRing, "refresh_token", accountId, account.refresh_token_encrypted ?? "");
  const accessToken = decryptToken(keyRing, "access_token", accountId, account.access_token_encrypted ?? "");

  // Then the grant is revoked: the failed refresh (the token endpoint's error carries the refresh
  // token in its request body) and the 401s must not leak either.
  await h.emulator.control.revoke(EMAIL);
  await h.emulator.control.deliver(EMAIL);
  await h.app.enqueueIncremental(accountId, { reason: "manual" });
  await waitFor(
    "reauth_required",
    async () =>
      (await h.app.db.selectFrom("accounts").select("status").where("id", "=", accountId).executeTakeFirstOrThrow())
        .status === "reauth_required",
    30_000,
  );
  await waitFor("queues idle", () => queuesIdle(h), 20_000);
  await stopWorker();
  expect(refreshToken.length).toBeGreaterThan(16);
  expect(accessToken.length).toBeGreaterThan(16);
  const bodies = await attachmentBodies();
  const windows = bodies.flatMap((b, i) =>
    distinctiveWindows(b).map((w, j) => bytesNeedle(`attachment ${i} window ${j}`, w)),
  );
  expect(windows.length, "binary windows to look for").toBeGreaterThanOrEqual(6);
  const needles = [tokenNeedle("refresh token", refreshToken), tokenNeedle("access token", accessToken), ...windows];

  const pg = await postgresDump();
  const redis = await redisDump();
  const logText = Buffer.concat(logs);
  const tempDir = h.app.config.ATTACHMENT_TEMP_DIR;
  const diskFiles = [...new Set([...(await filesSince(tempDir, 0)), ...(await filesSince(workerTmp, 0))])];
  const disk: Array<{ where: string; data: Buffer }> = [];
  for (const f of diskFiles) {
    try {
      disk.push({ where: `disk ${f}`, data: await readFile(f) });
    } catch {
      // gone already, or not ours to read
    }
  }

  // The search can find what it looks for: the places searched are not empty, and a planted
  // secret would be found in each of their forms.
  expect(
    pg.some((x) => x.data.includes(EMAIL)),
    "Postgres dump holds the account",
  ).toBe(true);
  expect(redis.length, "Redis keys under the test prefix").toBeGreaterThan(0);
  expect(
    logText
      .toString()
      .split("\n")
      .filter((l) => /"level":(10|20),/.test(l)).length,
    "debug/trace lines logged",
  ).toBeGreaterThan(0);
  expect(logText.toString()).toContain("attachment processed");
  expect(logText.toString(), "the revoked grant was logged").toMatch(/grant revoked|re-authori[sz]ation/);
  expect(logText.toString(), "retries were logged").toMatch(/retrying|retry/);
  const planted = windows[0] as Needle;
  for (const form of planted.forms)
    expect(
      findIn([{ where: "planted", data: Buffer.concat([Buffer.from("x"), form, Buffer.from("y")]) }], [planted]),
    ).toHaveLength(1);

  expect(findIn(pg, needles), "Postgres").toEqual([]);
  expect(findIn(redis, needles), "Redis").toEqual([]);
  expect(findIn([{ where: "worker logs", data: logText }], needles), "logs").toEqual([]);
  expect(findIn(disk, needles), "disk").toEqual([]);
  await rm(workerTmp, { recursive: true, force: true });
  expect(await readdir(tempDir).catch((): string[] => []), "temp files left").toEqual([]);
});
