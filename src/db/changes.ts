// The change feed's SQL (migration 0003): staging a transaction's changes (the outbox), reading
// them by cursor, retention, the bounds the metrics export, and the LISTEN connection followers
// wake on.
//
// Exactly-once resume. `seq` comes from a sequence, and a sequence hands out numbers in the order
// transactions ask, not the order they commit: left alone, a transaction holding seq 10 could
// commit after one holding seq 11 was read, and a consumer resuming "after 11" would never see 10.
// So no seq is drawn before COMMIT: appendChanges stages the changes (a transaction-local setting
// and a marker row), and a deferred constraint trigger on the marker (change_feed_flush, in the
// migration) runs inside COMMIT, takes one transaction-level advisory lock for the whole feed, then
// draws the seqs, inserts the rows and NOTIFYs. Postgres releases a transaction's locks only after
// its commit is visible, so the next committer draws its seqs only then: seqs become visible in
// increasing order, and whatever a reader sees is every committed change up to the highest seq it
// sees. The lock is held for the trigger's INSERT and the commit's WAL flush only — no application
// round trip, however busy the writer's event loop — and it is taken after every row lock the
// transaction holds, by a step that waits for no row lock, so it cannot close a deadlock cycle. A
// transaction that rolls back draws no seq; a commit that fails after the trigger leaves a gap that
// nothing will ever fill, which a consumer passes by resuming after the highest seq it read.
import { type Selectable, sql, type Transaction } from "kysely";
import pg from "pg";
import type { ChangesTable, Database, Db, Executor } from "./database.ts";

export const CHANGE_KINDS = [
  "message.added",
  "message.deleted",
  "message.labels_changed",
  "attachment.extracted",
  "account.status_changed",
] as const;
export type ChangeKind = (typeof CHANGE_KINDS)[number];

/** The NOTIFY channel (named in change_feed_flush too): the payload is the highest seq a commit wrote. */
export const CHANGES_CHANNEL = "gmail_sync_changes";

/** A change as a repository function reports it; the transaction's buffer adds account and historic. */
export interface ChangeFact {
  kind: ChangeKind;
  gmailId?: string;
  threadId?: string | null;
  labelsAdded?: string[];
  labelsRemoved?: string[];
  attachmentId?: number;
  partId?: string;
  status?: string;
  reason?: string | null;
}

export interface NewChange extends ChangeFact {
  accountId: number;
  historic: boolean;
}

/** Where the repository writes (messages.ts, accounts.ts) report what they actually changed. */
export interface ChangeSink {
  add(fact: ChangeFact): void;
}

/** One transaction's changes of one account, written by appendChanges as the transaction's last statement. */
export interface ChangeBuffer extends ChangeSink {
  readonly changes: NewChange[];
}

/** `historic`: the mailbox as it already was (backfill, resync, reconcile); false: a live change. */
export function changeBuffer(accountId: number, historic: boolean): ChangeBuffer {
  const changes: NewChange[] = [];
  return {
    changes,
    add(fact) {
      changes.push({ ...fact, accountId, historic });
    },
  };
}

// jsonb cannot hold NUL; an error message in a status reason might.
const text = (s: string | null | undefined): string | null =>
  s === null || s === undefined ? null : s.replaceAll("\u0000", "").slice(0, 500);

/**
 * Stages `changes` (in this order) to be written when the transaction commits — with seqs drawn
 * under the feed lock, and a NOTIFY to followers — or never, if it rolls back. May be called
 * anywhere in a transaction, any number of times; outside one it commits at once.
 */
export async function appendChanges(trx: Executor, changes: readonly NewChange[]): Promise<void> {
  if (changes.length === 0) return;
  // One parameter whatever the count: a backfill page stages hundreds of changes at once.
  const rows = changes.map((c) => ({
    account_id: c.accountId,
    kind: c.kind,
    historic: c.historic,
    gmail_id: text(c.gmailId),
    thread_id: text(c.threadId),
    labels_added: c.labelsAdded ?? null,
    labels_removed: c.labelsRemoved ?? null,
    attachment_id: c.attachmentId ?? null,
    part_id: text(c.partId),
    status: text(c.status),
    reason: text(c.reason),
  }));
  await sql`
    WITH p AS (SELECT ${JSON.stringify(rows)}::text AS j, coalesce(current_setting('gmail_sync.pending_changes', true), '') AS had),
    staged AS MATERIALIZED (
      SELECT set_config('gmail_sync.pending_changes',
        CASE WHEN had = '' THEN j ELSE (had::jsonb || j::jsonb)::text END, true) AS v
      FROM p)
    INSERT INTO change_feed_pending (txid) SELECT pg_current_xact_id()::text::bigint FROM staged`.execute(trx);
}

/**
 * Runs `fn` in a transaction and stages `buffer`'s changes in it (no buffer: the feed is off,
 * CHANGE_FEED=false). What `fn` reports into the buffer commits with its rows, or not at all.
 */
export async function transactionWithChanges<T>(
  db: Db,
  buffer: ChangeBuffer | undefined,
  fn: (trx: Transaction<Database>) => Promise<T>,
): Promise<T> {
  return db.transaction().execute(async (trx) => {
    const result = await fn(trx);
    if (buffer !== undefined) await appendChanges(trx, buffer.changes);
    return result;
  });
}

/**
 * For the account writes (accounts.ts): runs `fn` in the caller's transaction when given one
 * (the caller then commits `fn`'s changes with the rest), else in a transaction of its own.
 */
export async function inTransaction<T>(db: Executor, fn: (trx: Transaction<Database>) => Promise<T>): Promise<T> {
  if (db.isTransaction) return fn(db as Transaction<Database>);
  return db.transaction().execute(fn);
}

