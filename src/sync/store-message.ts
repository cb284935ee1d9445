// Gmail message → stored record: fetch (GmailPort.getMessages or getThreads, bounded parallel/batched
// by the client), parse, run each attachment part through the pipeline (bytes live only inside it), and
// sort every id into stored / gone / failed. Whole-job conditions (rate limit, revoked auth) are
// thrown; per-message failures are returned so the caller can store the rest.
import type { AttachmentPipeline, AttachmentRef, AttachmentResult } from "../attachments/types.ts";
import type { MessageRecord } from "../db/messages.ts";
import { GmailError, isGmailError } from "../errors.ts";
import { bodyHtmlToText, decodeTextBytes, parseGmailMessage } from "../gmail/parse-message.ts";
import type { GmailMessage, GmailPort } from "../gmail/port.ts";
import type { Logger } from "../log.ts";
import { attachmentsSkippedTotal, syncErrorsTotal } from "../metrics.ts";

export interface StoreDeps {
  gmail: GmailPort;
  pipeline: AttachmentPipeline;
  log: Logger;
}

export interface MessageFailure {
  id: string;
  kind: "transient" | "permanent";
  reason: string;
  detail: string;
}

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
// account's rate (a call that gives up loses its fetched messages); progress is kept per chunk.
const FETCH_CHUNK = 25;
// The same quota per call for threads (10 units each): 12 threads ≈ 25 messages.get.
const THREAD_CHUNK = 12;
// threads.get costs 10 units for the whole thread, messages.get 5 for one message: from two wanted
// messages of one thread on, the thread is never dearer, and its other messages come free
// (`npm run bench:threads`: 1.46× the messages per quota unit on the generated mailbox).
const THREAD_MIN_MESSAGES = 2;
const ATTACHMENT_PARALLEL = 4;

/** Lets fetchAndPrepare fetch several wanted messages of one thread with one threads.get. */
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

function toDate(v: unknown): Date | null {
  if (v === null || v === undefined || v === "") return null;
  if (v instanceof Date) return v;
  const n = typeof v === "number" ? v : Number(v);
  return Number.isFinite(n) ? new Date(n) : null;
}

/**
 * A per-id error that is really the whole call's: the account is throttled or revoked, or the batch
 * endpoint itself kept failing (client.ts batchLevel) — no message of it was judged, so none goes
 * to the retry ledger; the run stops with the cursor held and the job is retried.
 */
function isWholeCall(e: GmailError): boolean {
  return e.kind === "rate_limited" || e.kind === "auth_revoked" || e.reason === "batchFailed";
}

function rethrowIfJobLevel(err: unknown): void {
  if (isGmailError(err, "rate_limited") || isGmailError(err, "auth_revoked")) throw err;
}

