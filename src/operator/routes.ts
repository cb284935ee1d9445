// The operator page, on the internal listener under /operator (mounted by src/server.ts):
//   GET  /operator/accounts                          per account: status, backfill progress, cursor
//                                                     age, last error, dead letters, and actions
//   POST /operator/accounts/:id/sync                 an incremental sync now (`gmail-sync sync`)
//   POST /operator/accounts/:id/backfill             a backfill: continue the run, or a new one
//                                                     (`gmail-sync backfill`)
//   POST /operator/accounts/:id/retry-dead-letters   the parked rows fetched again now, by the
//                                                     worker's retry job (`gmail-sync dead-letters --retry`)
//   GET  /operator/queues/                           bull-board, read-only (src/operator/queues.ts)
//   GET/POST /operator/login, POST /operator/logout
// Nothing is mounted without credentials in the config (404, never open). Every route but the login
// needs them (src/operator/auth.ts); every POST made by a browser needs the page's anti-CSRF token
// and a same-origin Origin. The security headers of the internal listener stay; the CSP is this
// page's own (its hashed stylesheet only) and bull-board's (its own scripts and styles).
import rateLimit from "@fastify/rate-limit";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import type { App } from "../app.ts";
import { getAccountEmailAndStatus } from "../db/accounts.ts";
import { listDeadLetters, makeParkedDue } from "../db/dead-letters.ts";
import { getSyncState } from "../db/sync-state.ts";
import { enqueueRetry } from "../jobs.ts";
import { accountStatuses } from "../sync/status.ts";
import {
  authenticate,
  crossSite,
  csrfMatches,
  csrfToken,
  loginMatches,
  newSession,
  type OperatorAuth,
  type OperatorCredentials,
  operatorCredentials,
  SESSION_COOKIE,
  sessionCookie,
  tokenMatches,
} from "./auth.ts";
import { accountsPage, loginPage, messagePage, PAGE_CSP } from "./pages.ts";
import { QUEUES_CSP, QUEUES_PATH, registerQueueBoard } from "./queues.ts";

export type OperatorDeps = Pick<App, "config" | "log" | "db" | "queues" | "enqueueIncremental" | "enqueueBackfill">;

/** Login attempts per client IP and minute (in memory, per process). */
const LOGIN_ATTEMPTS_PER_MINUTE = 20;
/** Parked rows listed on the page (the counts per account are exact). */
const DEAD_LETTERS_SHOWN = 100;
const ACTIONS = ["sync", "backfill", "retry-dead-letters"] as const;
type Action = (typeof ACTIONS)[number];

type Form = Record<string, string | undefined>;

/**
 * Mounts the operator page on `app` (the internal listener) when the config has operator
 * credentials; returns false, mounting nothing, when it has none.
 */
export function registerOperatorPage(app: FastifyInstance, deps: OperatorDeps): boolean {
  const creds = operatorCredentials(deps.config);
  if (creds === null) return false;
  void app.register(
    async (scope) => {
      await operatorScope(scope, deps, creds);
    },
    { prefix: "/operator" },
  );
  return true;
}

/** Only a path of this page: never another host, never a protocol-relative URL. */
function safeNext(next: string | undefined): string {
  return next !== undefined && /^\/operator\/[\w\-./?=&%~]*$/.test(next) && !next.includes("//")
    ? next
    : "/operator/accounts";
}

function formOf(req: FastifyRequest): Form {
  const b = req.body;
  if (typeof b !== "object" || b === null) return {};
  const out: Form = {};
  for (const [k, v] of Object.entries(b)) if (typeof v === "string") out[k] = v;
  return out;
}

function wantsHtml(req: FastifyRequest): boolean {
  return (req.headers.accept ?? "").includes("text/html");
}

