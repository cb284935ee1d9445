// GmailPort over @googleapis/gmail, for one account. Every call: charge its documented quota cost
// to the shared governor, send with the client's own retry off, classify any failure
// (classify-error.ts), retry per retry.ts, count metrics. getMessages uses the HTTP batch endpoint
// (retrying only the failed sub-requests) or bounded parallel GETs; getThreads does the same with
// threads.get.
//
// Account-level failures end the account's work instead of being returned per id: auth_revoked
// (after one forced token refresh on a 401) calls onAuthRevoked once and makes every later call on
// this port fail without touching the network; a rate limit that outlasts the retry budget is thrown
// so the job can be parked with its retryAfterMs.
import { randomBytes } from "node:crypto";
import { gmail, type gmail_v1 } from "@googleapis/gmail";
import type { OAuth2Client } from "google-auth-library";
import { GmailError, isGmailError } from "../errors.ts";
import type { Logger } from "../log.ts";
import {
  apiBatchRequests,
  apiQuotaUnitsTotal,
  apiRateLimitedTotal,
  apiRequestDurationSeconds,
  apiRequestsTotal,
  apiRetriesTotal,
  tokenRefreshesTotal,
} from "../metrics.ts";
import { classifyGmailError, isTokenEndpointError, rateLimitScope, statusCodeLabel } from "./classify-error.ts";
import type { FetchedMessage, FetchedThread, GmailMessage, GmailPort, HistoryPage, ListHistoryOptions, ListMessagesOptions, ListMessagesPage, Profile, WatchRequest } from "./port.ts";
import type { InFlightLimiter } from "./in-flight.ts";
import { QUOTA_COST, type QuotaGovernor } from "./quota.ts";
import { DEFAULT_RETRY, retryDelay, retryReason, sleep, withRetry, type RetryPolicy } from "./retry.ts";

export interface GmailPortDeps {
  auth: OAuth2Client;
  accountId: number;
  quota: QuotaGovernor;
  /** Per-account cap on requests in flight (batch parts count one each), shared across processes; omitted: no cap. */
  inFlight?: InFlightLimiter;
  rootUrl: string;
  log: Logger;
  fetchStrategy?: "batch" | "parallel";
  /** Parallel GETs in flight (parallel), or batch HTTP requests in flight (batch). */
  concurrency?: number;
  /** Sub-requests per batch (Google: at most 100, over 50 not recommended). */
  batchSize?: number;
  retry?: Partial<RetryPolicy>;
  /** Called once when the account's grant is found revoked (the factory marks reauth_required). */
  onAuthRevoked?: (err: GmailError) => Promise<void>;
  /** Longest in-process wait for the quota bucket before throwing rate_limited (single calls). */
  maxQuotaWaitMs?: number;
  /**
   * The same inside getMessages (default 10 s): throwing there discards the messages already
   * fetched by that call, which the retried job pays for again, so waiting is cheaper.
   */
  fetchQuotaWaitMs?: number;
}

// From `npm run bench:fetch` (1,000 messages, 250 units/s, 150 ms latency, emulator quota and
// concurrency cap on; two runs): batches of 25 with 2 in flight reached 0.99–1.0 of the quota
// ceiling with no 429 in 40 HTTP requests. Batches of 50 cost a whole second of quota each, so a
// small skew between our bucket and Gmail's gives 429s (0.81 with 4 × 429 in one run, 0.98 in the
// other). 10 parallel GETs reached 0.77–0.88 with 1,000 requests; 5 are latency-bound (0.60).
export const DEFAULT_FETCH_STRATEGY: "batch" | "parallel" = "batch";
export const DEFAULT_BATCH_SIZE = 25;

/** Our own in-flight cap gave up waiting: not an answer from Gmail, so nothing to count or penalise. */
function isLocalWait(err: unknown): err is GmailError {
  return isGmailError(err, "rate_limited") && err.reason === "localConcurrency";
}

function cost(method: string): number {
  const c = QUOTA_COST[method];
  if (c === undefined) throw new Error(`no documented quota cost for ${method}`);
  return c;
}

