// Counters the control API reports: requests by method and status, quota units per user, 429s,
// and push deliveries.
export interface EmulatorStats {
  /** method (e.g. "gmail.users.messages.get", "oauth.token", "batch") → HTTP status (or "dropped") → count */
  requests: Record<string, Record<string, number>>;
  /** quota units charged per user */
  quotaUnits: Record<string, number>;
  /** 429 answers sent (quota and concurrency) */
  rateLimited: number;
  /** user → message id → messages.get answers failed on purpose (control API …/messages/{id}/fail) */
  injectedFailures?: Record<string, Record<string, number>>;
  pushes: { sent: number; acked: number; nacked: number; failed: number; dropped: number; duplicated: number };
}

export function createStats() {
  const requests = new Map<string, Map<string, number>>();
  // user → message id → successful messages.get answers (plain or batch part): duplicate fetches show.
  const messageGets = new Map<string, Map<string, number>>();
  const pushes = { sent: 0, acked: 0, nacked: 0, failed: 0, dropped: 0, duplicated: 0 };
  let rateLimited = 0;
  return {
    pushes,
    count(method: string, status: number | "dropped") {
      let byStatus = requests.get(method);
      if (!byStatus) requests.set(method, (byStatus = new Map()));
      const key = String(status);
      byStatus.set(key, (byStatus.get(key) ?? 0) + 1);
      if (status === 429) rateLimited++;
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
        pushes: { ...pushes },
      };
    },
  };
}

export type Stats = ReturnType<typeof createStats>;
