// What users see about each account, derived from accounts + sync_state (+ counts): one of
// backfilling (with progress), active, throttled (until T), resyncing (reason), reauth_required,
// disabled. `gmail-sync accounts` prints it.
import { sql } from "kysely";
import type { Db } from "../db/database.ts";

export type AccountSyncStatus = "backfilling" | "active" | "throttled" | "resyncing" | "reauth_required" | "disabled";

export interface AccountStatusView {
  id: number;
  email: string;
  status: AccountSyncStatus;
  statusReason: string | null;
  resyncReason: string | null;
  throttledUntil: string | null;
  messages: number;
  attachments: number;
  backfill: { phase: string; listed: number; stored: number; estimate: number | null; pages: number; done: boolean; startedAt: string | null; finishedAt: string | null };
  historyId: string | null;
  lastSyncAt: string | null;
  cursorAgeSeconds: number | null;
  deadLetters: number;
  retryingMessages: number;
  watchExpiration: string | null;
  lastError: { kind: string | null; message: string; at: string | null } | null;
}

const iso = (d: Date | null | undefined): string | null => (d ? new Date(d).toISOString() : null);

export async function accountStatuses(db: Db, opts: { email?: string } = {}): Promise<AccountStatusView[]> {
  const rows = await db
    .selectFrom("accounts")
    .leftJoin("sync_state", "sync_state.account_id", "accounts.id")
    .select([
      "accounts.id",
      "accounts.email",
      "accounts.status",
      "accounts.status_reason",
      "sync_state.history_id",
      "sync_state.cursor_advanced_at",
      "sync_state.backfill_phase",
      "sync_state.backfill_pages",
      "sync_state.backfill_listed",
      "sync_state.backfill_stored",
      "sync_state.backfill_estimate",
      "sync_state.backfill_started_at",
      "sync_state.backfill_finished_at",
      "sync_state.resync_reason",
      "sync_state.last_sync_at",
      "sync_state.last_error",
      "sync_state.last_error_kind",
      "sync_state.last_error_at",
      "sync_state.throttled_until",
      "sync_state.watch_expiration",
      sql<number>`(SELECT count(*) FROM messages m WHERE m.account_id = accounts.id AND m.deleted_at IS NULL)::int`.as("messages"),
      sql<number>`(SELECT count(*) FROM attachments a JOIN messages m ON m.id = a.message_id WHERE m.account_id = accounts.id AND m.deleted_at IS NULL)::int`.as("attachments"),
      sql<number>`(SELECT count(*) FROM dead_letters d WHERE d.account_id = accounts.id AND d.resolved_at IS NULL AND d.parked_at IS NOT NULL)::int`.as("dead_letters"),
      sql<number>`(SELECT count(*) FROM dead_letters d WHERE d.account_id = accounts.id AND d.resolved_at IS NULL AND d.parked_at IS NULL)::int`.as("retrying"),
      sql<number | null>`extract(epoch FROM now() - sync_state.cursor_advanced_at)::float8`.as("cursor_age"),
      sql<boolean>`coalesce(sync_state.throttled_until > now(), false)`.as("throttled"),
    ])
    .$if(opts.email !== undefined, (qb) => qb.where("accounts.email", "=", (opts.email as string).toLowerCase()))
    .orderBy("accounts.id")
    .execute();
  return rows.map((r) => {
    const phase = r.backfill_phase ?? "pending";
    let status: AccountSyncStatus;
    if (r.status === "disabled") status = "disabled";
    else if (r.status === "reauth_required") status = "reauth_required";
    else if (phase === "listing" && r.resync_reason !== null) status = "resyncing";
    else if (phase !== "done") status = "backfilling";
    else if (r.throttled) status = "throttled";
    else status = "active";
    return {
      id: r.id,
      email: r.email,
      status,
      statusReason: r.status_reason,
      resyncReason: r.resync_reason ?? null,
      throttledUntil: r.throttled ? iso(r.throttled_until) : null,
      messages: r.messages,
      attachments: r.attachments,
      backfill: {
        phase,
        listed: r.backfill_listed ?? 0,
        stored: r.backfill_stored ?? 0,
        estimate: r.backfill_estimate ?? null,
        pages: r.backfill_pages ?? 0,
        done: phase === "done",
        startedAt: iso(r.backfill_started_at),
        finishedAt: iso(r.backfill_finished_at),
      },
      historyId: r.history_id ?? null,
      lastSyncAt: iso(r.last_sync_at),
      cursorAgeSeconds: r.cursor_age === null ? null : Math.round(r.cursor_age),
      deadLetters: r.dead_letters,
      retryingMessages: r.retrying,
      watchExpiration: iso(r.watch_expiration),
      lastError: r.last_error ? { kind: r.last_error_kind ?? null, message: r.last_error, at: iso(r.last_error_at) } : null,
    };
  });
}
