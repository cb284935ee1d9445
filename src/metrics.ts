// Every metric is declared here, once (prom-client, one registry per process, served at /metrics).
// Names follow Prometheus conventions (base units, _total on counters), except the five fixed by
// the seed, kept verbatim. No label takes unbounded values: no message ids, no email addresses.
import { Counter, collectDefaultMetrics, Gauge, Histogram, Registry } from "prom-client";

export const registry = new Registry();
collectDefaultMetrics({ register: registry });

const r = [registry];

// --- the seed's five (names fixed) ---
export const syncMessagesTotal = new Counter({
  name: "gmail_sync_messages_total",
  help: "Messages committed to Postgres",
  labelNames: ["direction"] as const, // backfill | incremental
  registers: r,
});
export const syncErrorsTotal = new Counter({
  name: "gmail_sync_errors_total",
  help: "Sync errors by class",
  // rate_limit | auth | parse | history_expired | transient | permanent | not_found | extract
  labelNames: ["error_type"] as const,
  registers: r,
});
export const attachmentProcessingSeconds = new Histogram({
  name: "gmail_attachment_processing_seconds",
  help: "Per-attachment fetch, hash and extract time",
  labelNames: ["size_bucket"] as const, // <1MB | 1-10MB | 10-50MB | >50MB
  buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120],
  registers: r,
});
export const tempFileCleanupTotal = new Counter({
  name: "temp_file_cleanup_total",
  help: "Attachment temp files deleted",
  labelNames: ["outcome"] as const, // deleted | already_gone | failed | orphan
  registers: r,
});
export const orphanedTempFilesGauge = new Gauge({
  name: "orphaned_temp_files_gauge",
  help: "Temp files older than the orphan age found by the last sweep",
  registers: r,
});

/** The size_bucket label of gmail_attachment_processing_seconds. */
export function sizeBucket(bytes: number): "<1MB" | "1-10MB" | "10-50MB" | ">50MB" {
  const mb = 1024 * 1024;
  if (bytes < mb) return "<1MB";
  if (bytes <= 10 * mb) return "1-10MB";
  if (bytes <= 50 * mb) return "10-50MB";
  return ">50MB";
}

// --- Gmail API ---
export const apiRequestsTotal = new Counter({
  name: "gmail_api_requests_total",
  help: "Gmail API calls (each batch sub-request counts) by method and status code class",
  labelNames: ["method", "code"] as const, // code: 2xx | 400 | 401 | 403 | 404 | 429 | 5xx | network
  registers: r,
});
export const apiRequestDurationSeconds = new Histogram({
  name: "gmail_api_request_duration_seconds",
  help: "Gmail API call latency",
  labelNames: ["method"] as const,
  buckets: [0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
  registers: r,
});
export const apiQuotaUnitsTotal = new Counter({
  name: "gmail_api_quota_units_total",
  help: "Documented Gmail quota units spent",
  labelNames: ["method"] as const,
  registers: r,
});
export const apiRateLimitedTotal = new Counter({
  name: "gmail_api_rate_limited_total",
  help: "Rate-limit answers from Gmail (429, or 403 rateLimitExceeded/userRateLimitExceeded)",
  labelNames: ["scope"] as const, // user | project | concurrent
  registers: r,
});
export const apiRetriesTotal = new Counter({
  name: "gmail_api_retries_total",
  help: "Retries made by the Gmail client",
  labelNames: ["reason"] as const, // rate_limit | 5xx | network | precondition
  registers: r,
});
export const apiBatchRequests = new Histogram({
  name: "gmail_api_batch_requests",
  help: "Sub-requests per HTTP batch",
  buckets: [1, 5, 10, 25, 50, 75, 100],
  registers: r,
});
export const quotaWaitSeconds = new Histogram({
  name: "gmail_sync_quota_wait_seconds",
  help: "Time spent waiting for the per-account quota bucket",
  buckets: [0, 0.01, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10],
  registers: r,
});
export const quotaDelayedJobsTotal = new Counter({
  name: "gmail_sync_quota_delayed_jobs_total",
  help: "Jobs parked (moveToDelayed) because an account's quota bucket was empty or throttled",
  labelNames: ["queue"] as const,
  registers: r,
});
export const tokenRefreshesTotal = new Counter({
  name: "gmail_sync_token_refreshes_total",
  help: "OAuth access-token refreshes by outcome",
  labelNames: ["outcome"] as const, // ok | invalid_grant | transient
  registers: r,
});

// --- sync ---
export const messageChangesTotal = new Counter({
  name: "gmail_sync_message_changes_total",
  help: "Changes applied from history.list",
  labelNames: ["kind"] as const, // added | deleted | label_added | label_removed
  registers: r,
});
export const fullResyncsTotal = new Counter({
  name: "gmail_sync_full_resyncs_total",
  help: "Full re-syncs started",
  labelNames: ["reason"] as const, // history_expired | manual | cursor_missing | reconcile
  registers: r,
});
export const deadLettersTotal = new Counter({
  name: "gmail_sync_dead_letters_total",
  help: "Messages parked as dead letters",
  labelNames: ["reason"] as const,
  registers: r,
});
export const pushToCommitSeconds = new Histogram({
  name: "gmail_sync_push_to_commit_seconds",
  help: "Pub/Sub push received to rows committed",
  buckets: [0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10, 30, 60, 300],
  registers: r,
});
export const pushRequestsTotal = new Counter({
  name: "gmail_sync_push_requests_total",
  help: "Pub/Sub push requests by outcome",
  // accepted | coalesced | stale | duplicate | unknown_account | unauthorized | malformed | failed (503)
  labelNames: ["outcome"] as const,
  registers: r,
});
export const watchRenewalsTotal = new Counter({
  name: "gmail_sync_watch_renewals_total",
  help: "users.watch calls by outcome",
  labelNames: ["outcome"] as const, // ok | failed
  registers: r,
});
export const jobDurationSeconds = new Histogram({
  name: "gmail_sync_job_duration_seconds",
  help: "Job processing time by queue and outcome",
  // outcome: completed | failed | delayed | rate_limited | invalid (rejected by the job catalog, 0 s)
  labelNames: ["queue", "outcome"] as const,
  buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 120, 300, 600],
  registers: r,
});
export const jobWaitSeconds = new Histogram({
  name: "gmail_sync_job_wait_seconds",
  help: "Time a job waited in its queue before a worker took it",
  labelNames: ["queue"] as const,
  buckets: [0.01, 0.05, 0.1, 0.5, 1, 5, 10, 30, 60, 300, 1800],
  registers: r,
});
export const jobsStalledTotal = new Counter({
  name: "gmail_sync_jobs_stalled_total",
  help: "Jobs whose lock expired (worker died or event loop blocked)",
  labelNames: ["queue"] as const,
  registers: r,
});

