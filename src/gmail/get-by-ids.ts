// getMessages / getThreads: one resource by id, as HTTP batches (batch-get.ts) or bounded parallel
// GETs (parallel-get.ts). Ids are fetched once however often they are asked for, and the outcomes
// come back in input order, one per id asked. A rate limit that outlasts the retry budget stops the
// fetch but is not thrown: what was fetched before it comes back with the rest answered by the
// rate limit (a whole-call outcome the caller stops on). Thrown, it would discard messages Gmail had
// already served and charged, and the retried job would fetch and pay for them again.
import type { gmail_v1 } from "@googleapis/gmail";
import { GmailError, isGmailError } from "../errors.ts";
import { getBatch } from "./batch-get.ts";
import { throwIfRevoked, type CallContext } from "./call-context.ts";
import { getParallel } from "./parallel-get.ts";
import type { GmailMessage } from "./port.ts";

/** What differs between fetching messages and threads by id; the machinery is shared. */
export interface GetById<T> {
  method: "messages.get" | "threads.get";
  /** The request path of one sub-request inside a batch. */
  path: (id: string) => string;
  /** One plain GET (the parallel strategy). */
  get: (id: string) => Promise<{ data: T }>;
  /** Ids per batch: the same share of a second of quota whatever the method costs. */
  perBatch: number;
}

/** One id's outcome: the resource, or its error (not_found, permanent, or transient after retries). */
export type Got<T> = { id: string; value: T; error?: undefined } | { id: string; value?: undefined; error: GmailError };

export interface FetchPlan {
  strategy: "batch" | "parallel";
  /** Parallel GETs in flight (parallel), or batch HTTP requests in flight (batch). */
  concurrency: number;
}

export function messagesById(api: gmail_v1.Gmail, perBatch: number): GetById<GmailMessage> {
  return {
    method: "messages.get",
    path: (id) => `/gmail/v1/users/me/messages/${encodeURIComponent(id)}?format=full`,
    get: (id) => api.users.messages.get({ userId: "me", id, format: "full" }, { retry: false }),
    perBatch,
  };
}

/** threads.get by id; format minimal gives each message's id, labelIds and historyId only. */
export function threadsById(
  api: gmail_v1.Gmail,
  perBatch: number,
  format: "full" | "minimal" = "full",
): GetById<gmail_v1.Schema$Thread> {
  return {
    method: "threads.get",
    path: (id) => `/gmail/v1/users/me/threads/${encodeURIComponent(id)}?format=${format}`,
    get: (id) => api.users.threads.get({ userId: "me", id, format }, { retry: false }),
    perBatch,
  };
}

export async function getByIds<T>(
  ctx: CallContext,
  plan: FetchPlan,
  spec: GetById<T>,
  ids: string[],
): Promise<Array<Got<T>>> {
  throwIfRevoked(ctx);
  const unique = [...new Set(ids)];
  if (unique.length === 0) return [];
  const got = new Map<string, Got<T>>();
  let stopped: GmailError | undefined;
  try {
    if (plan.strategy === "batch") await getBatch(ctx, spec, unique, plan.concurrency, got);
    else await getParallel(ctx, spec, unique, plan.concurrency, got);
  } catch (err) {
    if (!isGmailError(err, "rate_limited")) throw err;
    stopped = err;
  }
  const unanswered = (id: string) => stopped ?? new GmailError("transient", `${spec.method} of ${id} was not answered`);
  return ids.map((id) => got.get(id) ?? { id, error: unanswered(id) });
}