export function createGmailPort(deps: GmailPortDeps): GmailPort {
  const { auth, accountId, quota, log } = deps;
  const policy: RetryPolicy = { ...DEFAULT_RETRY, ...deps.retry };
  const strategy = deps.fetchStrategy ?? DEFAULT_FETCH_STRATEGY;
  // Gmail answers a batch's parts in parallel and counts each toward the user's concurrency cap:
  // a batch larger than the cap would have its tail refused with "Too many concurrent requests".
  const batchSize = Math.min(100, deps.inFlight?.cap ?? 100, Math.max(1, deps.batchSize ?? DEFAULT_BATCH_SIZE));
  const concurrency = Math.max(1, deps.concurrency ?? (strategy === "batch" ? 2 : 10));
  const api = gmail({ version: "v1", auth, rootUrl: deps.rootUrl, retry: false });
  const origin = new URL(deps.rootUrl).origin;
  const tokenUrl = String(auth.endpoints?.oauth2TokenUrl ?? "");
  const fetchQuotaWaitMs = deps.fetchQuotaWaitMs ?? 10_000;
  let revoked: GmailError | undefined;
  /** Runs one HTTP request holding `permits` of the account's in-flight cap. */
  const inFlight = <T>(permits: number, maxWaitMs: number, fn: () => Promise<T>): Promise<T> => (deps.inFlight ? deps.inFlight.run(accountId, permits, fn, { maxWaitMs }) : fn());

  async function authRevoked(err: GmailError): Promise<never> {
    if (!revoked) {
      revoked = err;
      log.warn({ accountId, reason: err.reason, status: err.status }, "gmail grant revoked or insufficient; account needs re-authorisation");
      await deps.onAuthRevoked?.(err);
    }
    throw err;
  }

  /** Classifies a raw failure and does the bookkeeping every failure path shares. */
  async function failure(raw: unknown, method: string): Promise<GmailError> {
    const err = classifyGmailError(raw, { method });
    const fromTokenEndpoint = isTokenEndpointError(raw, tokenUrl);
    if (fromTokenEndpoint) {
      tokenRefreshesTotal.inc({ outcome: err.kind === "auth_revoked" ? "invalid_grant" : "transient" });
    } else {
      apiRequestsTotal.inc({ method, code: statusCodeLabel(err.status) });
    }
    if (err.kind === "rate_limited") {
      apiRateLimitedTotal.inc({ scope: rateLimitScope(err) });
      await quota.penalize(accountId, err.retryAfterMs);
    }
    return err;
  }

  /** A whole-batch answer as a batch-level error: not_found/permanent of the POST are the endpoint's, retried as transient. */
  function batchLevel(err: GmailError): GmailError {
    if (err.kind !== "not_found" && err.kind !== "permanent") return err;
    log.warn({ accountId, status: err.status, reason: err.reason }, "the batch endpoint itself failed; its parts are retried, none is taken as deleted");
    return new GmailError("transient", `batch endpoint answered ${err.status ?? "an error"}: ${err.message.slice(0, 200)}`, { ...(err.status !== undefined ? { status: err.status } : {}), reason: "batchFailed", cause: err });
  }

  /**
   * A 401 from Gmail after the token was refreshed successfully (the grant is alive: a revoked one
   * fails at the token endpoint, invalid_grant) is Gmail's passing fault, not a reason to make the
   * user connect again: transient, retried later.
   */
  function afterRefresh(err: GmailError, refreshed: boolean): GmailError {
    if (!refreshed || err.kind !== "auth_revoked" || err.status !== 401) return err;
    return new GmailError("transient", `401 from Gmail right after a successful token refresh: ${err.message.slice(0, 200)}`, { status: 401, reason: "unauthorizedAfterRefresh", cause: err });
  }

  function forceRefresh(): void {
    // The next request's header lookup sees an expiring token and refreshes it (emitting `tokens`).
    auth.setCredentials({ ...auth.credentials, expiry_date: 1 });
  }

  /** One API call with quota, metrics, the retry policy and one refresh-and-retry on 401. */
  async function call<T>(method: string, fn: () => Promise<{ data: T }>, quotaWaitMs = deps.maxQuotaWaitMs ?? 2000): Promise<T> {
    if (revoked) throw revoked;
    let refreshed = false;
    try {
      return await withRetry(async () => {
        for (;;) {
          const units = cost(method);
          await quota.acquire(accountId, units, { maxWaitMs: quotaWaitMs });
          apiQuotaUnitsTotal.inc({ method }, units);
          const end = apiRequestDurationSeconds.startTimer({ method });
          try {
            const res = await inFlight(1, quotaWaitMs, fn);
            apiRequestsTotal.inc({ method, code: "2xx" });
            return res.data;
          } catch (raw) {
            if (isLocalWait(raw)) throw raw; // our own cap, not Gmail's answer: no penalty
            const err = await failure(raw, method);
            if (err.kind === "auth_revoked" && err.status === 401 && !refreshed && !isTokenEndpointError(raw, tokenUrl)) {
              refreshed = true; // an access token rejected before its expiry: refresh once
              forceRefresh();
              continue;
            }
            throw afterRefresh(err, refreshed);
          } finally {
            end();
          }
        }
      }, policy);
    } catch (err) {
      if (isGmailError(err, "auth_revoked")) return authRevoked(err);
      throw err;
    }
  }

  async function getProfile(): Promise<Profile> {
    const d = await call("users.getProfile", () => api.users.getProfile({ userId: "me" }, { retry: false }));
    return {
      emailAddress: d.emailAddress ?? "",
      messagesTotal: d.messagesTotal ?? 0,
      threadsTotal: d.threadsTotal ?? 0,
      historyId: d.historyId ?? "",
    };
  }

  async function listMessages(o: ListMessagesOptions): Promise<ListMessagesPage> {
    const d = await call("messages.list", () =>
      api.users.messages.list(
        {
          userId: "me",
          maxResults: o.maxResults ?? 500,
          ...(o.pageToken ? { pageToken: o.pageToken } : {}),
          ...(o.q ? { q: o.q } : {}),
          ...(o.labelIds && o.labelIds.length > 0 ? { labelIds: o.labelIds } : {}),
          ...(o.includeSpamTrash !== undefined ? { includeSpamTrash: o.includeSpamTrash } : {}),
        },
        { retry: false },
      ),
    );
    const page: ListMessagesPage = {
      messages: (d.messages ?? []).map((m) => ({ id: m.id ?? "", threadId: m.threadId ?? "" })).filter((m) => m.id !== ""),
      resultSizeEstimate: d.resultSizeEstimate ?? 0,
    };
    if (d.nextPageToken) page.nextPageToken = d.nextPageToken;
    return page;
  }

  async function listHistory(o: ListHistoryOptions): Promise<HistoryPage> {
    const d = await call("history.list", () =>
      api.users.history.list(
        {
          userId: "me",
          startHistoryId: o.startHistoryId,
          maxResults: o.maxResults ?? 500,
          ...(o.pageToken ? { pageToken: o.pageToken } : {}),
          ...(o.historyTypes ? { historyTypes: o.historyTypes } : {}),
        },
        { retry: false },
      ),
    );
    const page: HistoryPage = { history: d.history ?? [], historyId: d.historyId ?? "" };
    if (d.nextPageToken) page.nextPageToken = d.nextPageToken;
    return page;
  }

  async function getAttachment(messageId: string, attachmentId: string): Promise<Buffer> {
    const d = await call("messages.attachments.get", () => api.users.messages.attachments.get({ userId: "me", messageId, id: attachmentId }, { retry: false }));
    return Buffer.from(d.data ?? "", "base64url");
  }

  async function watch(req: WatchRequest): Promise<{ historyId: string; expiration: string }> {
    const body: gmail_v1.Schema$WatchRequest = { topicName: req.topicName };
    if (req.labelIds) body.labelIds = req.labelIds;
    if (req.labelFilterBehavior) body.labelFilterBehavior = req.labelFilterBehavior;
    const d = await call("users.watch", () => api.users.watch({ userId: "me", requestBody: body }, { retry: false }));
    return { historyId: String(d.historyId ?? ""), expiration: String(d.expiration ?? "") };
  }

  async function stop(): Promise<void> {
    await call("users.stop", () => api.users.stop({ userId: "me" }, { retry: false }));
  }

  // --- getMessages / getThreads: one resource by id, as HTTP batches or parallel GETs ---

  /** What differs between fetching messages and threads by id; the machinery below is shared. */
  interface GetById<T> {
    method: "messages.get" | "threads.get";
    /** The request path of one sub-request inside a batch. */
    path: (id: string) => string;
    /** One plain GET (the parallel strategy). */
    get: (id: string) => Promise<{ data: T }>;
    /** Ids per batch: the same share of a second of quota whatever the method costs. */
    perBatch: number;
  }

  type Got<T> = { id: string; value: T; error?: undefined } | { id: string; value?: undefined; error: GmailError };

  async function getOne<T>(spec: GetById<T>, id: string): Promise<Got<T>> {
    try {
      return { id, value: await call(spec.method, () => spec.get(id), fetchQuotaWaitMs) };
    } catch (err) {
      if (isGmailError(err) && (err.kind === "not_found" || err.kind === "permanent" || err.kind === "transient")) return { id, error: err };
      throw err;
    }
  }

  async function pool<T>(items: T[], limit: number, fn: (item: T) => Promise<void>): Promise<void> {
    let next = 0;
    let failed: unknown;
    const run = async () => {
      while (failed === undefined && next < items.length) {
        const item = items[next++] as T;
        try {
          await fn(item);
        } catch (err) {
          failed ??= err;
        }
      }
    };
    await Promise.all(Array.from({ length: Math.min(limit, items.length) }, run));
    if (failed !== undefined) throw failed;
  }

  async function getParallel<T>(spec: GetById<T>, ids: string[]): Promise<Map<string, Got<T>>> {
    const out = new Map<string, Got<T>>();
    await pool(ids, concurrency, async (id) => {
      out.set(id, await getOne(spec, id));
    });
    return out;
  }

  interface SubResponse {
    status: number;
    headers: Record<string, string>;
    data: unknown;
  }

  async function sendBatch(paths: string[]): Promise<SubResponse[]> {
    const boundary = `batch_${randomBytes(12).toString("hex")}`;
    const body =
      paths
        .map((p, i) => `--${boundary}\r\nContent-Type: application/http\r\nContent-ID: <item-${i}>\r\n\r\n` + `GET ${p}\r\nAccept: application/json\r\n\r\n`)
        .join("") + `--${boundary}--\r\n`;
    const res = await auth.request<string>({
      // The discovery document's batchPath ("batch"); the API-specific /batch/gmail/v1 is the
      // guide's older form.
      url: `${origin}/batch`,
      method: "POST",
      headers: { "Content-Type": `multipart/mixed; boundary=${boundary}` },
      data: body,
      responseType: "text",
      retry: false,
    });
    const ct = (res.headers as unknown as Headers).get?.("content-type") ?? String((res.headers as unknown as Record<string, string>)["content-type"] ?? "");
    return parseBatchResponse(String(res.data), ct, paths.length);
  }

  async function getBatch<T>(spec: GetById<T>, ids: string[]): Promise<Map<string, Got<T>>> {
    const { method } = spec;
    const out = new Map<string, Got<T>>();
    const chunks: string[][] = [];
    for (let i = 0; i < ids.length; i += spec.perBatch) chunks.push(ids.slice(i, i + spec.perBatch));
    await pool(chunks, concurrency, async (chunk) => {
      let pending = chunk;
      let refreshed = false;
      for (let attempt = 0; pending.length > 0; attempt++) {
        if (revoked) throw revoked;
        const units = cost(method) * pending.length;
        await quota.acquire(accountId, units, { maxWaitMs: fetchQuotaWaitMs });
        apiQuotaUnitsTotal.inc({ method }, units);
        apiBatchRequests.observe(pending.length);
        const end = apiRequestDurationSeconds.startTimer({ method: "batch" });
        let answers: Array<{ id: string; err?: GmailError; value?: T }>;
        try {
          const paths = pending.map(spec.path);
          const subs = await inFlight(paths.length, fetchQuotaWaitMs, () => sendBatch(paths));
          answers = pending.map((id, i) => {
            const sub = subs[i];
            if (sub && sub.status >= 200 && sub.status < 300) {
              apiRequestsTotal.inc({ method, code: "2xx" });
              return { id, value: sub.data as T };
            }
            const err =
              sub && sub.status > 0
                ? classifyGmailError({ response: sub, message: `batch sub-request ${sub.status}` }, { method })
                : new GmailError("transient", "batch response is missing this part");
            apiRequestsTotal.inc({ method, code: statusCodeLabel(err.status) });
            return { id, err };
          });
        } catch (raw) {
          // The whole batch failed (network, 5xx, 429, token refresh): every sub-request shares it.
          // Only a part's own 404 means that message is gone: a 404 (or any other answer that is
          // not Gmail's) to the batch POST itself is the endpoint failing — an HTML page when a batch
          // path is retired (Google did so in 2020) or a proxy — and must never read as deletions.
          if (isLocalWait(raw)) throw raw;
          const err = batchLevel(await failure(raw, "batch"));
          if (err.kind === "auth_revoked" && err.status === 401 && !refreshed && !isTokenEndpointError(raw, tokenUrl)) {
            refreshed = true;
            forceRefresh();
            attempt--;
            continue;
          }
          const whole = afterRefresh(err, refreshed);
          if (whole.kind === "auth_revoked") return authRevoked(whole);
          answers = pending.map((id) => ({ id, err: whole }));
        } finally {
          end();
        }

        const retry: string[] = [];
        let worst: GmailError | undefined;
        let rateLimited: GmailError | undefined;
        let unauthorized = false;
        for (const a of answers) {
          if (a.value !== undefined) {
            out.set(a.id, { id: a.id, value: a.value });
            continue;
          }
          const err = afterRefresh(a.err as GmailError, refreshed);
          if (err.kind === "auth_revoked" && err.status === 401 && !refreshed) {
            unauthorized = true; // as for single calls: refresh once, then believe a 401
            retry.push(a.id);
            continue;
          }
          if (err.kind === "auth_revoked") return authRevoked(err);
          if (err.kind === "transient" || err.kind === "rate_limited") {
            retry.push(a.id);
            if (err.kind === "rate_limited") rateLimited ??= err;
            worst = rateLimited ?? worst ?? err;
          }
          out.set(a.id, { id: a.id, error: err });
        }
        if (retry.length === 0) return;
        if (unauthorized) {
          refreshed = true;
          forceRefresh();
          if (!worst) {
            pending = retry;
            attempt--;
            continue;
          }
        }
        if (!worst) return;
        if (rateLimited && !answers.every((a) => a.err === rateLimited)) {
          // sub-request 429s (a whole-batch 429 was counted and penalised in failure())
          apiRateLimitedTotal.inc({ scope: rateLimitScope(rateLimited) });
          await quota.penalize(accountId, rateLimited.retryAfterMs);
        }
        const delay = retryDelay(worst, attempt, policy);
        if (delay === undefined) {
          if (rateLimited) throw rateLimited; // parks the job; transient ones stay as per-id errors
          return;
        }
        apiRetriesTotal.inc({ reason: retryReason(worst) }, retry.length);
        log.debug({ accountId, method, retry: retry.length, delay, kind: worst.kind }, "retrying failed batch sub-requests");
        await sleep(delay);
        pending = retry;
      }
    });
    return out;
  }

  async function getByIds<T>(spec: GetById<T>, ids: string[]): Promise<Array<Got<T>>> {
    if (revoked) throw revoked;
    const unique = [...new Set(ids)];
    if (unique.length === 0) return [];
    const got = strategy === "batch" ? await getBatch(spec, unique) : await getParallel(spec, unique);
    return ids.map((id) => got.get(id) ?? { id, error: new GmailError("transient", `${spec.method} of ${id} was not answered`) });
  }

  const messageSpec: GetById<GmailMessage> = {
    method: "messages.get",
    path: (id) => `/gmail/v1/users/me/messages/${encodeURIComponent(id)}?format=full`,
    get: (id) => api.users.messages.get({ userId: "me", id, format: "full" }, { retry: false }),
    perBatch: batchSize,
  };
  const threadSpec: GetById<gmail_v1.Schema$Thread> = {
    method: "threads.get",
    path: (id) => `/gmail/v1/users/me/threads/${encodeURIComponent(id)}?format=full`,
    get: (id) => api.users.threads.get({ userId: "me", id, format: "full" }, { retry: false }),
    perBatch: Math.max(1, Math.floor((batchSize * cost("messages.get")) / cost("threads.get"))),
  };

  async function getMessages(ids: string[]): Promise<FetchedMessage[]> {
    return (await getByIds(messageSpec, ids)).map((g) => (g.error ? { id: g.id, error: g.error } : { id: g.id, message: g.value as GmailMessage }));
  }

  async function getThreads(threadIds: string[]): Promise<FetchedThread[]> {
    return (await getByIds(threadSpec, threadIds)).map((g) => (g.error ? { id: g.id, error: g.error } : { id: g.id, messages: g.value?.messages ?? [] }));
  }

  return { getProfile, listMessages, getMessages, getThreads, getAttachment, listHistory, watch, stop };
}