// --- attachments ---
export const attachmentsTotal = new Counter({
  name: "gmail_attachments_total",
  help: "Attachments by route",
  labelNames: ["route"] as const, // memory | temp_file | skipped
  registers: r,
});
export const attachmentsSkippedTotal = new Counter({
  name: "gmail_attachments_skipped_total",
  help: "Attachments skipped, by the skipped_reason stored on their row",
  labelNames: ["reason"] as const,
  registers: r,
});
export const attachmentDownloadedBytesTotal = new Counter({
  name: "gmail_attachment_downloaded_bytes_total",
  help: "Attachment bytes fetched (then discarded)",
  registers: r,
});
export const attachmentExtractedBytesTotal = new Counter({
  name: "gmail_attachment_extracted_bytes_total",
  help: "UTF-8 bytes of extracted text stored",
  registers: r,
});
export const attachmentExtractedPagesTotal = new Counter({
  name: "gmail_attachment_extracted_pages_total",
  help: "Document pages read by extractors",
  registers: r,
});
export const attachmentChecksumReuseTotal = new Counter({
  name: "gmail_attachment_checksum_reuse_total",
  help: "Extractions skipped because text for the same SHA-256 was already stored",
  registers: r,
});
export const attachmentTempFiles = new Gauge({
  name: "gmail_attachment_temp_files",
  help: "Attachment temp files open right now",
  registers: r,
});
export const extractChildrenKilledTotal = new Counter({
  name: "gmail_attachment_extract_kills_total",
  help: "Extraction child processes killed by the watchdog",
  labelNames: ["reason"] as const, // timeout | memory | crashed
  registers: r,
});

