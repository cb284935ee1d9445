// GET /changes?after=SEQ&limit=N[&wait=S][&account=EMAIL] on the internal listener: a page of the
// change feed as JSON, long-polling up to `wait` seconds when there is nothing after the cursor.
// Authenticated with `Authorization: Bearer <CHANGES_API_TOKEN or OPERATOR_TOKEN>`; with neither
// configured the route answers 404, as if it were not there (never open by default). A cursor
// older than retention kept answers 410.
import { createHash, timingSafeEqual } from "node:crypto";
import type { FastifyInstance } from "fastify";
import { z } from "zod";
import type { Config } from "../config.ts";
import { findAccountIdByEmail, normalizeEmail } from "../db/accounts.ts";
import type { Db } from "../db/database.ts";
import { CursorExpiredError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { type ChangeNotifier, createChangeNotifier } from "./notifier.ts";
import { readFeedPage } from "./read.ts";

/** The longest long-poll a request may ask for. */
export const MAX_WAIT_SECONDS = 60;

const query = z.strictObject({
  after: z.coerce.number().int().nonnegative().optional(),
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  wait: z.coerce.number().min(0).max(MAX_WAIT_SECONDS).default(0),
  account: z.string().min(3).max(320).optional(),
});

const digest = (s: string) => createHash("sha256").update(s).digest();

/** Whether the Authorization header carries one of `tokens` (compared in constant time). */
function authorized(header: string | undefined, tokens: readonly string[]): boolean {
  const m = /^Bearer\s+(\S+)\s*$/i.exec(header ?? "");
  if (m === null) return false;
  const given = digest(m[1] as string);
  let ok = false;
  for (const t of tokens) ok = timingSafeEqual(given, digest(t)) || ok;
  return ok;
}

export function registerChangesRoute(
  app: FastifyInstance,
  deps: { config: Config; db: Db; log: Logger; notifier?: ChangeNotifier },
): void {
  const tokens = [deps.config.CHANGES_API_TOKEN, deps.config.OPERATOR_TOKEN].filter(
    (t): t is string => typeof t === "string" && t.length > 0,
  );
  // One LISTEN connection per process, opened by the first long-poll, closed with the server
  // (before it waits for in-flight requests, so a long-poll answers at once instead of holding it up).
  let notifier = deps.notifier;
  const notifierNow = () => (notifier ??= createChangeNotifier(deps.config.DATABASE_URL, { log: deps.log }));
  app.addHook("preClose", async () => {
    if (deps.notifier === undefined) await notifier?.close();
  });

  app.get("/changes", { logLevel: "warn" }, async (req, reply) => {
    if (tokens.length === 0) return reply.code(404).send({ error: "not found" });
    if (!authorized(req.headers.authorization, tokens))
      return reply
        .code(401)
        .header("www-authenticate", 'Bearer realm="gmail-sync changes"')
        .send({ error: "a bearer token (CHANGES_API_TOKEN or OPERATOR_TOKEN) is required" });
    const parsed = query.safeParse(req.query);
    if (!parsed.success)
      return reply.code(400).send({
        error: parsed.error.issues.map((i) => `${i.path.join(".") || "query"}: ${i.message}`).join("; "),
      });
    const q = parsed.data;
    let accountId: number | undefined;
    if (q.account !== undefined) {
      accountId = await findAccountIdByEmail(deps.db, normalizeEmail(q.account));
      if (accountId === undefined) return reply.code(404).send({ error: "unknown account" });
    }
    const read = () =>
      readFeedPage(deps.db, {
        limit: q.limit,
        ...(q.after !== undefined ? { after: q.after } : {}),
        ...(accountId !== undefined ? { accountId } : {}),
      });
    try {
      const n = q.wait > 0 ? notifierNow() : undefined;
      let seen = n?.version ?? 0;
      let page = await read();
      if (n !== undefined && page.changes.length === 0) {
        // The socket must outlive the wait (the listener's idle timeout is HTTP_REQUEST_TIMEOUT_MS).
        req.raw.socket.setTimeout((q.wait + 10) * 1000);
        const aborted = new AbortController();
        reply.raw.once("close", () => aborted.abort()); // the client went away
        const deadline = Date.now() + q.wait * 1000;
        while (page.changes.length === 0 && !n.closed && !aborted.signal.aborted) {
          const left = deadline - Date.now();
          if (left <= 0) break;
          await n.wait(seen, left, aborted.signal);
          seen = n.version;
          page = await read();
        }
      }
      return reply.header("cache-control", "no-store").send(page);
    } catch (err) {
      if (err instanceof CursorExpiredError)
        return reply.code(410).send({
          error: "cursor_expired",
          message: err.message,
          after: err.after,
          prunedThrough: err.prunedThrough,
        });
      throw err;
    }
  });
}