/** A changes row as read, with its account's address (null once the account is purged). */
export type ChangeRow = Omit<Selectable<ChangesTable>, "kind"> & { kind: ChangeKind; email: string | null };

/**
 * Changes with seq > `after` (of one account, given), oldest first, at most `limit`, and the seq
 * retention has pruned through: a cursor below it has missed changes. One statement, so one
 * snapshot: the page and the horizon agree.
 */
export async function readChanges(
  db: Executor,
  opts: { after: number; limit: number; accountId?: number },
): Promise<{ changes: ChangeRow[]; prunedThrough: number }> {
  const account = opts.accountId === undefined ? sql`` : sql`AND c.account_id = ${opts.accountId}`;
  const { rows } = await sql<Partial<ChangeRow> & { pruned_through: number }>`
    SELECT s.pruned_through, c.*
    FROM change_feed_state s
    LEFT JOIN LATERAL (
      SELECT c.seq, c.account_id, a.email, c.kind, c.historic, c.gmail_id, c.thread_id, c.labels_added,
             c.labels_removed, c.attachment_id, c.part_id, c.status, c.reason, c.created_at
      FROM changes c LEFT JOIN accounts a ON a.id = c.account_id
      WHERE c.seq > ${opts.after} ${account}
      ORDER BY c.seq
      LIMIT ${opts.limit}
    ) c ON true
    ORDER BY c.seq`.execute(db);
  const prunedThrough = Number(rows[0]?.pruned_through ?? 0);
  const changes = rows.filter((r) => r.seq !== null && r.seq !== undefined).map(({ pruned_through: _, ...r }) => r);
  return { changes: changes as ChangeRow[], prunedThrough };
}

/** The newest committed seq (or the pruning horizon when nothing is kept) and the oldest kept one (0: none). */
export async function changeFeedBounds(db: Executor): Promise<{ head: number; oldest: number; prunedThrough: number }> {
  const { rows } = await sql<{ head: number | null; oldest: number | null; pruned_through: number }>`
    SELECT (SELECT max(seq) FROM changes) AS head, (SELECT min(seq) FROM changes) AS oldest, pruned_through
    FROM change_feed_state`.execute(db);
  const r = rows[0];
  const prunedThrough = Number(r?.pruned_through ?? 0);
  return {
    head: r?.head === null || r?.head === undefined ? prunedThrough : Number(r.head),
    oldest: r?.oldest === null || r?.oldest === undefined ? 0 : Number(r.oldest),
    prunedThrough,
  };
}

/**
 * Retention: deletes changes older than `days`, oldest first, `batch` rows a statement. Each
 * statement moves the horizon (change_feed_state.pruned_through) with the rows it deletes, so a
 * reader never meets a pruned range without being told (410). Returns rows deleted and the horizon.
 */
export async function pruneChanges(
  db: Db,
  days: number,
  opts: { batch?: number } = {},
): Promise<{ deleted: number; prunedThrough: number }> {
  const batch = opts.batch ?? 10_000;
  let deleted = 0;
  for (;;) {
    // The oldest `batch` rows by seq (an index range, however long the feed), those of them old enough.
    const { rows } = await sql<{ n: number }>`
      WITH old AS (
        SELECT seq FROM (SELECT seq, created_at FROM changes ORDER BY seq LIMIT ${batch}) b
        WHERE created_at < now() - make_interval(days => ${days})),
      d AS (DELETE FROM changes c USING old WHERE c.seq = old.seq RETURNING c.seq),
      s AS (UPDATE change_feed_state SET pruned_through = greatest(pruned_through, (SELECT max(seq) FROM d)),
                   pruned_at = now()
            WHERE EXISTS (SELECT 1 FROM d) RETURNING 1)
      SELECT (SELECT count(*) FROM d)::int AS n`.execute(db);
    const n = Number(rows[0]?.n ?? 0);
    deleted += n;
    if (n < batch) break;
  }
  const state = await db.selectFrom("change_feed_state").select("pruned_through").executeTakeFirst();
  return { deleted, prunedThrough: Number(state?.pruned_through ?? 0) };
}

export interface ChangeListener {
  /** Ends the connection; no callback fires after it resolves. */
  close(): Promise<void>;
}

/**
 * A dedicated connection (not from a pool: LISTEN belongs to its session) that calls `onNotify`
 * with the seq of each committed batch of changes, and `onLost` once if the connection fails
 * (the caller falls back to polling and may listen again).
 */
export async function listenForChanges(
  databaseUrl: string,
  handlers: { onNotify: (seq: number) => void; onLost: (err: Error) => void },
): Promise<ChangeListener> {
  const client = new pg.Client({ connectionString: databaseUrl, connectionTimeoutMillis: 10_000, keepAlive: true });
  let closed = false;
  let lost = false;
  let ready = false;
  const fail = (err: Error) => {
    // Before LISTEN succeeded, a failure is the caller's rejected promise, not a loss.
    if (closed || lost || !ready) return;
    lost = true;
    handlers.onLost(err);
  };
  client.on("error", fail);
  client.on("end", () => fail(new Error("the LISTEN connection ended")));
  client.on("notification", (n) => {
    if (!closed && n.channel === CHANGES_CHANNEL) handlers.onNotify(Number(n.payload ?? 0));
  });
  try {
    await client.connect();
    await client.query(`LISTEN ${CHANGES_CHANNEL}`);
    ready = true;
  } catch (err) {
    closed = true;
    await client.end().catch(() => {});
    throw err;
  }
  return {
    async close() {
      if (closed) return;
      closed = true;
      await client.end().catch(() => {});
    },
  };
}
