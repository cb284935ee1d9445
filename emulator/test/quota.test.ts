// Quota as Gmail enforces it: 15,000 units per user in any 60 s window (bursts fine, a sustained
// rate above 250 units/s refused), 1,200,000 per project, at most 10 requests in flight per user,
// and refusals in every recorded form (gmail-real-samples/README.md fact 13). The windows are
// driven with a fake clock on the quota module; the end-to-end tests use the real client against
// the defaults.
import type { gmail_v1 } from "@googleapis/gmail";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { ApiError, RefusalForm } from "../src/errors.ts";
import { createQuota, SUSTAINED_MS, type Quota } from "../src/quota.ts";
import { startEmulator, type Emulator } from "../src/server.ts";
import { DEFAULT_SETTINGS, type Settings } from "../src/state.ts";
import { clientFor } from "./helpers.ts";
import { loadSample, samplesPresent, shapeDiff, shapeOf } from "./sample-shape.ts";

const T0 = 1_767_225_600_000; // a whole second
const settingsWith = (s: Partial<Settings> = {}): Settings => ({ ...DEFAULT_SETTINGS, unauthorizedTopics: [], ...s });

/** Admits and ends one request at once; the refusal when refused. */
function attempt(q: Quota, user: string, cost: number): ApiError | undefined {
  try {
    q.admit(user, cost)();
    return undefined;
  } catch (err) {
    return err as ApiError;
  }
}

function fakeClock(start = T0) {
  const c = { t: start, now: () => c.t };
  return c;
}

