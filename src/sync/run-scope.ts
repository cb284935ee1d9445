// The listing scope of a backfill run (q, label ids, spam/trash) and whether its end-of-run sweep
// may soft-delete: fixed when the run starts and stored in sync_state, so that a configuration
// change mid-run can neither mix two scopes in one listing nor let the sweep judge mail the run
// never listed as deleted. Runs started before migration 0002 have no pinned scope (NULL columns)
// and read the live configuration, as every run did then.
import type { Config } from "../config.ts";
import type { SyncState } from "../db/sync-state.ts";

type ScopeConfig = Pick<Config, "BACKFILL_QUERY" | "BACKFILL_LABEL_IDS" | "INCLUDE_SPAM_TRASH">;

export interface RunScope {
  /** The q the run lists with; null: none. */
  query: string | null;
  labelIds: string[];
  includeSpamTrash: boolean;
}

/**
 * The scope a new run pins: an explicit query (a job's or the CLI's; "" means none) wins over
 * BACKFILL_QUERY, which is resolved here once, not on every page.
 */
export function scopeForNewRun(config: ScopeConfig, query: string | null): RunScope {
  const q = query ?? config.BACKFILL_QUERY ?? "";
  return {
    query: q === "" ? null : q,
    labelIds: [...config.BACKFILL_LABEL_IDS],
    includeSpamTrash: config.INCLUDE_SPAM_TRASH,
  };
}

type PinnedColumns = Pick<SyncState, "backfill_query" | "backfill_label_ids" | "backfill_include_spam_trash">;

/** The scope the run in sync_state lists with: what it pinned, the live config where it pinned nothing. */
export function runScope(config: ScopeConfig, state: PinnedColumns): RunScope {
  // A pinned run always stores an array (empty when unscoped), so NULL label ids mark a run from
  // before the pinning; only then does a NULL query mean "BACKFILL_QUERY" rather than "none".
  const pinned = state.backfill_label_ids !== null;
  const q = state.backfill_query ?? (pinned ? "" : (config.BACKFILL_QUERY ?? ""));
  return {
    query: q === "" ? null : q,
    labelIds: state.backfill_label_ids ?? [...config.BACKFILL_LABEL_IDS],
    includeSpamTrash: state.backfill_include_spam_trash ?? config.INCLUDE_SPAM_TRASH,
  };
}

/** A q or label scope: a listing that cannot be judged message by message, nor prove a deletion. */
export function isScoped(scope: RunScope): boolean {
  return scope.query !== null || scope.labelIds.length > 0;
}

/**
 * Whether absence from the run's complete listing means deletion: only a resync (we already hold
 * the mailbox) that lists all of it. Spam and trash left out are handled by the sweep itself.
 */
export function scopeMaySweep(scope: RunScope, resyncReason: string | null): boolean {
  return resyncReason !== null && !isScoped(scope);
}
