// The operator page (issue 19) in a real browser: headless Chromium (Debian's `chromium`) driven by
// playwright-core against the real server (startServer on an App built like production's, the
// emulator behind it). It is refused without credentials (401 on both pages and on the actions, 404
// with none configured), logs in through its form, shows each account's status and backfill
// progress (one backfilled for real, one mid-run with a dead letter and a hostile error message),
// enqueues a job from a button, lists the queues in bull-board (read-only) and refuses forged POSTs.
// Screenshots of each page go to .test-artifacts/operator/ (git-ignored).
import { randomBytes } from "node:crypto";
import { existsSync, mkdirSync } from "node:fs";
import path from "node:path";
import Fastify from "fastify";
import type { Browser, BrowserContext, Locator, Page } from "playwright-core";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { createLogger } from "../../src/log.ts";
import { registerOperatorPage } from "../../src/operator/routes.ts";
import { type RunningServer, startServer } from "../../src/server.ts";
import { accountStatuses } from "../../src/sync/status.ts";
import { repoRoot } from "../helpers/cli.ts";
import { backfillDone, connectTestAccount, type Harness, queuesIdle, startHarness, waitFor } from "../sync/harness.ts";

const CHROMIUM = process.env.CHROMIUM_PATH ?? "/usr/bin/chromium";
const haveChromium = existsSync(CHROMIUM);
if (!haveChromium)
  console.warn(
    `test/operator/operator-page.test.ts SKIPPED: no Chromium at ${CHROMIUM} (apt-get install -y chromium, or set CHROMIUM_PATH)`,
  );

const ALICE = "alice@example.com";
const BOB = "bob@example.com";
const TOKEN = randomBytes(32).toString("base64url");
const USER = "ops";
const PASSWORD = randomBytes(18).toString("base64url");
const HOSTILE_ERROR = `Gmail answered 503 <script>alert("x")</script>`;
const SHOTS = path.join(repoRoot, ".test-artifacts", "operator");

/** An element's text, whitespace collapsed (waits for the element). */
async function text(l: Locator): Promise<string> {
  return ((await l.textContent()) ?? "").replace(/\s+/g, " ").trim();
}

