// The batch strategy of getMessages / getThreads: ids in chunks of spec.perBatch sent as HTTP batch
// POSTs (batch-protocol.ts), `concurrency` in flight, each holding one in-flight permit per part
// (Gmail answers a batch's parts in parallel and counts each). Only a chunk's failed parts are sent
// again, per the retry policy; a 401 — of the whole POST or of parts — gets the same one token
// refresh as a single call (refresh-on-401.ts). Per-id failures (not_found, permanent, transient
// after retries) are outcomes; auth_revoked and a rate limit past the retry budget are thrown, the
// latter after giving the ids it refused that outcome (get-by-ids.ts keeps what was fetched).
import type { OAuth2Client } from "google-auth-library";
import { GmailError } from "../errors.ts";
import {
  apiBatchRequests,
  apiQuotaUnitsTotal,
  apiRateLimitedTotal,
  apiRequestDurationSeconds,
  apiRequestsTotal,
  apiRetriesTotal,
} from "../metrics.ts";
import { buildBatchRequest, parseBatchResponse, type SubResponse } from "./batch-protocol.ts";
import {
  authRevoked,
  cost,
  failure,
  isLocalWait,
  runInFlight,
  throwIfRevoked,
  type CallContext,
} from "./call-context.ts";
import { classifyGmailError, rateLimitScope, statusCodeLabel } from "./classify-error.ts";
import type { GetById, Got } from "./get-by-ids.ts";
import { pool } from "./pool.ts";
import { createRefreshOn401, type RefreshOn401 } from "./refresh-on-401.ts";
import { retryDelay, retryReason, sleep } from "./retry.ts";

/** One id's answer in a round; `raw`: the whole POST's unclassified error, when the POST failed. */
type Answer<T> =
  | { id: string; value: T; err?: undefined; raw?: undefined }
  | { id: string; value?: undefined; err: GmailError; raw?: unknown };

/** What a round's failures call for. */
interface Verdict {
  /** The ids to send again. */
  retry: string[];
  /** Some got the 401 that earns the chunk's one token refresh. */
  unauthorized: boolean;
  /** The failure that sets the retry delay: a rate limit if any, else the first transient one. */
  worst?: GmailError;
  rateLimited?: GmailError;
}

export async function getBatch<T>(
  ctx: CallContext,
  spec: GetById<T>,
  ids: string[],
  concurrency: number,
  out: Map<string, Got<T>>,
): Promise<void> {
  const chunks: string[][] = [];
  for (let i = 0; i < ids.length; i += spec.perBatch) chunks.push(ids.slice(i, i + spec.perBatch));
  await pool(chunks, concurrency, (chunk) => getChunk(ctx, spec, chunk, out));
}

/** Sends one chunk round after round until every id has its outcome in `out` or retries run out. */
async function getChunk<T>(
  ctx: CallContext,
  spec: GetById<T>,
  chunk: string[],
  out: Map<string, Got<T>>,
): Promise<void> {
  const on401 = createRefreshOn401(ctx.auth, ctx.tokenUrl);
  let pending = chunk;
  for (let attempt = 0; pending.length > 0; attempt++) {
    throwIfRevoked(ctx);
    const answers = await sendRound(ctx, spec, pending);
    const verdict = await settleRound(ctx, on401, answers, out);
    if (verdict.retry.length === 0) return;
    if (verdict.unauthorized) {
      on401.refresh();
      if (!verdict.worst) {
        // Nothing else to wait for: resend the 401s now, outside the retry budget, as a single call does.
        pending = verdict.retry;
        attempt--;
        continue;
      }
    }
    const { worst } = verdict;
    if (!worst) return;
    try {
      if (!(await waitToRetry(ctx, spec.method, { ...verdict, worst }, answers, attempt))) return;
    } catch (err) {
      // Past the budget: every id still pending ends with the rate limit, not a transient failure.
      if (verdict.rateLimited) for (const id of verdict.retry) out.set(id, { id, error: verdict.rateLimited });
      throw err;
    }
    pending = verdict.retry;
  }
}

/** One batch POST for the pending ids, with its quota and metrics: every id's answer, in order. */
async function sendRound<T>(ctx: CallContext, spec: GetById<T>, pending: string[]): Promise<Array<Answer<T>>> {
  const { method } = spec;
  const units = cost(method) * pending.length;
  await ctx.quota.acquire(ctx.accountId, units, { maxWaitMs: ctx.fetchQuotaWaitMs });
  apiQuotaUnitsTotal.inc({ method }, units);
  apiBatchRequests.observe(pending.length);
  const end = apiRequestDurationSeconds.startTimer({ method: "batch" });
  try {
    const paths = pending.map(spec.path);
    const send = () => sendBatch(ctx.auth, ctx.origin, paths);
    const subs = await runInFlight(ctx, paths.length, ctx.fetchQuotaWaitMs, send);
    return pending.map((id, i) => partAnswer<T>(method, id, subs[i]));
  } catch (raw) {
    // The whole batch failed (network, 5xx, 429, token refresh): every sub-request shares it.
    // Only a part's own 404 means that message is gone: a 404 (or any other answer that is
    // not Gmail's) to the batch POST itself is the endpoint failing — an HTML page when a batch
    // path is retired (Google did so in 2020) or a proxy — and must never read as deletions.
    if (isLocalWait(raw)) throw raw;
    const err = batchLevel(ctx, await failure(ctx, raw, "batch"));
    return pending.map((id) => ({ id, err, raw }));
  } finally {
    end();
  }
}

