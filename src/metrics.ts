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
  // accepted | coalesced | stale | duplicate | unknown_account | unauthorized | malformed
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
  labelNames: ["queue", "outcome"] as const, // outcome: completed | failed | delayed | rate_limited
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