describe.skipIf(!haveChromium)("the operator page in headless Chromium", () => {
  let h: Harness;
  let server: RunningServer;
  let browser: Browser;
  let context: BrowserContext;
  let page: Page;
  let base: string;
  let aliceId: number;
  let bobId: number;

  const shot = async (p: Page, name: string) => {
    await p.screenshot({ path: path.join(SHOTS, `${name}.png`), fullPage: true });
  };
  const basic = `Basic ${Buffer.from(`${USER}:${PASSWORD}`).toString("base64")}`;
  const jobsOf = async (queue: "backfill" | "incremental") =>
    (await h.app.queues[queue].getJobs(["waiting", "delayed", "prioritized", "active"])).map((j) => ({
      name: j.name,
      data: j.data as Record<string, unknown>,
    }));

  beforeAll(async () => {
    mkdirSync(SHOTS, { recursive: true });
    h = await startHarness({
      emulator: { accounts: [ALICE, BOB], messages: 30, seed: 19, attachments: false, hostile: false },
      env: {
        OPERATOR_TOKEN: TOKEN,
        OPERATOR_USER: USER,
        OPERATOR_PASSWORD: PASSWORD,
        HTTP_HOST: "127.0.0.1",
        HTTP_PORT: "0",
        INTERNAL_HTTP_PORT: "0",
      },
    });
    aliceId = await connectTestAccount(h, ALICE);
    bobId = await connectTestAccount(h, BOB);
    // Alice: backfilled for real by the workers, which then stop (the rest of the file watches the
    // jobs the page enqueues sit in the queues).
    const workers = h.app.startWorkers({ maintenance: false });
    try {
      await h.app.enqueueBackfill(aliceId, { reason: "connect" });
      await waitFor("alice's backfill", async () => (await backfillDone(h, aliceId)) && (await queuesIdle(h)));
    } finally {
      await workers.close();
    }
    // Bob: a large mailbox half-way through its first run, with a parked message and an error whose
    // text would run as script if the page did not escape it.
    await h.app.db
      .updateTable("sync_state")
      .set({
        history_id: "123456",
        cursor_advanced_at: new Date(Date.now() - 90_000),
        backfill_phase: "listing",
        backfill_pages: 1,
        backfill_listed: 500,
        backfill_stored: 250,
        backfill_estimate: 1000,
        backfill_started_at: new Date(Date.now() - 300_000),
        last_error: HOSTILE_ERROR,
        last_error_kind: "transient",
        last_error_at: new Date(),
      })
      .where("account_id", "=", bobId)
      .execute();
    await h.app.db
      .insertInto("dead_letters")
      .values({
        account_id: bobId,
        gmail_id: "18c0ffee00000001",
        reason: "parse_error",
        detail: "<b>broken</b> MIME",
        attempts: 5,
        parked_at: new Date(),
        next_attempt_at: new Date(Date.now() + 3_600_000),
      })
      .execute();
    server = await startServer(h.app, { worker: false });
    base = server.internalUrl;
    const { chromium } = await import("playwright-core");
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
    context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    page = await context.newPage();
  });

  afterAll(async () => {
    await browser?.close();
    await server?.close({ deadlineMs: 5_000 });
    await h?.close();
  });

  it("refuses everything without credentials: 401 on both pages and on the actions", async () => {
    for (const url of ["/operator/accounts", "/operator/queues/", "/operator/queues/api/queues", "/operator/nope"]) {
      const res = await fetch(`${base}${url}`);
      await res.arrayBuffer();
      expect(res.status, url).toBe(401);
    }
    const html = await fetch(`${base}/operator/accounts`, { headers: { accept: "text/html" } });
    expect(html.status).toBe(401);
    expect(await html.text()).toContain('action="/operator/login"');
    // Wrong credentials of every kind, and a cookie nobody signed.
    const forgedCookie = `${Buffer.from(JSON.stringify({ sid: "x", exp: 9e9 })).toString("base64url")}.AAAA`;
    for (const headers of [
      { authorization: `Bearer ${TOKEN.slice(0, -1)}x` },
      { authorization: `Basic ${Buffer.from(`${USER}:wrong-password-0000`).toString("base64")}` },
      { cookie: `gmail_sync_operator=${forgedCookie}` },
      {},
    ]) {
      for (const action of ["sync", "backfill", "retry-dead-letters"]) {
        const res = await fetch(`${base}/operator/accounts/${aliceId}/${action}`, { method: "POST", headers });
        await res.arrayBuffer();
        expect(res.status, `${action} with ${Object.keys(headers).join(",") || "nothing"}`).toBe(401);
      }
      const board = await fetch(`${base}/operator/queues/`, { headers });
      await board.arrayBuffer();
      expect(board.status).toBe(401);
    }
    expect(await jobsOf("incremental")).toEqual([]);
    expect((await jobsOf("backfill")).length).toBe(0);
    // Not on the public listener at all.
    const pub = await fetch(`${server.url}/operator/accounts`);
    await pub.arrayBuffer();
    expect(pub.status).toBe(404);
  });

  it("is not mounted at all (404) when no credentials are configured", async () => {
    const bare = Fastify();
    try {
      const config = loadConfig({ DATABASE_URL: h.env.DATABASE_URL as string });
      expect(registerOperatorPage(bare, { ...h.app, config, log: createLogger("silent") })).toBe(false);
      for (const url of ["/operator/accounts", "/operator/queues/", "/operator/login"])
        expect((await bare.inject({ url })).statusCode, url).toBe(404);
    } finally {
      await bare.close();
    }
  });

  it("logs in through the form and shows each account's status, progress, cursor age, last error and dead letters", async () => {
    const first = await page.goto(`${base}/operator/accounts`);
    expect(first?.status()).toBe(401);
    await page.locator("form.login").waitFor({ state: "visible" });
    await shot(page, "login");
    await page.fill("#token", "not-the-token-but-long-enough-000000");
    await page.click("form.login button[type=submit]");
    expect(await text(page.locator("p.error"))).toContain("not the operator's");
    await page.fill("#token", TOKEN);
    await Promise.all([page.waitForURL(`${base}/operator/accounts`), page.click("form.login button[type=submit]")]);
    expect(await page.title()).toContain("Accounts");

    const cookies = await context.cookies(`${base}/operator/accounts`);
    const session = cookies.find((c) => c.name === "gmail_sync_operator");
    expect(session).toMatchObject({ httpOnly: true, sameSite: "Strict", path: "/operator" });

    const [alice] = await accountStatuses(h.app.db, { email: ALICE });
    expect(alice?.messages).toBeGreaterThan(0);
    const aliceRow = page.locator(`tr[data-account="${ALICE}"]`);
    expect(await text(aliceRow.locator(".status"))).toBe("active");
    expect(await text(aliceRow)).toContain(`${alice?.messages} messages`);
    expect(await text(aliceRow.locator(".backfill"))).toContain(`done: ${alice?.backfill.stored}`);
    expect(await text(aliceRow)).toContain("cursor age");

    const bobRow = page.locator(`tr[data-account="${BOB}"]`);
    expect(await text(bobRow.locator(".status"))).toBe("backfilling");
    expect(await text(bobRow.locator(".backfill"))).toContain("250 / ~1000 stored (25%)");
    expect(await bobRow.locator("progress").getAttribute("value")).toBe("250");
    expect(await bobRow.locator("progress").getAttribute("max")).toBe("1000");
    expect(await text(bobRow)).toMatch(/cursor age (\d{2,3} s|\d+ min)/);
    expect(await text(bobRow.locator(".dead-letters"))).toContain("1 dead");
    // The error's markup is shown as text, never run or parsed.
    expect(await text(bobRow)).toContain(HOSTILE_ERROR);
    expect(await page.locator("script").count()).toBe(0);
    expect(await text(page.locator("#dead-letters"))).toContain("18c0ffee00000001");
    expect(await text(page.locator("#dead-letters"))).toContain("<b>broken</b> MIME");
    await shot(page, "accounts");
  });

  it("enqueues the job of each button: sync now, backfill, retry dead letters", async () => {
    await page.goto(`${base}/operator/accounts`);
    await Promise.all([
      page.waitForURL(/notice=sync-queued/),
      page.locator(`tr[data-account="${ALICE}"] button[data-action=sync]`).click(),
    ]);
    expect(await text(page.locator(".notice"))).toBe(`Incremental sync of ${ALICE} queued.`);
    expect(await jobsOf("incremental")).toContainEqual({
      name: "incremental",
      data: { accountId: aliceId, reason: "manual" },
    });

    await Promise.all([
      page.waitForURL(/notice=backfill-continue/),
      page.locator(`tr[data-account="${BOB}"] button[data-action=backfill]`).click(),
    ]);
    expect(await text(page.locator(".notice"))).toContain("continuing the run in progress");
    expect(await jobsOf("backfill")).toContainEqual({
      name: "backfill-page",
      data: { accountId: bobId, reason: "manual" },
    });

    await Promise.all([
      page.waitForURL(/notice=retry-queued/),
      page.locator(`tr[data-account="${BOB}"] button[data-action=retry-dead-letters]`).click(),
    ]);
    expect(await text(page.locator(".notice"))).toBe(`1 dead letter(s) of ${BOB} queued to be fetched again.`);
    expect(await jobsOf("incremental")).toContainEqual({ name: "retry-messages", data: { accountId: bobId } });
    const row = await h.app.db
      .selectFrom("dead_letters")
      .select("next_attempt_at")
      .where("account_id", "=", bobId)
      .executeTakeFirstOrThrow();
    expect(row.next_attempt_at?.getTime()).toBeLessThanOrEqual(Date.now());
    // A disabled button for what cannot be done: alice has no dead letters.
    expect(await page.locator(`tr[data-account="${ALICE}"] button[data-action=retry-dead-letters]`).isDisabled()).toBe(
      true,
    );
    await shot(page, "accounts-after-actions");
  });

  it("shows the three queues in bull-board, read-only, with its own CSP and nothing loaded from elsewhere", async () => {
    const violations: string[] = [];
    page.on("console", (m) => {
      if (m.type() === "error" && /Content Security Policy/i.test(m.text())) violations.push(m.text());
    });
    const res = await page.goto(`${base}/operator/queues/`);
    expect(res?.status()).toBe(200);
    expect(res?.headers()["content-security-policy"]).toContain("script-src 'self'");
    expect(res?.headers()["x-frame-options"]).toBe("DENY");
    for (const name of ["backfill", "incremental", "maintenance"])
      await page.getByText(name, { exact: true }).first().waitFor({ state: "visible", timeout: 15_000 });
    await shot(page, "queues");
    // The queue's page lists the jobs the buttons enqueued (ids and payloads: account ids only).
    await page.goto(`${base}/operator/queues/queue/incremental`);
    await page
      .getByText(new RegExp(`^inc-${aliceId}-`))
      .first()
      .waitFor({ state: "visible", timeout: 15_000 });
    await page.getByText("retry-messages", { exact: true }).first().waitFor({ state: "visible" });
    await shot(page, "queue-incremental");
    // Only the template's Google Fonts stylesheet is refused; the board itself runs under the CSP.
    expect(violations.filter((v) => !v.includes("fonts.googleapis.com"))).toEqual([]);

    const api = await page.request.get(`${base}/operator/queues/api/queues?activeQueue=incremental&status=waiting`);
    expect(api.status()).toBe(200);
    const body = (await api.json()) as {
      queues: Array<{ name: string; readOnlyMode: boolean; allowRetries: boolean }>;
    };
    expect(body.queues.map((q) => q.name).sort()).toEqual(["backfill", "incremental", "maintenance"]);
    expect(body.queues.every((q) => q.readOnlyMode && !q.allowRetries)).toBe(true);
    // Nothing that changes a queue gets through, whatever the credentials.
    for (const [method, url] of [
      ["PUT", "/operator/queues/api/queues/incremental/retry/failed"],
      ["PUT", "/operator/queues/api/queues/incremental/clean/completed"],
      ["PUT", "/operator/queues/api/queues/incremental/empty"],
      ["POST", "/operator/queues/api/queues/incremental/add"],
      ["PUT", "/operator/queues/api/queues/pause"],
    ] as const) {
      const r = await page.request.fetch(`${base}${url}`, { method, headers: { authorization: `Bearer ${TOKEN}` } });
      expect(r.status(), `${method} ${url}`).toBe(405);
    }
    expect(await jobsOf("incremental")).toContainEqual({
      name: "incremental",
      data: { accountId: aliceId, reason: "manual" },
    });
  });

  it("refuses forged POSTs (no or wrong anti-CSRF token, another origin) and takes Basic auth and a bearer token", async () => {
    const action = `${base}/operator/accounts/${aliceId}/sync`;
    const before = (await jobsOf("incremental")).length;
    // The browser's cookie alone is not enough.
    const noToken = await page.request.post(action, { form: { csrf: "forged" } });
    expect(noToken.status()).toBe(403);
    const csrf = await page
      .goto(`${base}/operator/accounts`)
      .then(() => page.locator(`tr[data-account="${ALICE}"] input[name=csrf]`).first().getAttribute("value"));
    expect(csrf).toBeTruthy();
    const crossSite = await page.request.post(action, {
      form: { csrf: csrf as string },
      headers: { origin: "http://evil.example" },
    });
    expect(crossSite.status()).toBe(403);
    // Basic credentials are attached by browsers too: they need the token as well.
    const basicNoCsrf = await fetch(action, { method: "POST", headers: { authorization: basic } });
    await basicNoCsrf.arrayBuffer();
    expect(basicNoCsrf.status).toBe(403);
    expect((await jobsOf("incremental")).length).toBe(before);
    const basicPage = await fetch(`${base}/operator/accounts`, { headers: { authorization: basic } });
    expect(basicPage.status).toBe(200);
    expect(await basicPage.text()).toContain(BOB);
    // A script with the bearer token (which no browser sends by itself) needs no CSRF token.
    const script = await fetch(action, { method: "POST", headers: { authorization: `Bearer ${TOKEN}` } });
    expect(script.status).toBe(200);
    expect(await script.json()).toMatchObject({ ok: true, accountId: aliceId, action: "sync" });
  });

  it("logs in with the user and password, and logging out ends the browser's session", async () => {
    const other = await browser.newContext();
    try {
      const p = await other.newPage();
      await p.goto(`${base}/operator/login`);
      await p.fill("#user", USER);
      await p.fill("#password", PASSWORD);
      await Promise.all([p.waitForURL(`${base}/operator/accounts`), p.click("form.login button[type=submit]")]);
      await p.locator(`tr[data-account="${BOB}"]`).waitFor({ state: "visible" });
      await Promise.all([p.waitForURL(/\/operator\/login$/), p.click("header button")]);
      const again = await p.goto(`${base}/operator/accounts`);
      expect(again?.status()).toBe(401);
    } finally {
      await other.close();
    }
  });
});
