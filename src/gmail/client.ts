// GmailPort over @googleapis/gmail, for one account. Every call: charge its documented quota cost
// to the shared governor, send with the client's own retry off, classify any failure
// (classify-error.ts), retry per retry.ts, count metrics (call.ts). getMessages uses the HTTP batch
// endpoint (batch-get.ts: retrying only the failed sub-requests) or bounded parallel GETs
// (parallel-get.ts); getThreads does the same with threads.get.
//
// Account-level failures end the account's work instead of being returned per id: auth_revoked
// (after one forced token refresh on a 401, refresh-on-401.ts) calls onAuthRevoked once and makes
// every later call on this port fail without touching the network (call-context.ts); a rate limit
// that outlasts the retry budget is thrown so the job can be parked with its retryAfterMs — except
// inside getMessages/getThreads, which return it as the outcome of the ids it left unfetched and
// keep the ones fetched before it (get-by-ids.ts).
import { gmail, type gmail_v1 } from "@googleapis/gmail";
import type { OAuth2Client } from "google-auth-library";
import type { GmailError } from "../errors.ts";
import type { Logger } from "../log.ts";
import { cost, type CallContext } from "./call-context.ts";
import { callGmail } from "./call.ts";
import { getByIds, messagesById, threadsById, type FetchPlan, type GetById } from "./get-by-ids.ts";
import type { InFlightLimiter } from "./in-flight.ts";
import type {
  FetchedMessage,
  FetchedThread,
  GmailMessage,
  GmailPort,
  HistoryPage,
  ListHistoryOptions,
  ListMessagesOptions,
  ListMessagesPage,
  ListThreadsPage,
  Profile,
  WatchRequest,
} from "./port.ts";
import type { QuotaGovernor } from "./quota.ts";
import { DEFAULT_RETRY, type RetryPolicy } from "./retry.ts";

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
   * The same inside getMessages (default 10 s): giving up there stops the call, and the job is
   * parked with the ids left unfetched, so waiting a little is cheaper.
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

export function createGmailPort(deps: GmailPortDeps): GmailPort {
  const { auth } = deps;
  const ctx: CallContext = {
    auth,
    accountId: deps.accountId,
    quota: deps.quota,
    inFlight: deps.inFlight,
    log: deps.log,
    origin: new URL(deps.rootUrl).origin,
    tokenUrl: String(auth.endpoints?.oauth2TokenUrl ?? ""),
    policy: { ...DEFAULT_RETRY, ...deps.retry },
    maxQuotaWaitMs: deps.maxQuotaWaitMs ?? 2000,
    fetchQuotaWaitMs: deps.fetchQuotaWaitMs ?? 10_000,
    onAuthRevoked: deps.onAuthRevoked,
    revoked: undefined,
  };
  const api = gmail({ version: "v1", auth, rootUrl: deps.rootUrl, retry: false });
  const strategy = deps.fetchStrategy ?? DEFAULT_FETCH_STRATEGY;
  const plan: FetchPlan = { strategy, concurrency: Math.max(1, deps.concurrency ?? (strategy === "batch" ? 2 : 10)) };
  // Gmail answers a batch's parts in parallel and counts each toward the user's concurrency cap:
  // a batch larger than the cap would have its tail refused with "Too many concurrent requests".
  const batchSize = Math.min(100, deps.inFlight?.cap ?? 100, Math.max(1, deps.batchSize ?? DEFAULT_BATCH_SIZE));
  const messages = messagesById(api, batchSize);
  const threadsPerBatch = Math.max(1, Math.floor((batchSize * cost("messages.get")) / cost("threads.get")));
  const threads = threadsById(api, threadsPerBatch);
  const threadLabels = threadsById(api, threadsPerBatch, "minimal");
  return {
    getProfile: () => getProfile(ctx, api),
    listMessages: (o) => listMessages(ctx, api, o),
    getMessages: (ids) => getMessages(ctx, plan, messages, ids),
    getThreads: (threadIds) => getThreads(ctx, plan, threads, threadIds),
    listThreads: (o) => listThreads(ctx, api, o),
    getThreadLabels: (threadIds) => getThreads(ctx, plan, threadLabels, threadIds),
    getAttachment: (messageId, attachmentId) => getAttachment(ctx, api, messageId, attachmentId),
    listHistory: (o) => listHistory(ctx, api, o),
    watch: (req) => watch(ctx, api, req),
    stop: () => stop(ctx, api),
  };
}

