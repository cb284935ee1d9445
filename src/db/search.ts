// Full-text search over what we keep: message subject, sender and body, and attachment filename and
// extracted text (the stored `search` tsvectors, 'simple' config so names and codes match as typed).
// A message matches through itself or any of its attachments; its best hit ranks it and gives the
// highlighted snippet.
import { sql } from "kysely";
import type { Executor } from "./database.ts";

export interface SearchHit {
  account: string;
  gmailId: string;
  threadId: string;
  date: string | null;
  from: string | null;
  subject: string | null;
  /** The attachment whose text matched best, when the best hit was an attachment. */
  attachment: string | null;
  rank: number;
  /** Matching words wrapped in the given markers. */
  snippet: string;
}

export interface SearchOptions {
  accountId?: number;
  limit: number;
  /** Mail in Spam or Trash is left out unless asked for, as Gmail's own search does. */
  includeSpamTrash?: boolean;
  /** Markers around matched words in the snippet. */
  highlight?: { start: string; stop: string };
}

// ts_headline re-parses the document, so it only runs on the final page of hits, on a capped text.
const HEADLINE_CHARS = 100_000;

export async function searchMessages(db: Executor, query: string, opts: SearchOptions): Promise<SearchHit[]> {
  const start = opts.highlight?.start ?? "**";
  const stop = opts.highlight?.stop ?? "**";
  const headlineOptions = `MaxFragments=2, MaxWords=18, MinWords=6, FragmentDelimiter=" … ", StartSel="${start.replaceAll('"', "")}", StopSel="${stop.replaceAll('"', "")}"`;
  const account = sql`${opts.accountId === undefined ? sql`true` : sql`m.account_id = ${opts.accountId}`} AND ${opts.includeSpamTrash ? sql`true` : sql`NOT (m.label_ids && ARRAY['SPAM','TRASH']::text[])`}`;
  const result = await sql<{
    account: string;
    gmail_id: string;
    thread_id: string;
    internal_date: Date | null;
    from_address: string | null;
    subject: string | null;
    filename: string | null;
    rank: number;
    snippet: string;
  }>`
    WITH q AS (SELECT websearch_to_tsquery('simple', ${query}) AS q),
    hits AS (
      SELECT m.id AS message_id, ts_rank_cd(m.search, q.q) AS rank, NULL::bigint AS attachment_id
        FROM messages m, q
       WHERE m.search @@ q.q AND m.deleted_at IS NULL AND ${account}
      UNION ALL
      SELECT a.message_id, ts_rank_cd(a.search, q.q), a.id
        FROM attachments a JOIN messages m ON m.id = a.message_id, q
       WHERE a.search @@ q.q AND m.deleted_at IS NULL AND ${account}
    ),
    best AS (
      SELECT DISTINCT ON (message_id) message_id, rank, attachment_id
        FROM hits ORDER BY message_id, rank DESC, attachment_id NULLS FIRST
    ),
    top AS (SELECT * FROM best ORDER BY rank DESC, message_id DESC LIMIT ${opts.limit})
    SELECT acc.email AS account, m.gmail_id, m.thread_id, m.internal_date, m.from_address, m.subject,
           a.filename, top.rank::float8 AS rank,
           ts_headline('simple',
             left(CASE WHEN a.id IS NOT NULL THEN coalesce(a.extracted_text, a.filename, '')
                       ELSE concat_ws(E'\n', m.subject, m.body_text) END, ${HEADLINE_CHARS}),
             q.q, ${headlineOptions}) AS snippet
      FROM top
      JOIN messages m ON m.id = top.message_id
      JOIN accounts acc ON acc.id = m.account_id
      LEFT JOIN attachments a ON a.id = top.attachment_id
      CROSS JOIN q
     ORDER BY top.rank DESC, m.id DESC`.execute(db);
  return result.rows.map((r) => ({
    account: r.account,
    gmailId: r.gmail_id,
    threadId: r.thread_id,
    date: r.internal_date?.toISOString() ?? null,
    from: r.from_address,
    subject: r.subject,
    attachment: r.filename,
    rank: Number(r.rank),
    snippet: r.snippet.replace(/\s+/g, " ").trim(),
  }));
}