describe("the user's minute window (fake clock)", () => {
  it("admits a 1,500-unit burst in half a second and a sustained 250 units/s for minutes", () => {
    const clock = fakeClock();
    const q = createQuota(settingsWith(), clock.now);
    for (let i = 0; i < 300; i++) {
      clock.t = T0 + i * (500 / 300);
      expect(attempt(q, "a", 5)).toBeUndefined();
    }
    const steady = createQuota(settingsWith(), clock.now);
    // 5 units every 20 ms = 250 units/s, for three minutes.
    for (let i = 0; i < 9000; i++) {
      clock.t = T0 + i * 20;
      expect(attempt(steady, "a", 5)).toBeUndefined();
    }
    expect(steady.spent.get("a")).toBe(45_000);
  });

  it("refuses a sustained 300 units/s once the minute holds 15,000 units, and never lets a window exceed it", () => {
    const clock = fakeClock();
    const q = createQuota(settingsWith(), clock.now);
    const admittedAt: number[] = [];
    let firstRefusal: number | undefined;
    // 5 units every 1/60 s = 300 units/s, for two minutes.
    for (let i = 0; i < 7200; i++) {
      clock.t = T0 + Math.floor((i * 1000) / 60);
      const refused = attempt(q, "a", 5);
      if (refused) firstRefusal ??= clock.t - T0;
      else admittedAt.push(clock.t);
    }
    expect(firstRefusal).toBeGreaterThanOrEqual(49_000);
    expect(firstRefusal).toBeLessThanOrEqual(51_000);
    // Any 60 s window (whole seconds) holds at most 15,000 units; over two minutes ~250/s got through.
    const perSecond = new Map<number, number>();
    for (const t of admittedAt) perSecond.set(Math.floor(t / 1000), (perSecond.get(Math.floor(t / 1000)) ?? 0) + 5);
    for (let s = T0 / 1000; s < T0 / 1000 + 120; s++) {
      let sum = 0;
      for (let k = 0; k < 60; k++) sum += perSecond.get(s - k) ?? 0;
      expect(sum).toBeLessThanOrEqual(15_000);
    }
    expect(q.spent.get("a")).toBeGreaterThan(0.95 * 250 * 120);
    expect(q.spent.get("a")).toBeLessThanOrEqual(15_000 * 2);
  });

  it("refuses in Gmail's mixed 429 forms, then the 403 per-minute form once overuse is sustained; a refused request is not charged", () => {
    const clock = fakeClock();
    const q = createQuota(settingsWith(), clock.now, { projectNumber: "123456789012" });
    for (let i = 0; i < 3000; i++) expect(attempt(q, "a", 5)).toBeUndefined();
    const spent = q.spent.get("a");
    const forms = new Map<RefusalForm | undefined, ApiError>();
    for (let i = 0; i < 40; i++) {
      clock.t = T0 + i * 10;
      const err = attempt(q, "a", 5) as ApiError;
      forms.set(err.refusal, err);
    }
    expect(q.spent.get("a")).toBe(spent);
    expect([...forms.keys()].sort()).toEqual(["resourceExhausted", "userRateLimit"]);
    const exhausted = forms.get("resourceExhausted") as ApiError;
    expect(exhausted.toJSON()).toEqual({
      error: {
        code: 429,
        message: "Resource has been exhausted (e.g. check quota).",
        errors: [
          { message: "Resource has been exhausted (e.g. check quota).", domain: "global", reason: "rateLimitExceeded" },
        ],
        status: "RESOURCE_EXHAUSTED",
      },
    });
    expect(exhausted.headers).toEqual({});
    // The retry time is when the oldest second leaves the window: T0 + 60 s.
    const limited = forms.get("userRateLimit") as ApiError;
    expect(limited.message).toBe(`User-rate limit exceeded.  Retry after ${new Date(T0 + 60_000).toISOString()}`);
    expect(limited.item).toEqual({ message: limited.message, domain: "usageLimits", reason: "rateLimitExceeded" });
    expect(limited.headers).toEqual({});

    clock.t = T0 + SUSTAINED_MS;
    const sustained = attempt(q, "a", 5) as ApiError;
    expect(sustained.refusal).toBe("quotaPerMinute");
    expect(sustained.status).toBe(403);
    expect(sustained.toJSON()).toEqual({
      error: {
        code: 403,
        message:
          "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of service 'gmail.googleapis.com' for consumer 'project_number:123456789012'.",
        errors: [
          {
            message:
              "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of service 'gmail.googleapis.com' for consumer 'project_number:123456789012'.",
            domain: "usageLimits",
            reason: "rateLimitExceeded",
          },
        ],
        status: "PERMISSION_DENIED",
      },
    });

    // The minute passes: admitted again. Overused again within the minute: still the 403.
    clock.t = T0 + 60_000;
    for (let i = 0; i < 3000; i++) expect(attempt(q, "a", 5)).toBeUndefined();
    expect((attempt(q, "a", 5) as ApiError).refusal).toBe("quotaPerMinute");
    // A quiet minute ends the episode: the next overuse starts with the 429 forms again.
    clock.t = T0 + 60_000 + 61_000 + 60_000;
    for (let i = 0; i < 3000; i++) expect(attempt(q, "a", 5)).toBeUndefined();
    expect(["resourceExhausted", "userRateLimit"]).toContain((attempt(q, "a", 5) as ApiError).refusal);
  });

  it("'retry-after' forms: always 429 'Retry after' with a Retry-After header, or the legacy 403", () => {
    const clock = fakeClock(T0 + 250);
    const settings = settingsWith({ quotaErrorForms: "retry-after", userQuotaUnitsPerMinute: 100 });
    const q = createQuota(settings, clock.now);
    expect(attempt(q, "a", 100)).toBeUndefined();
    // Refused for 25 s on end: never the 403 form in this mode.
    for (let i = 0; i < 25; i++) {
      clock.t += 1000;
      const err = attempt(q, "a", 1) as ApiError;
      expect(err.refusal).toBe("userRateLimit");
    }
    clock.t = T0 + 30_000;
    const err = attempt(q, "a", 1) as ApiError;
    expect(err.message).toBe(`User-rate limit exceeded.  Retry after ${new Date(T0 + 60_000).toISOString()}`);
    expect(err.headers).toEqual({ "retry-after": "30" });
    settings.quotaErrorStatus = 403;
    const legacy = attempt(q, "a", 1) as ApiError;
    expect(legacy.refusal).toBe("legacy403");
    expect(legacy.toJSON()).toMatchObject({
      error: { code: 403, errors: [{ domain: "usageLimits", reason: "userRateLimitExceeded" }] },
    });
  });

  it("userQuotaUnitsPerMinute 0 turns the user window off; reset() forgets it", () => {
    const clock = fakeClock();
    const settings = settingsWith({ userQuotaUnitsPerMinute: 0 });
    const q = createQuota(settings, clock.now);
    for (let i = 0; i < 5000; i++) expect(attempt(q, "a", 5)).toBeUndefined();
    settings.userQuotaUnitsPerMinute = 15_000;
    for (let i = 0; i < 3000; i++) expect(attempt(q, "a", 5)).toBeUndefined();
    expect(attempt(q, "a", 5)).toBeDefined();
    q.reset();
    expect(attempt(q, "a", 5)).toBeUndefined();
  });
});

