// The fetch half of storing messages: ids → a PreparedBatch (GmailPort.getMessages or getThreads,
// bounded parallel/batched by the client; each message prepared by src/sync/prepare-message.ts),
// every id sorted into stored / gone / failed. Whole-job conditions (rate limit, revoked auth) stop
// the batch and are returned in `abort`; per-message failures are returned so the caller can store
// the rest. src/sync/store-prepared.ts writes the batch; nothing here touches the database.
import type { MessageRecord } from "../db/messages.ts";
import type { GmailError } from "../errors.ts";
import type { GmailMessage, GmailPort } from "../gmail/port.ts";
import { syncErrorsTotal } from "../metrics.ts";
import { type MessageFailure, type PrepareDeps, prepareMessage } from "./prepare-message.ts";

/** Gmail and the attachment pipeline: what fetching and preparing use. */
export type FetchDeps = PrepareDeps;

export interface PreparedBatch {
  records: MessageRecord[];
  /** 404 on fetch: the message is gone (deleted since it was listed). */
  gone: string[];
  failed: MessageFailure[];
  /**
   * Stored, but not whole: an attachment could not be downloaded (its row says fetch_failed). The
   * message goes into the retry ledger too, and a later attempt replaces the row.
   */
  incomplete: MessageFailure[];
  /**
   * Set when the batch stopped early (rate limited, auth revoked, an unexpected error): what was
   * prepared until then is still returned so the caller can store it — without moving its
   * checkpoint or cursor — before rethrowing this, and a retry does not fetch it again.
   */
  abort?: unknown;
}

// Small enough that one getMessages call fits the client's quota wait even after AIMD has cut the
// account's rate; a call that gives up still returns what it fetched (get-by-ids.ts).
const FETCH_CHUNK = 25;
// The same quota per call for threads (10 units each): 12 threads ≈ 25 messages.get.
const THREAD_CHUNK = 12;
// threads.get costs 10 units for the whole thread, messages.get 5 for one message: from two wanted
// messages of one thread on, the thread is never dearer, and its other messages come free
// (`npm run bench:threads`: 1.46× the messages per quota unit on the generated mailbox).
const THREAD_MIN_MESSAGES = 2;
const ATTACHMENT_PARALLEL = 4;

/** Lets fetchMessages fetch several wanted messages of one thread with one threads.get. */
export interface ThreadPlan {
  /** Each wanted id's thread, as messages.list gave it. */
  threadOf: ReadonlyMap<string, string>;
  /**
   * Which messages of the fetched threads that were not asked for to store too: those in the sync's
   * scope and not already stored (their own page then finds them current and fetches nothing).
   * Omitted: none.
   */
  pickExtras?: (messages: GmailMessage[]) => Promise<GmailMessage[]>;
}

/**
 * A per-id error that is really the whole call's: the account is throttled or revoked, or the batch
 * endpoint itself kept failing (client.ts batchLevel) — no message of it was judged, so none goes
 * to the retry ledger; the run stops with the cursor held and the job is retried.
 */
function isWholeCall(e: GmailError): boolean {
  return e.kind === "rate_limited" || e.kind === "auth_revoked" || e.reason === "batchFailed";
}

/** Splits wanted ids into threads worth a threads.get and ids fetched one by one. */
function planThreads(
  ids: string[],
  threadOf: ReadonlyMap<string, string>,
): { threads: Map<string, string[]>; singles: string[] } {
  const byThread = new Map<string, string[]>();
  for (const id of ids) {
    const t = threadOf.get(id);
    if (t === undefined || t === "") continue;
    const members = byThread.get(t);
    if (members) members.push(id);
    else byThread.set(t, [id]);
  }
  const threads = new Map([...byThread].filter(([, members]) => members.length >= THREAD_MIN_MESSAGES));
  const inThreads = new Set([...threads.values()].flat());
  return { threads, singles: [...new Set(ids)].filter((id) => !inThreads.has(id)) };
}

/**
 * Fetches and prepares `ids` (any number; chunked here). Chunks are fetched back to back while a
 * small pool prepares the messages already fetched (attachments: fetch + extract), so neither a
 * slow extraction nor the quota wait of the next chunk stalls the other. With a thread plan,
 * threads holding several wanted ids come whole from threads.get; a thread that fails, or lacks a
 * wanted id (moved to another thread since it was listed), falls back to messages.get for them.
 */