/** Splits a multipart/mixed batch response into sub-responses, in request order. */
export function parseBatchResponse(text: string, contentType: string, count: number): Array<{ status: number; headers: Record<string, string>; data: unknown }> {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  if (!boundary) throw new GmailError("transient", `batch response without a multipart boundary (${contentType})`);
  const byIndex = new Map<number, { status: number; headers: Record<string, string>; data: unknown }>();
  const inOrder: Array<{ status: number; headers: Record<string, string>; data: unknown }> = [];
  for (const chunk of text.split(`--${boundary}`)) {
    const part = chunk.replace(/^\r?\n/, "");
    if (part.trim() === "" || part.startsWith("--")) continue;
    const [outerHead, inner] = splitHead(part);
    if (inner === undefined) continue;
    const outer = parseHeaders(outerHead);
    const [innerHead, body] = splitHead(inner);
    const lines = innerHead.split(/\r?\n/);
    const statusLine = /^HTTP\/\d(?:\.\d)?\s+(\d{3})/.exec(lines[0] ?? "");
    if (!statusLine) continue;
    const headers = parseHeaders(lines.slice(1).join("\n"));
    const raw = (body ?? "").trim();
    let data: unknown = raw;
    if (raw !== "") {
      try {
        data = JSON.parse(raw);
      } catch {
        data = raw;
      }
    }
    const sub = { status: Number(statusLine[1]), headers, data };
    const cid = /(\d+)>?\s*$/.exec(outer["content-id"] ?? "");
    if (cid?.[1] !== undefined) byIndex.set(Number(cid[1]), sub);
    inOrder.push(sub);
  }
  return Array.from({ length: count }, (_, i) => byIndex.get(i) ?? (byIndex.size === 0 ? inOrder[i] : undefined)).map(
    (s) => s ?? { status: 0, headers: {}, data: undefined },
  ) as Array<{ status: number; headers: Record<string, string>; data: unknown }>;
}

function splitHead(s: string): [string, string | undefined] {
  const m = /\r?\n\r?\n/.exec(s);
  if (!m) return [s, undefined];
  return [s.slice(0, m.index), s.slice(m.index + m[0].length)];
}

function parseHeaders(block: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of block.split(/\r?\n/)) {
    const i = line.indexOf(":");
    if (i > 0) out[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return out;
}
