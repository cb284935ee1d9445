// Gmail → Pub/Sub push. For each watched mailbox, a history change (matching the watch's label
// filter) becomes a notification {emailAddress, historyId} published at most once per second per
// user (later changes inside that second are folded into one trailing notification carrying the
// latest id), POSTed as Pub/Sub's push envelope with an RS256 OIDC token in Authorization.
// Non-2xx answers are redelivered with exponential backoff; drop/duplicate/delay rates simulate
// Pub/Sub's at-least-once, best-effort delivery.
import { recordLabels, type HistoryRecord, type Mailbox } from "./mailbox.ts";
import type { SigningKey } from "./keys.ts";
import type { Random } from "./random.ts";
import type { Settings } from "./state.ts";
import type { Stats } from "./stats.ts";

const WATCH_TTL_MS = 7 * 86_400_000;
const ACK_STATUSES = new Set([102, 200, 201, 202, 204]);
const MAX_ATTEMPTS = 12;
const ACK_DEADLINE_MS = 10_000;

export interface WatchSpec {
  topicName: string;
  labelIds: string[];
  behavior: "include" | "exclude";
}

export interface PushService {
  watch(mailbox: Mailbox, spec: WatchSpec): { historyId: string; expiration: string };
  stop(mailbox: Mailbox): void;
  onChange(mailbox: Mailbox, record: HistoryRecord): void;
  close(): Promise<void>;
}

interface UserState {
  watch: (WatchSpec & { expiration: number }) | undefined;
  lastSentAt: number;
  timer: NodeJS.Timeout | undefined;
}

export interface PushDeps {
  settings: Settings;
  random: Random;
  key: SigningKey;
  stats: Stats;
  serviceAccount: string;
  /** Numeric id Google puts in sub/azp for the service account. */
  serviceAccountId: string;
}

export function createPushService(deps: PushDeps): PushService {
  const { settings, random, key, stats } = deps;
  const users = new Map<string, UserState>();
  const timers = new Set<NodeJS.Timeout>();
  const inflight = new Set<AbortController>();
  let closed = false;
  let nextMessageId = 2070443601311540n + BigInt(random.int(1_000_000));

  const later = (ms: number, fn: () => void) => {
    if (closed) return undefined;
    const t = setTimeout(() => {
      timers.delete(t);
      fn();
    }, ms);
    timers.add(t);
    return t;
  };

  const user = (email: string): UserState => {
    let u = users.get(email);
    if (!u) users.set(email, (u = { watch: undefined, lastSentAt: 0, timer: undefined }));
    return u;
  };

  const deliver = async (body: string, attempt: number): Promise<void> => {
    const endpoint = settings.pushEndpoint;
    if (closed || !endpoint) return;
    const now = Math.floor(Date.now() / 1000);
    const jwt = key.signJwt({
      aud: settings.pushAudience ?? endpoint,
      azp: deps.serviceAccountId,
      email: deps.serviceAccount,
      email_verified: true,
      exp: now + 3600,
      iat: now,
      iss: "https://accounts.google.com",
      sub: deps.serviceAccountId,
    });
    const ac = new AbortController();
    inflight.add(ac);
    const timeout = setTimeout(() => ac.abort(), ACK_DEADLINE_MS);
    let acked = false;
    stats.pushes.sent++;
    try {
      const res = await fetch(endpoint, {
        method: "POST",
        headers: {
          "content-type": "application/json",
          authorization: `Bearer ${jwt}`,
          "user-agent": "APIs-Google; (+https://developers.google.com/webmasters/APIs-Google.html)",
        },
        body,
        signal: ac.signal,
      });
      await res.arrayBuffer().catch(() => undefined);
      acked = ACK_STATUSES.has(res.status);
      if (acked) stats.pushes.acked++;
      else stats.pushes.nacked++;
    } catch {
      stats.pushes.failed++;
    } finally {
      clearTimeout(timeout);
      inflight.delete(ac);
    }
    if (!acked && attempt < MAX_ATTEMPTS) {
      const backoff = Math.min(60_000, settings.pushMinBackoffMs * 2 ** (attempt - 1));
      later(backoff, () => void deliver(body, attempt + 1));
    }
  };

  const publish = (email: string, historyId: number) => {
    if (random.next() < settings.pushDropRate) {
      stats.pushes.dropped++;
      return;
    }
    const messageId = String(nextMessageId++);
    const publishTime = new Date().toISOString();
    const body = JSON.stringify({
      message: {
        // Real Gmail notifications carry historyId as a JSON number.
        data: Buffer.from(JSON.stringify({ emailAddress: email, historyId })).toString("base64"),
        messageId,
        message_id: messageId,
        publishTime,
        publish_time: publishTime,
      },
      subscription: "projects/gmail-sync-emulator/subscriptions/gmail-push",
    });
    const copies = random.next() < settings.pushDuplicateRate ? 2 : 1;
    if (copies === 2) stats.pushes.duplicated++;
    for (let i = 0; i < copies; i++) {
      const delay = settings.pushDelayMs + i * 50;
      if (delay > 0) later(delay, () => void deliver(body, 1));
      else void deliver(body, 1);
    }
  };

  const schedule = (mailbox: Mailbox) => {
    const u = user(mailbox.email);
    if (u.timer) return; // a trailing notification is already due; it will carry the latest id
    const wait = Math.max(0, u.lastSentAt + 1000 - Date.now());
    const fire = () => {
      u.timer = undefined;
      if (!u.watch || u.watch.expiration <= Date.now()) return;
      u.lastSentAt = Date.now();
      publish(mailbox.email, mailbox.historyId);
    };
    if (wait === 0) fire();
    else u.timer = later(wait, fire);
  };

  const matchesFilter = (w: WatchSpec, mailbox: Mailbox, record: HistoryRecord) => {
    if (w.labelIds.length === 0) return true;
    // A record matches when any of its entries names a label of the filter (after the change, or
    // as the change). A record holding only `messages` is judged by those messages' current labels.
    const labels = recordLabels(record);
    if (labels.size === 0)
      for (const m of record.messages) for (const l of mailbox.messages.get(m.id)?.labelIds ?? []) labels.add(l);
    const hit = w.labelIds.some((l) => labels.has(l));
    return w.behavior === "include" ? hit : !hit;
  };

  return {
    watch(mailbox, spec) {
      const u = user(mailbox.email);
      const expiration = Date.now() + WATCH_TTL_MS;
      u.watch = { ...spec, expiration };
      // A successful watch sends one notification right away.
      schedule(mailbox);
      return { historyId: String(mailbox.historyId), expiration: String(expiration) };
    },
    stop(mailbox) {
      const u = user(mailbox.email);
      u.watch = undefined;
    },
    onChange(mailbox, record) {
      const w = users.get(mailbox.email)?.watch;
      if (!w || w.expiration <= Date.now() || !matchesFilter(w, mailbox, record)) return;
      schedule(mailbox);
    },
    async close() {
      closed = true;
      for (const t of timers) clearTimeout(t);
      timers.clear();
      for (const ac of inflight) ac.abort();
    },
  };
}
