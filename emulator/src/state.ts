// What every part of the emulator shares: mailboxes, run-time settings, tokens, quota, counters.
import type { AttachmentIds } from "./format.ts";
import type { Mailbox } from "./mailbox.ts";
import type { MessageFailures } from "./message-failures.ts";
import type { createTokenStore } from "./oauth.ts";
import type { PushService } from "./push.ts";
import type { Quota } from "./quota.ts";
import type { Random } from "./random.ts";
import type { Stats } from "./stats.ts";

/**
 * Run-time behaviour. Realistic (Gmail's) behaviour is every default; a focused test turns one
 * behaviour off by name. Each setting's evidence is cited in README.md.
 */
export interface Settings {
  // --- Quota (Gmail: 15,000 units per user per minute, 1,200,000 per project per minute) ---
  /** Per-user units in any 60 s moving window; 0 = no per-user minute limit. */
  userQuotaUnitsPerMinute: number;
  /** Per-project (all users of the emulator) units in any 60 s moving window; 0 = off. */
  projectQuotaUnitsPerMinute: number;
  /** > 0: strict per-second mode instead of the user minute window (a bucket of this many units, refilled per second). */
  quotaUnitsPerSecond: number;
  /** Requests in flight per user (batch parts included) before 429 "Too many concurrent requests for user"; 0 = no cap. */
  maxConcurrentPerUser: number;
  /** "gmail": every recorded refusal form (429 without retry time, 429 "Retry after", 403 per-minute after sustained overuse); "retry-after": always 429 "Retry after <ts>" with Retry-After. */
  quotaErrorForms: "gmail" | "retry-after";
  /** Status of the "retry-after" form: 429 (default) or the legacy 403 userRateLimitExceeded. */
  quotaErrorStatus: 429 | 403;
  /** Batch parts answered at once (Gmail fans a batch out: every part counts toward the concurrency cap). */
  batchPartParallelism: number;

  // --- Message rendering ---
  /** text/* body.data served converted to UTF-8, Content-Type charset and body.size kept (Gmail). false: bytes as sent. */
  charsetConversion: boolean;
  /** message/rfc822 parts served expanded (inner tree under `parts`, attachmentId kept). false: opaque leaf. */
  rfc822Expanded: boolean;
  /** text/plain or text/html body parts above this many bytes come with body.attachmentId and no data; 0 = never. */
  bodyByReferenceBytes: number;
  /** attachmentId differs on every fetch (any recent one stays valid). false: stable ids. */
  attachmentIdsVary: boolean;
  /** JSON pretty-printed (2 spaces) with < > escaped as \u003c \u003e, as Gmail sends it. false: compact. */
  prettyJson: boolean;
  /** resultSizeEstimate is approximate, as Gmail's. false: exact count. */
  approximateResultSizeEstimate: boolean;

  // --- History ---
  /** Gmail's records: one per operation, covering every message it touched (thread ops), adds and removes together. false: one record per message and change type. */
  historyCombinedRecords: boolean;
  /** Share of deliveries that also write a record holding only `messages` (no typed entry). */
  historyMessagesOnlyRate: number;

  // --- Races and faults ---
  /** Probability that a just-added message answers 404 for a while (Gmail's post-push race). */
  addedNotFoundRate: number;
  /** How long such a message answers 404 after it was added. */
  addedNotFoundWindowMs: number;
  /** Share of Gmail requests (batch parts too) answered 500/503 or, outside a batch, dropped. */
  faultRate: number;
  /** Share of batch POSTs answered as a whole with an HTML error page (status batchFailureStatus). */
  batchFailureRate: number;
  batchFailureStatus: 404 | 502;
  latencyMs: number;
  /** Pub/Sub topics lacking the publisher grant: watch on them answers 403 "Error sending test message to Cloud PubSub". */
  unauthorizedTopics: string[];

  // --- Push ---
  pushEndpoint: string | null;
  pushAudience: string | null;
  pushDropRate: number;
  pushDuplicateRate: number;
  pushDelayMs: number;
  /** First redelivery delay after a NACK; doubles per attempt up to 60 s (Pub/Sub's retry policy, shortened for tests). */
  pushMinBackoffMs: number;
}

export const DEFAULT_SETTINGS: Readonly<Settings> = Object.freeze({
  userQuotaUnitsPerMinute: 15_000,
  projectQuotaUnitsPerMinute: 1_200_000,
  quotaUnitsPerSecond: 0,
  maxConcurrentPerUser: 10,
  quotaErrorForms: "gmail",
  quotaErrorStatus: 429,
  batchPartParallelism: 100,
  charsetConversion: true,
  rfc822Expanded: true,
  bodyByReferenceBytes: 1_000_000,
  attachmentIdsVary: true,
  prettyJson: true,
  approximateResultSizeEstimate: true,
  historyCombinedRecords: true,
  historyMessagesOnlyRate: 0.1,
  addedNotFoundRate: 0.05,
  addedNotFoundWindowMs: 2000,
  faultRate: 0,
  batchFailureRate: 0,
  batchFailureStatus: 404,
  latencyMs: 0,
  unauthorizedTopics: [],
  pushEndpoint: null,
  pushAudience: null,
  pushDropRate: 0,
  pushDuplicateRate: 0,
  pushDelayMs: 0,
  pushMinBackoffMs: 1000,
} satisfies Settings) as Readonly<Settings>;

export interface EmulatorState {
  mailboxes: Map<string, Mailbox>;
  settings: Settings;
  random: Random;
  tokens: ReturnType<typeof createTokenStore>;
  quota: Quota;
  stats: Stats;
  attachmentIds: AttachmentIds;
  push: PushService;
  /** messages.get failures injected through the control API. */
  messageFailures: MessageFailures;
  /** Marks requests the batch endpoint dispatches internally (not forgeable by clients). */
  innerSecret: string;
  /** The run's seed, for per-item decisions that must be stable (which new message races: added-race.ts). */
  seed: number;
}