export async function fetchMessages(deps: FetchDeps, ids: string[], plan?: ThreadPlan): Promise<PreparedBatch> {
  const out: PreparedBatch = { records: [], gone: [], failed: [], incomplete: [] };
  const limit = semaphore(ATTACHMENT_PARALLEL);
  const preparing: Array<Promise<void>> = [];

  const listed = new Set(ids);
  const seen = new Set<string>();
  // Once the batch has stopped (rate limit, revoked grant), a message already fetched is still
  // prepared and stored — Gmail has served and charged it — but makes no further Gmail call: one
  // that needs its body or an attachment downloaded ends with the stop, and the retry fetches it.
  const gmail: GmailPort = {
    ...deps.gmail,
    getAttachment: (messageId, attachmentId) =>
      out.abort !== undefined ? Promise.reject(out.abort) : deps.gmail.getAttachment(messageId, attachmentId),
  };
  const prepare = (msg: GmailMessage, extra: boolean) => {
    // One row per id: an upsert may not touch a row twice (a message listed under one thread and
    // found in another, moved meanwhile).
    const id = msg.id ?? "";
    if (seen.has(id)) return;
    seen.add(id);
    const p = limit(async () => {
      const r = await prepareMessage({ ...deps, gmail }, msg);
      if ("record" in r) {
        out.records.push(r.record);
        if (r.incomplete !== undefined && !extra) out.incomplete.push(r.incomplete);
      }
      // An extra that fails is simply not stored: its own page fetches it again and decides.
      else if (!extra) out.failed.push(r.failure);
    });
    p.catch((err: unknown) => {
      out.abort ??= err;
    });
    preparing.push(p);
  };

  const { threads, singles } = plan
    ? planThreads(ids, plan.threadOf)
    : { threads: new Map<string, string[]>(), singles: [...ids] };
  try {
    const threadIds = [...threads.keys()];
    for (let i = 0; i < threadIds.length && out.abort === undefined; i += THREAD_CHUNK) {
      const fetched = await deps.gmail.getThreads(threadIds.slice(i, i + THREAD_CHUNK));
      const candidates: GmailMessage[] = [];
      for (const f of fetched) {
        const wanted = new Set(threads.get(f.id) ?? []);
        if (f.messages === undefined) {
          if (isWholeCall(f.error)) out.abort ??= f.error;
          // Deleted thread, a member that cannot be rendered, retries used up: decide per message.
          else singles.push(...wanted);
          continue;
        }
        for (const msg of f.messages) {
          const id = msg.id ?? "";
          // Wanted under this thread, or listed on this page under another (moved since): either
          // way its failure must be recorded, so it is never treated as a droppable extra.
          if (wanted.delete(id) || listed.has(id)) prepare(msg, false);
          else if (id !== "") candidates.push(msg);
        }
        singles.push(...wanted);
      }
      if (plan?.pickExtras && candidates.length > 0 && out.abort === undefined) {
        for (const msg of await plan.pickExtras(candidates)) prepare(msg, true);
      }
    }
    for (let i = 0; i < singles.length && out.abort === undefined; i += FETCH_CHUNK) {
      const fetched = await deps.gmail.getMessages(singles.slice(i, i + FETCH_CHUNK));
      for (const f of fetched) {
        if (f.message !== undefined) {
          prepare(f.message, false);
          continue;
        }
        const e = f.error;
        if (isWholeCall(e)) {
          out.abort ??= e; // keep the chunk's fetched messages; fetch no further chunk
          continue;
        }
        if (e.kind === "not_found") out.gone.push(f.id);
        else {
          const kind = e.kind === "transient" ? "transient" : "permanent";
          syncErrorsTotal.inc({ error_type: kind });
          out.failed.push({ id: f.id, kind, reason: `fetch_${e.kind}`, detail: e.message });
        }
      }
    }
  } catch (err) {
    out.abort ??= err;
  }
  // Never leave extractions running behind an error: wait for them either way.
  await Promise.allSettled(preparing);
  return out;
}

/** At most `n` of the given tasks run at once. */
function semaphore(n: number): <T>(task: () => Promise<T>) => Promise<T> {
  let running = 0;
  const waiting: Array<() => void> = [];
  return async (task) => {
    if (running >= n) await new Promise<void>((r) => waiting.push(r));
    running++;
    try {
      return await task();
    } finally {
      running--;
      waiting.shift()?.();
    }
  };
}
