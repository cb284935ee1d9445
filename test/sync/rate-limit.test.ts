// Gmail answering 429 for one account (the emulator's per-user quota far below what we assume):
// that account's job is parked with moveToDelayed + DelayedError (no attempt used, nothing
// failed) and the account shows throttled; once Gmail relents, the parked backfill and another
// account's completes with every message — and no message is fetched twice: what an interrupted
// job was served before the refusal is stored, not thrown away and paid for again.
import { afterAll, beforeAll, expect, it } from "vitest";
import { quotaDelayedJobsTotal } from "../../src/metrics.ts";
import { accountStatuses } from "../../src/sync/status.ts";
import {
  backfillDone,
  connectTestAccount,
  expectDbEqualsMailbox,
  type Harness,
  queuesIdle,
  startHarness,
  syncState,
  waitFor,
} from "./harness.ts";

const GUS = "gus@example.com";
const HAL = "hal@example.com";
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    emulator: { accounts: [GUS, HAL], messages: 40, seed: 9, attachments: false, quotaUnitsPerSecond: 10 },
    env: { INCLUDE_SPAM_TRASH: "true", GMAIL_QUOTA_UNITS_PER_SECOND: "1000" },
  });
  h.app.startWorkers({ maintenance: false, concurrency: 2 });
});
afterAll(async () => {
  await h?.close();
});

async function delayed(): Promise<number> {
  return (await quotaDelayedJobsTotal.get()).values.reduce((n, v) => n + v.value, 0);
}

it("a rate-limited account is parked (not an attempt, not failed), shows throttled, and completes once Gmail relents", {
  timeout: 90_000,
}, async () => {
  const gus = await connectTestAccount(h, GUS);
  await h.app.enqueueBackfill(gus, { reason: "connect" });
  let sawThrottled = false;
  await waitFor(
    "gus parked",
    async () => {
      const [view] = await accountStatuses(h.app.db, { email: GUS });
      if (view?.status === "throttled" || (await syncState(h, gus)).throttled_until !== null) sawThrottled = true;
      return (await delayed()) > 0 && sawThrottled;
    },
    60_000,
    50,
  );
  const parked = (await h.app.queues.backfill.getJobs(["delayed", "active", "waiting"])).filter(
    (j) => j.data.accountId === gus,
  );
  expect(parked.length).toBeGreaterThan(0);
  expect(parked.every((j) => j.attemptsMade === 0)).toBe(true); // parking is not an attempt

  // Gmail relents for everyone; hal's backfill and gus's parked one both complete.
  await h.emulator.control.updateSettings({ quotaUnitsPerSecond: 0 });
  const hal = await connectTestAccount(h, HAL);
  await h.app.enqueueBackfill(hal, { reason: "connect" });
  await waitFor(
    "both backfills",
    async () => (await backfillDone(h, hal)) && (await backfillDone(h, gus)) && (await queuesIdle(h)),
    60_000,
  );
  expect(await h.app.queues.backfill.getFailed()).toHaveLength(0);
  await expectDbEqualsMailbox(h, gus, GUS);
  await expectDbEqualsMailbox(h, hal, HAL);
  const twice = Object.entries(await h.emulator.control.messageGets(GUS)).filter(([, n]) => n > 1);
  expect(twice, "messages fetched more than once").toEqual([]);
});
