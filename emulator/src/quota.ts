// Quota as Gmail enforces it (../shared/gmail-api-facts.md §8; gmail-real-samples/README.md fact 13):
// - per user, 15,000 units in any 60 s moving window (so bursts are fine: a 1,500-unit pull in half
//   a second passes, while a sustained rate above 250 units/s is refused once the window fills);
// - per project (every user of the emulator together), 1,200,000 units in any 60 s window;
// - per user, a cap on requests in flight (batch parts included): "Too many concurrent requests for
//   user" (the cap's size is not published; ~10 is what clients observe).
// Windows are 60 per-second slots in a ring (cheap whatever the request rate), not a request log.
// quotaUnitsPerSecond > 0 replaces the user window with a strict bucket of that many units and one
// second of burst (for tests and benchmarks that want a steady ceiling).
//
// A refused request is not charged: only admitted requests use up units (a client that retries
// refusals does not dig itself deeper; Gmail does not document either way).
//
// Refusal forms ("gmail" forms, the default): while a user is over the limit Gmail has been seen
// answering 429 "Resource has been exhausted (e.g. check quota)." (no retry time) and 429
// "User-rate limit exceeded.  Retry after <ts>"; each refusal takes one of them at random (seeded).
// Overuse is *sustained* once the user's refusals have gone on for SUSTAINED_MS (an episode of
// refusals ends after a full minute without one); from then on the refusal is the 403
// rateLimitExceeded "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per
// user' …" (error_403_quota_per_minute.txt, seen in long bulk runs). "retry-after" forms: always
// 429 "User-rate limit exceeded.  Retry after <ts>" with a Retry-After header (or the legacy 403
// userRateLimitExceeded when quotaErrorStatus is 403).
import { errors, type ApiError } from "./errors.ts";
import { createRandom, type Random } from "./random.ts";
import type { Settings } from "./state.ts";

/** Documented unit costs (developers.google.com/workspace/gmail/api/reference/quota). */
export const METHOD_COST: Record<string, number> = {
  "gmail.users.getProfile": 1,
  "gmail.users.labels.list": 1,
  "gmail.users.labels.get": 1,
  "gmail.users.messages.list": 5,
  "gmail.users.messages.get": 5,
  "gmail.users.messages.attachments.get": 5,
  "gmail.users.messages.modify": 5,
  "gmail.users.messages.delete": 10,
  "gmail.users.messages.trash": 5,
  "gmail.users.messages.untrash": 5,
  "gmail.users.messages.batchModify": 50,
  "gmail.users.threads.modify": 10,
  "gmail.users.threads.trash": 10,
  "gmail.users.threads.untrash": 10,
  "gmail.users.history.list": 2,
  "gmail.users.threads.list": 10,
  "gmail.users.threads.get": 10,
  "gmail.users.watch": 100,
  "gmail.users.stop": 50,
};

/** Refusals going on this long make the overuse "sustained": the 403 per-minute form follows. */
export const SUSTAINED_MS = 10_000;
/** A minute without refusals ends an overuse episode. */
const EPISODE_GAP_MS = 60_000;
const WINDOW_SECONDS = 60;

export interface Quota {
  /**
   * Admits one request of `cost` units for `user`: over the concurrency cap or a window it throws
   * the refusal (an ApiError with `refusal` set; nothing charged, nothing held); otherwise charges
   * the units and returns the function that ends the request (idempotent).
   */
  admit(user: string, cost: number): () => void;
  /** Forgets the windows and overuse episodes (a changed limit starts clean). */
  reset(): void;
  /** Units charged per user since start. */
  readonly spent: Map<string, number>;
}

export interface QuotaOptions {
  /** Picks among the "gmail" refusal forms (seeded, so a run can be replayed). */
  random?: Random;
  /** Named in the per-minute texts ('project_number:N'); Google's client ids start with it. */
  projectNumber?: string;
}

/** Units per second over the last 60 s, in a ring of one slot per second. */
class MinuteWindow {
  private readonly slots = new Float64Array(WINDOW_SECONDS);
  private second = Number.NEGATIVE_INFINITY;
  total = 0;

  /** Moves the window to `sec`, dropping the seconds that left it. */
  advance(sec: number): void {
    if (sec <= this.second) return;
    if (sec - this.second >= WINDOW_SECONDS) {
      this.slots.fill(0);
      this.total = 0;
    } else {
      for (let s = this.second + 1; s <= sec; s++) {
        const i = s % WINDOW_SECONDS;
        this.total -= this.slots[i] as number;
        this.slots[i] = 0;
      }
    }
    this.second = sec;
  }

