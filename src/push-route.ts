// POST /pubsub/push: authenticate, decode, resolve the account from OUR stored state (never trust
// the payload's address for anything but the lookup), drop stale and repeated notifications, and
// enqueue one coalesced incremental sync. Answers 204 in milliseconds: the sync runs in a worker.
import rateLimit from "@fastify/rate-limit";
import type { FastifyInstance } from "fastify";
import type { Redis } from "ioredis";
import { findPushAccount } from "./db/account-status.ts";
import type { Db } from "./db/database.ts";
import { recordPushReceived } from "./db/sync-state.ts";
import { withinMs } from "./deadline.ts";
import { MalformedPushError } from "./errors.ts";
import type { Logger } from "./log.ts";
import { pushRequestsTotal } from "./metrics.ts";
import { decodePushEnvelope, type PushAuthResult } from "./pubsub.ts";

export interface PushRouteDeps {
  db: Db;
  redis: Redis;
  log: Logger;
  /** Key prefix for the Pub/Sub messageId de-duplication keys (the queue prefix). */
  keyPrefix: string;
  authenticate: (authorization: string | undefined, token: string | undefined) => Promise<PushAuthResult>;
  /** Enqueues (or folds into the queued) incremental sync; reports whether it was coalesced. */
  enqueueIncremental: (
    accountId: number,
    opts: { reason: "push"; pushReceivedAt: number; historyId: string },
  ) => Promise<{ coalesced: boolean }>;
  /** Requests per client IP and minute (PUSH_RATE_LIMIT_PER_MINUTE); default 6000. */
  rateLimitPerMinute?: number;
}

// A redelivered push inside this window is ignored. Pub/Sub may redeliver for up to 7 days, but a
// later copy is dropped as stale (our cursor has passed its historyId) before this key is read, and
// at worst folds into the account's queued sync: an hour bounds Redis at one key per push of the
// last hour (a week of keys was ~168× that: hundreds of MB at 10,000 busy accounts).
const DEDUPE_TTL_SECONDS = 3600;
const ENQUEUE_DEADLINE_MS = 5_000;

export function registerPushRoute(app: FastifyInstance, deps: PushRouteDeps): void {
  // Reachable by anyone who reaches the listener, and each unauthenticated request costs a JWT
  // verification (and maybe a certificate fetch): limited per client IP in this route's own scope,
  // in memory. Pub/Sub treats a 429 as a nack and redelivers with backoff, so nothing is lost.
  void app.register(async (scope) => {
    await scope.register(rateLimit, { max: deps.rateLimitPerMinute ?? 6000, timeWindow: 60_000, cache: 10_000 });
    registerRoute(scope, deps);
  });
}

function registerRoute(app: FastifyInstance, deps: PushRouteDeps): void {
  app.post("/pubsub/push", async (req, reply) => {
    const receivedAt = Date.now();
    const token = (req.query as Record<string, unknown> | undefined)?.token;
    const auth = await deps.authenticate(req.headers.authorization, typeof token === "string" ? token : undefined);
    if (!auth.ok) {
      pushRequestsTotal.inc({ outcome: "unauthorized" });
      deps.log.warn({ why: auth.why }, "push rejected: unauthorized");
      return reply.code(401).send({ error: "unauthorized" });
    }

    let note;
    try {
      note = decodePushEnvelope(req.body);
    } catch (err) {
      if (!(err instanceof MalformedPushError)) throw err;
      // Authenticated, so it came from our subscription: an error answer would only make Pub/Sub
      // redeliver the same bad message for a week. Acknowledge it, count it, say why (bounded).
      pushRequestsTotal.inc({ outcome: "malformed" });
      deps.log.warn({ why: err.message.slice(0, 200) }, "push acknowledged but ignored: malformed");
      return reply.code(204).send();
    }

    const account = await findPushAccount(deps.db, note.emailAddress, note.historyId);
    // Unknown, deleted or paused accounts are acknowledged (Pub/Sub would retry for a week).
    if (account === undefined || account.status !== "active") {
      pushRequestsTotal.inc({ outcome: "unknown_account" });
      return reply.code(204).send();
    }
    if (account.stale) {
      pushRequestsTotal.inc({ outcome: "stale" });
      return reply.code(204).send();
    }

    const dedupeKey = `${deps.keyPrefix}:push-seen:${note.messageId}`;
    let result;
    try {
      // Bounded: with Redis down, BullMQ's connection would queue commands until it returns; Pub/Sub
      // gives up on us after its ack deadline (10 s) anyway, so fail fast and let it redeliver.
      result = await withinMs(ENQUEUE_DEADLINE_MS, async () => {
        const first = await deps.redis.set(dedupeKey, "1", "EX", DEDUPE_TTL_SECONDS, "NX");
        if (first === null) return "duplicate" as const;
        try {
          await recordPushReceived(deps.db, account.id, new Date(receivedAt));
          return await deps.enqueueIncremental(account.id, {
            reason: "push",
            pushReceivedAt: receivedAt,
            historyId: note.historyId,
          });
        } catch (err) {
          // Not enqueued: forget the messageId so Pub/Sub's redelivery (after our 5xx) is accepted.
          await deps.redis.del(dedupeKey).catch(() => {});
          throw err;
        }
      });
    } catch (err) {
      pushRequestsTotal.inc({ outcome: "failed" });
      deps.log.error(
        { err: err instanceof Error ? err.message : String(err) },
        "push not enqueued; Pub/Sub will redeliver",
      );
      return reply.code(503).send({ error: "unavailable" });
    }
    if (result === "duplicate") {
      pushRequestsTotal.inc({ outcome: "duplicate" });
      return reply.code(204).send();
    }
    pushRequestsTotal.inc({ outcome: result.coalesced ? "coalesced" : "accepted" });
    return reply.code(204).send();
  });
}