/** Splits wanted ids into threads worth a threads.get and ids fetched one by one. */
function planThreads(ids: string[], threadOf: ReadonlyMap<string, string>): { threads: Map<string, string[]>; singles: string[] } {
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
export async function fetchAndPrepare(deps: StoreDeps, ids: string[], plan?: ThreadPlan): Promise<PreparedBatch> {
  const out: PreparedBatch = { records: [], gone: [], failed: [], incomplete: [] };
  const limit = semaphore(ATTACHMENT_PARALLEL);
  const preparing: Array<Promise<void>> = [];

  const listed = new Set(ids);
  const seen = new Set<string>();
  const prepare = (msg: GmailMessage, extra: boolean) => {
    // One row per id: an upsert may not touch a row twice (a message listed under one thread and
    // found in another, moved meanwhile).
    const id = msg.id ?? "";
    if (seen.has(id)) return;
    seen.add(id);
    const p = limit(async () => {
      if (out.abort !== undefined) return; // stopping: leave the rest to the retry
      const r = await prepareOne(deps, msg);
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

  const { threads, singles } = plan ? planThreads(ids, plan.threadOf) : { threads: new Map<string, string[]>(), singles: [...ids] };
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
          syncErrorsTotal.inc({ error_type: e.kind === "transient" ? "transient" : "permanent" });
          out.failed.push({ id: f.id, kind: e.kind === "transient" ? "transient" : "permanent", reason: `fetch_${e.kind}`, detail: e.message });
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

/**
 * Gmail announces a new message (history, push, a listing) a moment before messages.get serves it
 * (byeokim/gmailpush#10, openclaw/gogcli#379, which added a 3 s delay to every fetch). Ids of
 * `prepared.gone` that `which` selects are asked again after these delays — only they wait, so a
 * sync without a 404 is never slowed. What comes back moves to records/failed; returns the ids
 * still answering 404 (left in `prepared.gone` for the caller to decide).
 */
const NOT_FOUND_RECHECK_MS = [250, 750, 1500];

export async function recheckMissing(deps: StoreDeps, prepared: PreparedBatch, which: (id: string) => boolean): Promise<string[]> {
  const missing = () => prepared.gone.filter(which);
  for (const delay of NOT_FOUND_RECHECK_MS) {
    const ids = missing();
    if (ids.length === 0 || prepared.abort !== undefined) break;
    await new Promise((r) => setTimeout(r, delay));
    const again = await fetchAndPrepare(deps, ids);
    const asked = new Set(ids);
    prepared.gone = [...prepared.gone.filter((id) => !asked.has(id)), ...again.gone];
    prepared.records.push(...again.records);
    prepared.failed.push(...again.failed);
    prepared.incomplete.push(...again.incomplete);
    prepared.abort ??= again.abort;
  }
  return missing();
}

/**
 * Tripwire: a page or slice where most of what was just listed or announced answers 404 is far
 * likelier a broken endpoint or proxy than a mass deletion between listing and fetch. Such a batch
 * must not be committed (its "gone" ids would be soft-deleted); it fails transiently instead.
 */
const IMPLAUSIBLE_GONE_MIN = 20;
const IMPLAUSIBLE_GONE_SHARE = 0.5;

export function assertPlausibleGone(prepared: PreparedBatch, asked: number, explained: (id: string) => boolean = () => false): void {
  const gone = prepared.gone.filter((id) => !explained(id)).length;
  if (gone >= IMPLAUSIBLE_GONE_MIN && gone > asked * IMPLAUSIBLE_GONE_SHARE) {
    throw new GmailError("transient", `${gone} of ${asked} messages answered 404 at once: not taken as deleted; the batch will be retried`, { reason: "implausibleNotFound" });
  }
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

async function prepareOne(deps: StoreDeps, msg: GmailMessage): Promise<{ record: MessageRecord; incomplete?: MessageFailure } | { failure: MessageFailure }> {
  const id = msg.id ?? "";
  let parsed;
  try {
    parsed = parseGmailMessage(msg);
  } catch (err) {
    syncErrorsTotal.inc({ error_type: "parse" });
    return { failure: { id, kind: "permanent", reason: "parse", detail: (err as Error).message } };
  }
  let bodyText = parsed.bodyText ?? null;
  if (parsed.bodyRef !== null) {
    // A body Gmail served by reference (too large to inline): one attachments.get (5 units).
    try {
      const ref = parsed.bodyRef;
      const text = decodeTextBytes(await deps.gmail.getAttachment(id, ref.attachmentId), ref.charset);
      bodyText = ref.html ? bodyHtmlToText(text) : text;
    } catch (err) {
      rethrowIfJobLevel(err);
      const transient = !(err instanceof GmailError) || err.kind === "transient" || err.kind === "not_found";
      syncErrorsTotal.inc({ error_type: transient ? "transient" : "permanent" });
      return { failure: { id, kind: transient ? "transient" : "permanent", reason: "body_fetch", detail: (err as Error).message } };
    }
  }
  const attachments: AttachmentResult[] = [];
  const unfetched: string[] = [];
  for (const ref of parsed.attachments as AttachmentRef[]) {
    try {
      attachments.push(await deps.pipeline.process(ref, () => attachmentBytes(deps.gmail, id, ref)));
    } catch (err) {
      rethrowIfJobLevel(err);
      // The pipeline already turns a permanent download failure into a fetch_failed row; what
      // reaches here kept failing through the client's retries (5xx, network). One attachment must
      // not withhold the message: store it with this row marked, and retry the message later.
      const detail = (err as Error)?.message ?? String(err);
      syncErrorsTotal.inc({ error_type: "transient" });
      attachmentsSkippedTotal.inc({ reason: "fetch_failed" });
      unfetched.push(`part ${ref.partId}: ${detail}`);
      attachments.push({
        partId: ref.partId,
        filename: ref.filename,
        mimeType: ref.mimeType,
        contentId: ref.contentId,
        size: ref.size,
        detectedType: null,
        checksum: null,
        text: null,
        textTruncated: false,
        route: "skipped",
        skippedReason: "fetch_failed",
        metadata: { reason: detail.slice(0, 200), retrying: true },
      });
    }
  }
  const incomplete: MessageFailure | undefined =
    unfetched.length === 0 ? undefined : { id, kind: "transient", reason: "attachment_fetch", detail: unfetched.join("; ") };
  return {
    record: {
      gmailId: parsed.gmailId,
      threadId: parsed.threadId,
      historyId: parsed.historyId ?? null,
      internalDate: toDate(parsed.internalDate),
      labelIds: parsed.labelIds ?? [],
      fromAddress: parsed.fromAddress ?? null,
      toAddresses: parsed.toAddresses ?? [],
      ccAddresses: parsed.ccAddresses ?? [],
      subject: parsed.subject ?? null,
      messageIdHeader: parsed.messageIdHeader ?? null,
      inReplyTo: parsed.inReplyTo ?? null,
      snippet: parsed.snippet ?? null,
      bodyText,
      sizeEstimate: parsed.sizeEstimate ?? null,
      attachments,
    },
    ...(incomplete !== undefined ? { incomplete } : {}),
  };
}

function attachmentBytes(gmail: GmailPort, messageId: string, ref: AttachmentRef): Promise<Buffer> {
  if (ref.inlineData !== null) return Promise.resolve(Buffer.from(ref.inlineData, "base64url"));
  if (ref.attachmentId === null) return Promise.resolve(Buffer.alloc(0));
  return gmail.getAttachment(messageId, ref.attachmentId);
}