describe("the project's minute window (fake clock)", () => {
  it("counts every user together and refuses with the project's per-minute text; 0 turns it off", () => {
    const clock = fakeClock();
    const settings = settingsWith({ projectQuotaUnitsPerMinute: 100 });
    const q = createQuota(settings, clock.now, { projectNumber: "42" });
    expect(attempt(q, "a", 60)).toBeUndefined();
    expect(attempt(q, "b", 40)).toBeUndefined();
    const err = attempt(q, "b", 1) as ApiError;
    expect(err.refusal).toBe("projectQuotaPerMinute");
    expect(err.status).toBe(429);
    expect(err.message).toBe(
      "Quota exceeded for quota metric 'Queries' and limit 'Queries per minute' of service 'gmail.googleapis.com' for consumer 'project_number:42'.",
    );
    expect(q.spent.get("b")).toBe(40);
    clock.t += 60_000;
    expect(attempt(q, "b", 100)).toBeUndefined();
    settings.projectQuotaUnitsPerMinute = 0;
    expect(attempt(q, "c", 100)).toBeUndefined();
  });
});

describe("strict per-second mode (fake clock)", () => {
  it("quotaUnitsPerSecond replaces the minute window with a bucket of one second of burst", () => {
    const clock = fakeClock();
    const q = createQuota(settingsWith({ quotaUnitsPerSecond: 250 }), clock.now);
    for (let i = 0; i < 50; i++) expect(attempt(q, "a", 5)).toBeUndefined();
    // The 1,500-unit burst the minute window allows is refused here after 250 units.
    const refused = attempt(q, "a", 5) as ApiError;
    expect(["resourceExhausted", "userRateLimit"]).toContain(refused.refusal);
    clock.t += 1000;
    for (let i = 0; i < 50; i++) expect(attempt(q, "a", 5)).toBeUndefined();
    expect(attempt(q, "a", 5)).toBeDefined();
  });
});

describe("concurrency cap", () => {
  it("holds 10 requests in flight per user; the 11th is refused 'Too many concurrent requests for user' (domain global) and charged nothing", () => {
    const settings = settingsWith();
    const q = createQuota(settings);
    const releases = Array.from({ length: 10 }, () => q.admit("a", 5));
    let refused: ApiError | undefined;
    try {
      q.admit("a", 5);
    } catch (err) {
      refused = err as ApiError;
    }
    expect(refused?.refusal).toBe("tooManyConcurrent");
    expect(refused?.toJSON()).toEqual({
      error: {
        code: 429,
        message: "Too many concurrent requests for user",
        errors: [{ message: "Too many concurrent requests for user", domain: "global", reason: "rateLimitExceeded" }],
        status: "RESOURCE_EXHAUSTED",
      },
    });
    expect(q.spent.get("a")).toBe(50);
    // Another user is not affected; a release (even twice) frees exactly one place.
    expect(attempt(q, "b", 5)).toBeUndefined();
    releases[0]?.();
    releases[0]?.();
    const r = q.admit("a", 5);
    expect(() => q.admit("a", 5)).toThrow("Too many concurrent");
    settings.maxConcurrentPerUser = 0;
    expect(attempt(q, "a", 5)).toBeUndefined();
    r();
  });

  it("is cheap: a ring of per-second slots, not a request log", () => {
    const clock = fakeClock();
    const q = createQuota(settingsWith(), clock.now);
    const started = performance.now();
    for (let i = 0; i < 200_000; i++) {
      clock.t = T0 + i * 5;
      q.admit(i % 2 ? "a" : "b", 1)();
    }
    expect(performance.now() - started).toBeLessThan(1000);
  });
});