async function getProfile(ctx: CallContext, api: gmail_v1.Gmail): Promise<Profile> {
  const d = await callGmail(ctx, "users.getProfile", () => api.users.getProfile({ userId: "me" }, { retry: false }));
  return {
    emailAddress: d.emailAddress ?? "",
    messagesTotal: d.messagesTotal ?? 0,
    threadsTotal: d.threadsTotal ?? 0,
    historyId: d.historyId ?? "",
  };
}

/** messages.list and threads.list take the same paging and filter parameters. */
function listParams(o: ListMessagesOptions) {
  return {
    userId: "me",
    maxResults: o.maxResults ?? 500,
    ...(o.pageToken ? { pageToken: o.pageToken } : {}),
    ...(o.q ? { q: o.q } : {}),
    ...(o.labelIds && o.labelIds.length > 0 ? { labelIds: o.labelIds } : {}),
    ...(o.includeSpamTrash !== undefined ? { includeSpamTrash: o.includeSpamTrash } : {}),
  };
}

async function listMessages(ctx: CallContext, api: gmail_v1.Gmail, o: ListMessagesOptions): Promise<ListMessagesPage> {
  const d = await callGmail(ctx, "messages.list", () => api.users.messages.list(listParams(o), { retry: false }));
  const page: ListMessagesPage = {
    messages: (d.messages ?? [])
      .map((m) => ({ id: m.id ?? "", threadId: m.threadId ?? "" }))
      .filter((m) => m.id !== ""),
    resultSizeEstimate: d.resultSizeEstimate ?? 0,
  };
  if (d.nextPageToken) page.nextPageToken = d.nextPageToken;
  return page;
}

async function listThreads(ctx: CallContext, api: gmail_v1.Gmail, o: ListMessagesOptions): Promise<ListThreadsPage> {
  const d = await callGmail(ctx, "threads.list", () => api.users.threads.list(listParams(o), { retry: false }));
  const page: ListThreadsPage = {
    threads: (d.threads ?? [])
      .map((t) => ({ id: t.id ?? "", historyId: t.historyId ?? "" }))
      .filter((t) => t.id !== "" && /^\d{1,20}$/.test(t.historyId)),
  };
  if (d.nextPageToken) page.nextPageToken = d.nextPageToken;
  return page;
}

async function getMessages(
  ctx: CallContext,
  plan: FetchPlan,
  spec: GetById<GmailMessage>,
  ids: string[],
): Promise<FetchedMessage[]> {
  return (await getByIds(ctx, plan, spec, ids)).map((g) =>
    g.error ? { id: g.id, error: g.error } : { id: g.id, message: g.value },
  );
}

async function getThreads(
  ctx: CallContext,
  plan: FetchPlan,
  spec: GetById<gmail_v1.Schema$Thread>,
  threadIds: string[],
): Promise<FetchedThread[]> {
  return (await getByIds(ctx, plan, spec, threadIds)).map((g) =>
    g.error ? { id: g.id, error: g.error } : { id: g.id, messages: g.value?.messages ?? [] },
  );
}

async function getAttachment(
  ctx: CallContext,
  api: gmail_v1.Gmail,
  messageId: string,
  attachmentId: string,
): Promise<Buffer> {
  const d = await callGmail(ctx, "messages.attachments.get", () =>
    api.users.messages.attachments.get({ userId: "me", messageId, id: attachmentId }, { retry: false }),
  );
  return Buffer.from(d.data ?? "", "base64url");
}

async function listHistory(ctx: CallContext, api: gmail_v1.Gmail, o: ListHistoryOptions): Promise<HistoryPage> {
  const d = await callGmail(ctx, "history.list", () =>
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

async function watch(ctx: CallContext, api: gmail_v1.Gmail, req: WatchRequest): ReturnType<GmailPort["watch"]> {
  const body: gmail_v1.Schema$WatchRequest = { topicName: req.topicName };
  if (req.labelIds) body.labelIds = req.labelIds;
  if (req.labelFilterBehavior) body.labelFilterBehavior = req.labelFilterBehavior;
  const d = await callGmail(ctx, "users.watch", () =>
    api.users.watch({ userId: "me", requestBody: body }, { retry: false }),
  );
  return { historyId: String(d.historyId ?? ""), expiration: String(d.expiration ?? "") };
}

async function stop(ctx: CallContext, api: gmail_v1.Gmail): Promise<void> {
  await callGmail(ctx, "users.stop", () => api.users.stop({ userId: "me" }, { retry: false }));
}