async function sendBatch(auth: OAuth2Client, origin: string, paths: string[]): Promise<SubResponse[]> {
  const batch = buildBatchRequest(paths);
  const res = await auth.request<string>({
    // The discovery document's batchPath ("batch"); the API-specific /batch/gmail/v1 is the
    // guide's older form.
    url: `${origin}/batch`,
    method: "POST",
    headers: { "Content-Type": batch.contentType },
    data: batch.body,
    responseType: "text",
    retry: false,
  });
  return parseBatchResponse(String(res.data), contentTypeOf(res.headers), paths.length);
}

/** The response's Content-Type, from a fetch Headers object or a plain record. */
function contentTypeOf(headers: unknown): string {
  const fromFetch = (headers as Headers).get?.("content-type");
  return fromFetch ?? String((headers as Record<string, string>)["content-type"] ?? "");
}

/** A part's answer: its value on 2xx, else its classified failure (a missing part is transient). */
function partAnswer<T>(method: string, id: string, sub: SubResponse | undefined): Answer<T> {
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
}

/**
 * A whole-batch answer as a batch-level error: not_found/permanent of the POST are the endpoint's,
 * retried as transient.
 */
function batchLevel(ctx: CallContext, err: GmailError): GmailError {
  if (err.kind !== "not_found" && err.kind !== "permanent") return err;
  ctx.log.warn(
    { accountId: ctx.accountId, status: err.status, reason: err.reason },
    "the batch endpoint itself failed; its parts are retried, none is taken as deleted",
  );
  const message = `batch endpoint answered ${err.status ?? "an error"}: ${err.message.slice(0, 200)}`;
  return new GmailError("transient", message, {
    ...(err.status !== undefined ? { status: err.status } : {}),
    reason: "batchFailed",
    cause: err,
  });
}

/**
 * Records a round's final outcomes in `out` (values, and failures that are not retried or may be
 * the last word) and says what to send again; throws auth_revoked, which ends the account's work.
 */
async function settleRound<T>(
  ctx: CallContext,
  on401: RefreshOn401,
  answers: Array<Answer<T>>,
  out: Map<string, Got<T>>,
): Promise<Verdict> {
  const v: Verdict = { retry: [], unauthorized: false };
  for (const a of answers) {
    if (a.value !== undefined) {
      out.set(a.id, { id: a.id, value: a.value });
      continue;
    }
    const err = on401.settle(a.err as GmailError);
    if (on401.curable(err, a.raw)) {
      v.unauthorized = true; // as for single calls: refresh once, then believe a 401
      v.retry.push(a.id);
      continue;
    }
    if (err.kind === "auth_revoked") return authRevoked(ctx, err);
    if (err.kind === "transient" || err.kind === "rate_limited") {
      v.retry.push(a.id);
      if (err.kind === "rate_limited") v.rateLimited ??= err;
      v.worst = v.rateLimited ?? v.worst ?? err;
    }
    out.set(a.id, { id: a.id, error: err });
  }
  return v;
}

/**
 * Waits before a round's failed ids are sent again; false when the retries are used up (the
 * failures stay as their ids' outcomes). A rate limit past the budget is thrown instead.
 */
async function waitToRetry(
  ctx: CallContext,
  method: string,
  v: Verdict & { worst: GmailError },
  answers: Array<Answer<unknown>>,
  attempt: number,
): Promise<boolean> {
  const { worst, rateLimited } = v;
  if (rateLimited && !answers.every((a) => a.err === rateLimited)) {
    // sub-request 429s (a whole-batch 429 was counted and penalised in failure())
    apiRateLimitedTotal.inc({ scope: rateLimitScope(rateLimited) });
    await ctx.quota.penalize(ctx.accountId, rateLimited.retryAfterMs);
  }
  const delay = retryDelay(worst, attempt, ctx.policy);
  if (delay === undefined) {
    if (rateLimited) throw rateLimited; // parks the job; transient ones stay as per-id errors
    return false;
  }
  apiRetriesTotal.inc({ reason: retryReason(worst) }, v.retry.length);
  ctx.log.debug(
    { accountId: ctx.accountId, method, retry: v.retry.length, delay, kind: worst.kind },
    "retrying failed batch sub-requests",
  );
  await sleep(delay);
  return true;
}
