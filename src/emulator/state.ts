// What every part of the emulator shares: mailboxes, run-time settings, tokens, quota, counters.
import type { AttachmentIds } from "./format.ts";
import type { Mailbox } from "./mailbox.ts";
import type { MessageFailures } from "./message-failures.ts";
import type { createTokenStore } from "./oauth.ts";
import type { PushService } from "./push.ts";
import type { Quota } from "./quota.ts";
import type { Random } from "./random.ts";
import type { Stats } from "./stats.ts";

export interface Settings {
  quotaUnitsPerSecond: number;
  quotaErrorStatus: 429 | 403;
  faultRate: number;
  latencyMs: number;
  pushEndpoint: string | null;
  pushAudience: string | null;
  pushDropRate: number;
  pushDuplicateRate: number;
  pushDelayMs: number;
  /** First redelivery delay after a NACK; doubles per attempt up to 60 s (Pub/Sub's retry policy, shortened for tests). */
  pushMinBackoffMs: number;
}

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
}
