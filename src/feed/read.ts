// Reading the change feed: the envelope consumers get (CLI --json lines, GET /changes), a page by
// cursor, and the follow loop the CLI runs. Ids, labels and statuses only — never a body or an
// attachment's text: a consumer reads the rows it cares about.
import { type ChangeKind, type ChangeRow, readChanges } from "../db/changes.ts";
import type { Executor } from "../db/database.ts";
import { CursorExpiredError } from "../errors.ts";
import type { ChangeNotifier } from "./notifier.ts";

/** One change as consumers see it. Keys that do not apply to the kind are left out. */
export interface ChangeEnvelope {
  /** The cursor: increasing in commit order; gaps (rolled-back transactions) are never filled. */
  seq: number;
  /** When it was committed (ISO 8601). */
  at: string;
  accountId: number;
  /** The account's address; null once the account is purged. */
  account: string | null;
  kind: ChangeKind;
  /** true: written by a backfill, resync or reconcile (the mailbox as it already was); false: a live change. */
  historic: boolean;
  gmailId?: string;
  threadId?: string;
  /** message.added: the message's labels; message.labels_changed: the labels it gained. */
  labelsAdded?: string[];
  /** message.labels_changed: the labels it lost. */
  labelsRemoved?: string[];
  /** attachment.extracted: the attachments row id and the MIME part. */
  attachmentId?: number;
  partId?: string;
  /** account.status_changed: active | reauth_required | disabled | purged, and why. */
  status?: string;
  reason?: string | null;
}

export function toEnvelope(r: ChangeRow): ChangeEnvelope {
  const e: ChangeEnvelope = {
    seq: Number(r.seq),
    at: new Date(r.created_at).toISOString(),
    accountId: r.account_id,
    account: r.email,
    kind: r.kind,
    historic: r.historic,
  };
  if (r.gmail_id !== null) e.gmailId = r.gmail_id;
  if (r.thread_id !== null) e.threadId = r.thread_id;
  if (r.labels_added !== null) e.labelsAdded = r.labels_added;
  if (r.labels_removed !== null) e.labelsRemoved = r.labels_removed;
  if (r.attachment_id !== null) e.attachmentId = Number(r.attachment_id);
  if (r.part_id !== null) e.partId = r.part_id;
  if (r.status !== null) e.status = r.status;
  if (r.kind === "account.status_changed") e.reason = r.reason;
  return e;
}

export interface FeedPage {
  changes: ChangeEnvelope[];
  /** The cursor to resume after: the last change's seq, or the cursor given when there was none. */
  next: number;
}

/**
 * Changes after `after` (none given: from the oldest kept), oldest first, at most `limit`.
 * Throws CursorExpiredError when retention has pruned changes after the cursor.
 */
export async function readFeedPage(
  db: Executor,
  opts: { after?: number; limit: number; accountId?: number },
): Promise<FeedPage> {
  const after = opts.after ?? 0;
  const page = await readChanges(db, {
    after,
    limit: opts.limit,
    ...(opts.accountId !== undefined ? { accountId: opts.accountId } : {}),
  });
  // No cursor: start at the oldest kept change. A cursor below the horizon has missed changes.
  if (opts.after !== undefined && opts.after < page.prunedThrough)
    throw new CursorExpiredError(opts.after, page.prunedThrough);
  const changes = page.changes.map(toEnvelope);
  const last = changes.at(-1);
  return { changes, next: last !== undefined ? last.seq : Math.max(after, page.prunedThrough) };
}

/** How long a follower waits for a notification before reading anyway (a notification is never lost while connected). */
const SAFETY_POLL_MS = 30_000;

/**
 * Emits every change after `after` (none: from the oldest kept) in seq order; with `follow`, then
 * waits for more — woken by the notifier (NOTIFY on commit, or its polling while LISTEN is down) —
 * until `signal` aborts. Stops after `limit` changes when given. Returns the last cursor.
 */
export async function followChanges(
  db: Executor,
  opts: {
    after?: number;
    accountId?: number;
    limit?: number;
    follow: boolean;
    notifier?: ChangeNotifier;
    signal?: AbortSignal;
    batch?: number;
    /** Following, a failed read (Postgres restarting) is retried after this long, once told here. */
    onReadError?: (err: Error) => void;
    retryMs?: number;
  },
  emit: (e: ChangeEnvelope) => void | Promise<void>,
): Promise<number> {
  const batch = opts.batch ?? 1000;
  let after = opts.after;
  let emitted = 0;
  for (;;) {
    if (opts.signal?.aborted) break;
    const seen = opts.notifier?.version ?? 0;
    const want = opts.limit === undefined ? batch : Math.min(batch, opts.limit - emitted);
    let page: FeedPage;
    try {
      page = await readFeedPage(db, {
        limit: want,
        ...(after !== undefined ? { after } : {}),
        ...(opts.accountId !== undefined ? { accountId: opts.accountId } : {}),
      });
    } catch (err) {
      // An expired cursor is final; anything else, while following, is waited out.
      if (!opts.follow || err instanceof CursorExpiredError) throw err;
      opts.onReadError?.(err as Error);
      await sleep(opts.retryMs ?? 1_000, opts.signal);
      continue;
    }
    for (const e of page.changes) {
      if (opts.signal?.aborted) return after ?? page.next;
      await emit(e);
      after = e.seq;
      emitted++;
    }
    after = page.next;
    if (opts.limit !== undefined && emitted >= opts.limit) break;
    if (page.changes.length === want) continue; // more may be waiting
    if (!opts.follow || opts.notifier === undefined) break;
    await opts.notifier.wait(seen, SAFETY_POLL_MS, opts.signal);
  }
  return after ?? 0;
}

function sleep(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    const done = () => {
      clearTimeout(timer);
      signal?.removeEventListener("abort", done);
      resolve();
    };
    const timer = setTimeout(done, ms);
    signal?.addEventListener("abort", done, { once: true });
  });
}
