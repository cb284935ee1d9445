// The push path end to end: `serve` (HTTP + workers in one process, as in production) against the
// emulator, whose Pub/Sub side signs real OIDC tokens. Accounts connect through the real consent
// flow; new mail reaches Postgres through push alone; a storm of 100 pushes for one account in one
// second leads to at most two incremental syncs and loses nothing.
import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { type App, createApp } from "../../src/app.ts";
import { loadConfig } from "../../src/config.ts";
import { compareWithMailbox } from "../../src/demo/compare.ts";
import { connectThroughConsent } from "../../src/demo/consent.ts";
import { startEmulator, type Emulator } from "@gmail-sync/emulator";
import { emulatorEnv } from "../../src/demo/emulator-env.ts";
import { createLogger } from "../../src/log.ts";
import { type RunningServer, startServer } from "../../src/server.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";
import { createTestRedis, type TestRedis } from "../helpers/redis.ts";
import { waitFor } from "../sync/harness.ts";
import { freePort } from "../../src/http.ts";

const ALICE = "alice@example.com";
let emu: Emulator;
let t: TestDatabase;
let r: TestRedis;
let app: App;
let server: RunningServer;
let aliceId: number;
const _seenAuthorization: string[] = [];

const equal = async () =>
  (await compareWithMailbox(t.db, aliceId, await emu.control.mailbox(ALICE), { includeSpamTrash: false })).match;
const historyCalls = async () =>
  Object.values((await emu.control.stats()).requests["gmail.users.history.list"] ?? {}).reduce((a, b) => a + b, 0);

beforeAll(async () => {
  [t, r] = await Promise.all([createTestDatabase(), createTestRedis()]);
  // A free port first: the OAuth redirect URI and the push audience name it.
  const probe = await freePort();
  const base = `http://127.0.0.1:${probe}`;
  emu = await startEmulator({
    accounts: [ALICE],
    messages: 30,
    attachments: false,
    seed: 11,
    pushEndpoint: `${base}/pubsub/push`,
    pushAudience: `${base}/pubsub/push`,
  });
  const config = loadConfig({
    DATABASE_URL: t.url,
    REDIS_URL: r.url,
    QUEUE_PREFIX: `{${r.prefix}}`,
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: String(probe),
    INTERNAL_HTTP_PORT: "0",
    TOKEN_ENCRYPTION_KEY: randomBytes(32).toString("base64"),
    ...emulatorEnv(emu, base),
    WORKER_CONCURRENCY: "2",
  });
  app = createApp(config, { log: createLogger("silent") });
  server = await startServer(app, { worker: true });
  await connectThroughConsent(app, server.url, ALICE);
  aliceId = (await app.db.selectFrom("accounts").select("id").where("email", "=", ALICE).executeTakeFirstOrThrow()).id;
});

afterAll(async () => {
  await server?.close({ deadlineMs: 5000 });
  await app?.close();
  await emu?.close();
  await Promise.all([t?.drop(), r?.cleanup()]);
});

describe("push-driven sync through serve", () => {
  it("backfills after consent, watches, and stores new mail from pushes alone", async () => {
    await waitFor("the backfill", async () => {
      const s = await app.db
        .selectFrom("sync_state")
        .select(["backfill_phase", "watch_expiration"])
        .where("account_id", "=", aliceId)
        .executeTakeFirst();
      return s?.backfill_phase === "done" && s.watch_expiration !== null && (await equal());
    });
    const delivered = await emu.control.deliver(ALICE, {});
    const row = await waitFor("the pushed message", () =>
      app.db
        .selectFrom("messages")
        .select(["gmail_id", "label_ids"])
        .where("gmail_id", "=", delivered.id)
        .executeTakeFirst(),
    );
    expect(row.gmail_id).toBe(delivered.id);
    expect((await emu.control.stats()).pushes.acked).toBeGreaterThanOrEqual(1);
    await waitFor("equality", equal);
  });

  it("folds 100 pushes in one second into at most two syncs, and stores every message", async () => {
    // A genuine token: the emulator's next push goes to a capture endpoint (its audience is still
    // the server's). Then pushes stop, so only the storm below tells the server about new mail.
    const captured: string[] = [];
    const capture = createServer((req, res) => {
      if (req.headers.authorization) captured.push(req.headers.authorization);
      res.writeHead(204).end();
    });
    await new Promise<void>((res) => capture.listen(0, "127.0.0.1", res));
    await emu.control.updateSettings({ pushEndpoint: `http://127.0.0.1:${(capture.address() as AddressInfo).port}/` });
    await emu.control.deliver(ALICE, {});
    const token = await waitFor("a captured push", async () => captured[0]);
    await emu.control.updateSettings({ pushEndpoint: null });
    capture.close();

    const news = [];
    for (let i = 0; i < 10; i++) news.push(await emu.control.deliver(ALICE, {}));
    const top = BigInt(news.at(-1)?.historyId ?? "0");
    const callsBefore = await historyCalls();
    const started = Date.now();
    const answers = await Promise.all(
      Array.from({ length: 100 }, (_, i) => {
        const data = Buffer.from(JSON.stringify({ emailAddress: ALICE, historyId: Number(top) - 99 + i })).toString(
          "base64",
        );
        return fetch(`${server.url}/pubsub/push`, {
          method: "POST",
          headers: { "content-type": "application/json", authorization: token },
          body: JSON.stringify({
            message: { data, messageId: `storm-${i}`, publishTime: new Date().toISOString() },
            subscription: "s",
          }),
        }).then((res) => res.status);
      }),
    );
    expect(Date.now() - started).toBeLessThan(5000);
    expect(answers.every((s) => s === 204)).toBe(true);
    for (const n of news) {
      await waitFor(`message ${n.id}`, () =>
        app.db.selectFrom("messages").select("gmail_id").where("gmail_id", "=", n.id).executeTakeFirst(),
      );
    }
    await waitFor("equality", equal);
    // Let any queued rerun finish before counting.
    await waitFor("idle queue", async () =>
      (await app.queues.incremental.getJobCounts("active", "waiting", "delayed")).active === 0 ? true : undefined,
    );
    const syncs = (await historyCalls()) - callsBefore;
    expect(syncs).toBeGreaterThanOrEqual(1);
    expect(syncs).toBeLessThanOrEqual(2);
    await emu.control.updateSettings({ pushEndpoint: `${server.url}/pubsub/push` });
  });
});
