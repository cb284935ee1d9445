// Counters the control API reports: requests by method and status, quota units per user,
// refusals (quota and concurrency) by the form they took, races and faults served, push deliveries.
import type { RefusalForm } from "./errors.ts";

export interface EmulatorStats {
  /** method (e.g. "gmail.users.messages.get", "oauth.token", "batch") → HTTP status (or "dropped") → count */
  requests: Record<string, Record<string, number>>;
  /** quota units charged per user (refused requests are not charged) */
  quotaUnits: Record<string, number>;
  /** Quota and concurrency refusals sent, whatever their status (429, or 403 for the per-minute and legacy forms). */
  rateLimited: number;
  /** The same refusals by form: resourceExhausted, userRateLimit, quotaPerMinute, projectQuotaPerMinute, legacy403, tooManyConcurrent. */
  rateLimitedByForm: Partial<Record<RefusalForm, number>>;
  /** messages.get / attachments.get answered 404 (and threads.get members left out) because the message was just added (addedNotFoundRate). */
  addedNotFound: number;
  /** Batch POSTs answered with an HTML error page as a whole (batchFailureRate). */
  batchFailures: number;
  /** user → message id → messages.get answers failed on purpose (control API …/messages/{id}/fail) */
  injectedFailures?: Record<string, Record<string, number>>;
  pushes: { sent: number; acked: number; nacked: number; failed: number; dropped: number; duplicated: number };
}

export function createStats() {
  const requests = new Map<string, Map<string, number>>();
  // user → message id → successful messages.get answers (plain or batch part): duplicate fetches show.
  const messageGets = new Map<string, Map<string, number>>();
  const pushes = { sent: 0, acked: 0, nacked: 0, failed: 0, dropped: 0, duplicated: 0 };
  const byForm: Partial<Record<RefusalForm, number>> = {};
  let rateLimited = 0;
  let addedNotFound = 0;
  let batchFailures = 0;
  return {
    pushes,
    count(method: string, status: number | "dropped") {
      let byStatus = requests.get(method);
      if (!byStatus) requests.set(method, (byStatus = new Map()));
      const key = String(status);
      byStatus.set(key, (byStatus.get(key) ?? 0) + 1);
    },
    countRefusal(form: RefusalForm) {
      rateLimited++;
      byForm[form] = (byForm[form] ?? 0) + 1;
    },
    countAddedNotFound() {
      addedNotFound++;
    },
    countBatchFailure() {
      batchFailures++;
    },
    countMessageGet(user: string, id: string) {
      let byId = messageGets.get(user);
      if (!byId) messageGets.set(user, (byId = new Map()));
      byId.set(id, (byId.get(id) ?? 0) + 1);
    },
    messageGets(user: string): Record<string, number> {
      return Object.fromEntries(messageGets.get(user) ?? []);
    },
    snapshot(quotaSpent: Map<string, number>): EmulatorStats {
      return {
        requests: Object.fromEntries([...requests].map(([m, s]) => [m, Object.fromEntries(s)])),
        quotaUnits: Object.fromEntries(quotaSpent),
        rateLimited,
        rateLimitedByForm: { ...byForm },
        addedNotFound,
        batchFailures,
        pushes: { ...pushes },
      };
    },
  };
}

export type Stats = ReturnType<typeof createStats>;