// --- state read at scrape time (set by src/metrics-collect.ts from Postgres and BullMQ) ---
// Aggregates over accounts, never one series per account unless METRICS_PER_ACCOUNT is on.
export const accountsGauge = new Gauge({
  name: "gmail_sync_accounts",
  help: "Accounts by state (backfilling = active with its backfill not done)",
  labelNames: ["status"] as const, // active | backfilling | reauth_required | disabled
  registers: r,
});
export const backfillMessages = new Gauge({
  name: "gmail_sync_backfill_messages",
  help: "Backfill progress summed over accounts: message ids listed and messages stored",
  labelNames: ["stage"] as const, // listed | stored
  registers: r,
});
export const cursorAgeMaxSeconds = new Gauge({
  name: "gmail_sync_cursor_age_max_seconds",
  help: "Largest time since an enabled account's history cursor last advanced",
  registers: r,
});
// A histogram snapshot over accounts with fixed, non-overlapping age ranges (no `le`: promtool
// reserves it for real histograms, and these counts go up and down).
export const accountsByCursorAge = new Gauge({
  name: "gmail_sync_accounts_by_cursor_age",
  help: "Enabled accounts by time since their cursor last advanced",
  labelNames: ["age"] as const, // lt_5m | 5m_1h | 1h_6h | 6h_1d | 1d_3d | 3d_5d | 5d_7d | gt_7d
  registers: r,
});
export const lastSuccessAgeMaxSeconds = new Gauge({
  name: "gmail_sync_last_success_age_max_seconds",
  help: "Largest time since an active account's last successful sync (since connection if never)",
  registers: r,
});
export const accountsStale = new Gauge({
  name: "gmail_sync_accounts_stale",
  help: "Active accounts with no successful sync in the last hour",
  registers: r,
});
export const watchExpirySoonestSeconds = new Gauge({
  name: "gmail_sync_watch_expiry_soonest_seconds",
  help: "Seconds until the soonest users.watch expiry among active accounts (NaN when none is watched)",
  registers: r,
});
export const accountsWatched = new Gauge({
  name: "gmail_sync_accounts_watched",
  help: "Active accounts with a users.watch expiry recorded",
  registers: r,
});
export const deadLettersOpen = new Gauge({
  name: "gmail_sync_dead_letters_open",
  help: "Parked, unresolved dead letters",
  labelNames: ["reason"] as const,
  registers: r,
});
export const messagesRetrying = new Gauge({
  name: "gmail_sync_messages_retrying",
  help: "Messages in the retry ledger awaiting their next attempt (not parked)",
  registers: r,
});
export const messagesRetryingOldestSeconds = new Gauge({
  name: "gmail_sync_messages_retrying_oldest_seconds",
  help: "Age of the oldest unparked retry-ledger row's first failure (0: none)",
  registers: r,
});
export const queueJobs = new Gauge({
  name: "gmail_sync_queue_jobs",
  help: "BullMQ jobs by queue and state (getJobCounts at scrape time)",
  labelNames: ["queue", "state"] as const,
  registers: r,
});
export const quotaLimitUnitsPerSecond = new Gauge({
  name: "gmail_sync_quota_limit_units_per_second",
  help: "Configured Gmail quota ceiling: per user (GMAIL_QUOTA_UNITS_PER_SECOND) and per project",
  labelNames: ["scope"] as const, // user | project
  registers: r,
});
export const metricsCollectErrorsTotal = new Counter({
  name: "gmail_sync_metrics_collect_errors_total",
  help: "Scrape-time collector failures or timeouts (the previous values stay exported)",
  labelNames: ["collector"] as const, // database | queues
  registers: r,
});
export const metricsAccountsTruncated = new Gauge({
  name: "gmail_sync_metrics_accounts_truncated",
  help: "1 when METRICS_PER_ACCOUNT hit its series cap and some accounts were left out",
  registers: r,
});
// Only filled when METRICS_PER_ACCOUNT=true (small installs); labelled by account id, never email.
export const accountCursorAgeSeconds = new Gauge({
  name: "gmail_sync_account_cursor_age_seconds",
  help: "Per account (METRICS_PER_ACCOUNT only): time since its cursor last advanced",
  labelNames: ["account_id"] as const,
  registers: r,
});
export const accountLastSuccessAgeSeconds = new Gauge({
  name: "gmail_sync_account_last_success_age_seconds",
  help: "Per account (METRICS_PER_ACCOUNT only): time since its last successful sync",
  labelNames: ["account_id"] as const,
  registers: r,
});
// The change feed (src/db/changes.ts), read at scrape time. head - a consumer's cursor is its lag
// in changes; a cursor below oldest (minus one) is about to get 410.
export const changeFeedHeadSeq = new Gauge({
  name: "gmail_sync_change_feed_head_seq",
  help: "Seq of the newest committed change-feed entry (the pruning horizon when none is kept)",
  registers: r,
});
export const changeFeedOldestSeq = new Gauge({
  name: "gmail_sync_change_feed_oldest_seq",
  help: "Seq of the oldest change-feed entry retention kept (0: none kept)",
  registers: r,
});
export const buildInfo = new Gauge({
  name: "gmail_sync_build_info",
  help: "Build metadata; always 1",
  labelNames: ["version", "node_version"] as const,
  registers: r,
});