  add(cost: number): void {
    const i = this.second % WINDOW_SECONDS;
    this.slots[i] = (this.slots[i] as number) + cost;
    this.total += cost;
  }

  /** Epoch ms at which `cost` more units fit under `limit`: once enough of the oldest seconds have left. */
  fitsAt(cost: number, limit: number): number {
    let excess = this.total + cost - limit;
    for (let s = this.second - WINDOW_SECONDS + 1; s <= this.second; s++) {
      excess -= this.slots[((s % WINDOW_SECONDS) + WINDOW_SECONDS) % WINDOW_SECONDS] as number;
      if (excess <= 0) return (s + WINDOW_SECONDS) * 1000;
    }
    // A single request costlier than the limit never fits; say "in a minute".
    return (this.second + WINDOW_SECONDS) * 1000;
  }
}

interface UserState {
  window: MinuteWindow;
  /** Strict per-second mode: units left and when they were last refilled. */
  bucket: { tokens: number; at: number } | undefined;
  /** The current overuse episode: first and latest refusal (ms). */
  overuse: { since: number; last: number } | undefined;
  inFlight: number;
}

export function createQuota(settings: Settings, now: () => number = Date.now, opts: QuotaOptions = {}): Quota {
  const random = opts.random ?? createRandom(0x9007a);
  const projectNumber = opts.projectNumber ?? "100000000000";
  const users = new Map<string, UserState>();
  let project = new MinuteWindow();
  const spent = new Map<string, number>();

  const stateOf = (user: string): UserState => {
    let u = users.get(user);
    if (!u) users.set(user, (u = { window: new MinuteWindow(), bucket: undefined, overuse: undefined, inFlight: 0 }));
    return u;
  };

  /** The refusal to send for a user over its limit at `t`, retry possible at `retryAt`. */
  const userRefusal = (u: UserState, t: number, retryAt: number): ApiError => {
    const waitSeconds = Math.max(1, Math.ceil((retryAt - t) / 1000));
    if (settings.quotaErrorForms === "retry-after") {
      return settings.quotaErrorStatus === 403
        ? errors.userRateLimit403(waitSeconds)
        : errors.userRateLimit(new Date(retryAt), waitSeconds);
    }
    if (!u.overuse || t - u.overuse.last > EPISODE_GAP_MS) u.overuse = { since: t, last: t };
    u.overuse.last = t;
    if (t - u.overuse.since >= SUSTAINED_MS) return errors.quotaPerMinute(projectNumber);
    return random.next() < 0.5 ? errors.resourceExhausted() : errors.userRateLimit(new Date(retryAt));
  };

  return {
    spent,
    reset() {
      for (const u of users.values()) {
        u.window = new MinuteWindow();
        u.bucket = undefined;
        u.overuse = undefined;
      }
      project = new MinuteWindow();
    },
    admit(user, cost) {
      const u = stateOf(user);
      const cap = settings.maxConcurrentPerUser;
      if (cap > 0 && u.inFlight >= cap)
        throw errors.tooManyConcurrent(settings.quotaErrorForms === "retry-after" ? 1 : undefined);
      const t = now();
      const sec = Math.floor(t / 1000);

      // The user's limit: a strict per-second bucket, or the minute window.
      const perSecond = settings.quotaUnitsPerSecond;
      const perMinute = settings.userQuotaUnitsPerMinute;
      if (perSecond > 0) {
        const b = (u.bucket ??= { tokens: perSecond, at: t });
        b.tokens = Math.min(perSecond, b.tokens + (Math.max(0, t - b.at) / 1000) * perSecond);
        b.at = t;
        if (b.tokens < cost) throw userRefusal(u, t, t + ((cost - b.tokens) / perSecond) * 1000);
      } else if (perMinute > 0) {
        u.window.advance(sec);
        if (u.window.total + cost > perMinute) throw userRefusal(u, t, u.window.fitsAt(cost, perMinute));
      }

      // The project's limit, every user together.
      const projectLimit = settings.projectQuotaUnitsPerMinute;
      if (projectLimit > 0) {
        project.advance(sec);
        if (project.total + cost > projectLimit) {
          if (settings.quotaErrorForms === "retry-after") throw userRefusal(u, t, project.fitsAt(cost, projectLimit));
          throw errors.projectQuotaPerMinute(projectNumber);
        }
        project.add(cost);
      }

      // Admitted: charge and hold a place in flight.
      if (perSecond > 0) (u.bucket as { tokens: number }).tokens -= cost;
      else if (perMinute > 0) u.window.add(cost);
      spent.set(user, (spent.get(user) ?? 0) + cost);
      u.inFlight++;
      let released = false;
      return () => {
        if (released) return;
        released = true;
        u.inFlight--;
      };
    },
  };
}