describe("end to end, default settings", () => {
  let emu: Emulator;
  let api: gmail_v1.Gmail;
  let token: string;
  const clock = { offset: 0 };

  beforeAll(async () => {
    emu = await startEmulator({ seed: 11, messages: 300, attachments: false, clock: () => Date.now() + clock.offset });
    const c = await clientFor(emu);
    api = c.api;
    token = (await c.auth.getAccessToken()).token as string;
  });
  afterAll(async () => {
    await emu.close();
  });

  it("a client written for real Gmail pulls 300 messages in full as fast as it can with 10 in flight (~1,500 units in a burst): nothing refused", async () => {
    const ids: string[] = [];
    let pageToken: string | undefined;
    do {
      const page = await api.users.messages.list({
        userId: "me",
        maxResults: 100,
        includeSpamTrash: true,
        ...(pageToken ? { pageToken } : {}),
      });
      ids.push(...(page.data.messages ?? []).map((m) => m.id as string));
      pageToken = page.data.nextPageToken ?? undefined;
    } while (pageToken);
    expect(ids.length).toBeGreaterThanOrEqual(300);
    const started = performance.now();
    let next = 0;
    const worker = async () => {
      while (next < ids.length) {
        const id = ids[next++] as string;
        const res = await api.users.messages.get({ userId: "me", id, format: "full" });
        expect(res.data.id).toBe(id);
      }
    };
    await Promise.all(Array.from({ length: 10 }, worker));
    const seconds = (performance.now() - started) / 1000;
    const stats = await emu.control.stats();
    expect(stats.rateLimited).toBe(0);
    expect(stats.requests["gmail.users.messages.get"]?.["429"]).toBeUndefined();
    expect(stats.quotaUnits["alice@example.com"]).toBe(5 * ids.length + 5 * Math.ceil(ids.length / 100));
    // The burst really was a burst: well above 250 units/s.
    expect((5 * ids.length) / seconds).toBeGreaterThan(250);
  });

  it("more than 15,000 units inside a minute are refused in each recorded form; the 403 comes after sustained overuse and reaches the client as an error", async () => {
    const headers = { authorization: `Bearer ${token}` };
    const threadsList = () => fetch(`${emu.url}/gmail/v1/users/me/threads?maxResults=1`, { headers });
    // Fill the window (threads.list costs 10 units) with 10 in flight.
    let refused: Response | undefined;
    const worker = async () => {
      while (!refused) {
        const res = await threadsList();
        if (res.status !== 200) refused = res;
        await res.arrayBuffer();
      }
    };
    await Promise.all(Array.from({ length: 10 }, worker));
    const before = await emu.control.stats();
    expect(before.quotaUnits["alice@example.com"]).toBeGreaterThanOrEqual(15_000 - 10);
    const bodies: Array<{
      status: number;
      retryAfter: string | null;
      body: { error: { message: string; errors: Array<{ domain: string; reason: string }> } };
    }> = [];
    for (let i = 0; i < 30; i++) {
      const res = await threadsList();
      bodies.push({
        status: res.status,
        retryAfter: res.headers.get("retry-after"),
        body: (await res.json()) as never,
      });
    }
    expect(new Set(bodies.map((b) => b.status))).toEqual(new Set([429]));
    const messages = new Set(bodies.map((b) => b.body.error.message.replace(/\d{4}-\d\d-\d\dT[\d:.]+Z/, "<ts>")));
    expect(messages).toEqual(
      new Set(["Resource has been exhausted (e.g. check quota).", "User-rate limit exceeded.  Retry after <ts>"]),
    );
    expect(bodies.every((b) => b.retryAfter === null)).toBe(true);
    if (samplesPresent) {
      const recorded = loadSample("error_429_resource_exhausted.json")?.body as { error: unknown };
      const served = bodies.find((b) => b.body.error.message.startsWith("Resource"))?.body;
      expect(shapeDiff(served, shapeOf({ error: recorded.error }))).toEqual([]);
    }

    // Ten seconds of overuse later: the 403 per-minute form, which the client does not retry.
    clock.offset += SUSTAINED_MS + 1000;
    const err = await api.users.threads.list({ userId: "me", maxResults: 1 }).catch((e: unknown) => e);
    expect(err).toMatchObject({
      status: 403,
      response: {
        data: {
          error: { errors: [{ domain: "usageLimits", reason: "rateLimitExceeded" }], status: "PERMISSION_DENIED" },
        },
      },
    });
    expect((err as { response: { data: { error: { message: string } } } }).response.data.error.message).toMatch(
      /^Quota exceeded for quota metric 'Queries' and limit 'Queries per minute per user' of service 'gmail\.googleapis\.com' for consumer 'project_number:\d+'\.$/,
    );
    const stats = await emu.control.stats();
    expect(stats.rateLimitedByForm.resourceExhausted).toBeGreaterThan(0);
    expect(stats.rateLimitedByForm.userRateLimit).toBeGreaterThan(0);
    expect(stats.rateLimitedByForm.quotaPerMinute).toBe(1);
    expect(stats.rateLimited).toBe(Object.values(stats.rateLimitedByForm).reduce((a, b) => a + b, 0));

    // A minute on, the window has room again.
    clock.offset += 60_000;
    expect((await api.users.threads.list({ userId: "me", maxResults: 1 })).status).toBe(200);
  });
});
