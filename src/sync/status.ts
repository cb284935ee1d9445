// What users see about each account, derived from accounts + sync_state (+ counts): one of
// backfilling (with progress), active, throttled (until T), resyncing (reason), reauth_required,
// disabled. `gmail-sync accounts` prints it.
import { accountStatusRows } from "../db/account-status.ts";
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
  backfill: {
    phase: string;
    listed: number;
    stored: number;
    estimate: number | null;
    pages: number;
    done: boolean;
    startedAt: string | null;
    finishedAt: string | null;
  };
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
  const rows = await accountStatusRows(db, opts);
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
      lastError: r.last_error
        ? { kind: r.last_error_kind ?? null, message: r.last_error, at: iso(r.last_error_at) }
        : null,
    };
  });
}