async function operatorScope(scope: FastifyInstance, deps: OperatorDeps, creds: OperatorCredentials): Promise<void> {
  const { db, log } = deps;
  const who = new WeakMap<FastifyRequest, OperatorAuth>();
  const basic = creds.user !== undefined;
  const hasToken = creds.token !== undefined;

  // The login form and the action forms post application/x-www-form-urlencoded (here only).
  scope.addContentTypeParser(
    "application/x-www-form-urlencoded",
    { parseAs: "string", bodyLimit: 8 * 1024 },
    (_req, body, done) => done(null, Object.fromEntries(new URLSearchParams(body as string))),
  );

  // After the listener's own headers (a parent's onSend runs first): this page's CSP — bull-board's
  // for what bull-board served, ours for the rest (the login form in place of a board page too) —
  // and no caching of anything but bull-board's static assets.
  scope.addHook("onSend", async (req, reply, payload) => {
    const path = req.url.split("?")[0] ?? "";
    const board =
      (path === QUEUES_PATH || path.startsWith(`${QUEUES_PATH}/`)) && who.has(req) && reply.statusCode < 400;
    reply.header("content-security-policy", board ? QUEUES_CSP : PAGE_CSP);
    // Not the listener's no-referrer: under it a browser sends `Origin: null` with a form's POST,
    // and the Origin check below would refuse the page's own forms. same-origin sends the origin to
    // this origin only, so nothing leaves for another site either way.
    reply.header("referrer-policy", "same-origin");
    if (!path.startsWith(`${QUEUES_PATH}/static/`)) reply.header("cache-control", "no-store");
    return payload;
  });

  const refuse = (req: FastifyRequest, reply: FastifyReply) => {
    // A wrong credential is worth a warning; a request that brought none (a browser's first visit) is not.
    const tried = req.headers.authorization !== undefined || req.headers.cookie?.includes(SESSION_COOKIE) === true;
    (tried ? log.warn : log.debug).call(
      log,
      { path: req.url.split("?")[0], ip: req.ip, method: req.method },
      tried ? "operator page: wrong credentials" : "operator page: not authenticated",
    );
    if (hasToken) reply.header("www-authenticate", 'Bearer realm="gmail-sync operator"');
    const path = req.url.split("?")[0] ?? "";
    const api = path.startsWith(`${QUEUES_PATH}/api/`) || path.startsWith(`${QUEUES_PATH}/static/`);
    if ((req.method === "GET" || req.method === "HEAD") && !api && wantsHtml(req))
      // The login form in place, so the browser lands back here after logging in. (No Basic
      // challenge on an HTML page: the browser would put its own dialog over the form.)
      return reply
        .code(401)
        .type("text/html; charset=utf-8")
        .send(loginPage({ token: hasToken, basic, next: safeNext(req.url) }));
    if (basic) reply.header("www-authenticate", 'Basic realm="gmail-sync operator", charset="UTF-8"');
    return reply.code(401).send({ error: "operator credentials required" });
  };

  // Every route of the scope, the board included, except the login itself.
  scope.addHook("onRequest", async (req, reply) => {
    if (req.routeOptions.url === "/operator/login") return;
    const auth = authenticate(creds, req.headers);
    if (auth === null) return refuse(req, reply);
    who.set(req, auth);
  });
  // Unknown paths under /operator answer 404 only to the operator (the hooks above run first).
  scope.setNotFoundHandler(async (_req, reply) => reply.code(404).send({ error: "not found" }));

  /** A POST a browser may have been tricked into: from another site, or without the page's token. */
  const forged = (req: FastifyRequest, auth: OperatorAuth): string | null => {
    if (crossSite(req.headers)) return "cross-site request refused";
    if (auth.method === "bearer") return null;
    return csrfMatches(creds, auth.sid, formOf(req).csrf ?? "") ? null : "missing or wrong anti-CSRF token";
  };
  const refuseForged = (req: FastifyRequest, reply: FastifyReply, why: string) => {
    log.warn({ path: req.url.split("?")[0], ip: req.ip }, `operator page: ${why}`);
    return reply
      .code(403)
      .type("text/html; charset=utf-8")
      .send(messagePage("Refused", `${why}.`));
  };

  scope.get("/", async (_req, reply) => reply.redirect("/operator/accounts", 303));

  scope.get<{ Querystring: { next?: string } }>("/login", async (req, reply) => {
    const next = safeNext(req.query.next);
    if (authenticate(creds, req.headers) !== null) return reply.redirect(next, 303);
    return reply.type("text/html; charset=utf-8").send(loginPage({ token: hasToken, basic, next }));
  });

  await scope.register(async (login) => {
    await login.register(rateLimit, { max: LOGIN_ATTEMPTS_PER_MINUTE, timeWindow: 60_000, cache: 10_000 });
    login.post("/login", async (req, reply) => {
      const form = formOf(req);
      const next = safeNext(form.next);
      if (crossSite(req.headers)) return refuseForged(req, reply, "cross-site request refused");
      const byToken = form.token !== undefined && form.token !== "" && tokenMatches(creds, form.token);
      const byLogin = !byToken && form.user !== undefined && loginMatches(creds, form.user ?? "", form.password ?? "");
      if (!byToken && !byLogin) {
        log.warn({ ip: req.ip }, "operator page: login failed");
        return reply
          .code(401)
          .type("text/html; charset=utf-8")
          .send(loginPage({ token: hasToken, basic, next, error: "Those credentials are not the operator's." }));
      }
      log.info({ ip: req.ip, by: byToken ? "token" : "password" }, "operator page: logged in");
      return reply.header("set-cookie", sessionCookie(newSession(creds).cookie)).redirect(next, 303);
    });
  });

  scope.post("/logout", async (req, reply) => {
    const auth = who.get(req) as OperatorAuth;
    const why = forged(req, auth);
    if (why !== null) return refuseForged(req, reply, why);
    // The cookie is gone from this browser; a copy of it stays valid until it expires (sessions
    // are stateless: changing the operator's credentials ends all of them).
    return reply.header("set-cookie", sessionCookie("")).redirect("/operator/login", 303);
  });

  scope.get<{ Querystring: { notice?: string; account?: string; n?: string } }>("/accounts", async (req, reply) => {
    const auth = who.get(req) as OperatorAuth;
    const [accounts, deadLetters] = await Promise.all([
      accountStatuses(db),
      listDeadLetters(db, { parkedOnly: true, limit: DEAD_LETTERS_SHOWN }),
    ]);
    const email = accounts.find((a) => String(a.id) === req.query.account)?.email ?? "the account";
    const notice = noticeText(req.query.notice, email, Number.parseInt(req.query.n ?? "0", 10) || 0);
    return reply.type("text/html; charset=utf-8").send(
      accountsPage({
        accounts,
        deadLetters,
        csrf: csrfToken(creds, auth.sid),
        generatedAt: new Date(),
        ...(notice !== undefined ? { notice: { text: notice } } : {}),
      }),
    );
  });

  scope.post<{ Params: { id: string; action: string } }>("/accounts/:id/:action", async (req, reply) => {
    const auth = who.get(req) as OperatorAuth;
    const why = forged(req, auth);
    if (why !== null) return refuseForged(req, reply, why);
    const action = req.params.action as Action;
    const id = /^\d{1,9}$/.test(req.params.id) ? Number(req.params.id) : 0;
    const account = ACTIONS.includes(action) && id > 0 ? await getAccountEmailAndStatus(db, id) : undefined;
    const csrf = csrfToken(creds, auth.sid);
    const fail = (code: number, title: string, text: string) =>
      wantsHtml(req)
        ? reply
            .code(code)
            .type("text/html; charset=utf-8")
            .send(messagePage(title, text, csrf))
        : reply.code(code).send({ error: text });
    if (account === undefined) return fail(404, "Not found", "No such account or action.");
    if (account.status !== "active")
      return fail(409, "Not possible", `${account.email} is ${account.status}: reconnect it first.`);

    let notice: string;
    let n = 0;
    if (action === "sync") {
      const state = await getSyncState(db, id);
      if (state?.history_id === null || state === undefined)
        return fail(409, "Not possible", `${account.email} has no cursor yet: its first backfill has not started.`);
      const { coalesced } = await deps.enqueueIncremental(id, { reason: "manual" });
      notice = coalesced ? "sync-folded" : "sync-queued";
    } else if (action === "backfill") {
      const state = await getSyncState(db, id);
      await deps.enqueueBackfill(id, { reason: "manual" });
      notice = state?.backfill_phase === "listing" ? "backfill-continue" : "backfill-new";
    } else {
      // Parked rows wait an hour between tries: make them due, then queue the worker's retry job
      // (the account's lock, the one store step), as `dead-letters --retry` does in-process.
      n = await makeParkedDue(db, id);
      await enqueueRetry(deps.queues, id, new Date());
      notice = "retry-queued";
    }
    log.info({ accountId: id, action, by: auth.method }, "operator page: action");
    if (!wantsHtml(req)) return reply.send({ ok: true, accountId: id, action, notice, deadLetters: n });
    return reply.redirect(`/operator/accounts?notice=${notice}&account=${id}&n=${n}`, 303);
  });

  await registerQueueBoard(scope, deps.queues);
}

function noticeText(notice: string | undefined, email: string, n: number): string | undefined {
  switch (notice) {
    case "sync-queued":
      return `Incremental sync of ${email} queued.`;
    case "sync-folded":
      return `Incremental sync of ${email} queued (folded into the one already queued).`;
    case "backfill-new":
      return `Backfill of ${email} queued: a new run.`;
    case "backfill-continue":
      return `Backfill of ${email} queued: continuing the run in progress.`;
    case "retry-queued":
      return `${n} dead letter(s) of ${email} queued to be fetched again.`;
    default:
      return undefined;
  }
}
