// Backfills take turns (src/sync/page-slices.ts): one slice of a page per job, re-enqueued behind
// the other accounts with a priority that grows with the pages done, and a new account's first turn
// ahead of every running backfill's next one. With a single job slot, an account connected while
// another backfills shows its first messages after at most one turn of the other, and both finish
// equal to their mailboxes.
import { afterAll, beforeAll, expect, it } from "vitest";
import { FIRST_SLICE, SLICE } from "../../src/sync/page-slices.ts";
import {
  backfillDone,
  connectTestAccount,
  expectDbEqualsMailbox,
  type Harness,
  queuesIdle,
  startHarness,
  waitFor,
} from "./harness.ts";

const FIRST = "first@example.com";
const LATE = "late@example.com";
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    // Per-user quota off: the order of turns between accounts is the subject, not one user's limit.
    emulator: { accounts: [FIRST, LATE], messages: 1200, seed: 31, attachments: false, userQuotaUnitsPerMinute: 0 },
    env: { WORKER_CONCURRENCY: "1", INCLUDE_SPAM_TRASH: "true" },
  });
}, 60_000);
afterAll(async () => {
  await h?.close();
});

const stored = async (accountId: number) =>
  Number(
    (
      await h.app.db
        .selectFrom("messages")
        .select((eb) => eb.fn.countAll().as("n"))
        .where("account_id", "=", accountId)
        .executeTakeFirstOrThrow()
    ).n,
  );

it("an account connected mid-backfill gets its first turn next, and both complete", { timeout: 180_000 }, async () => {
  const workers = h.app.startWorkers({ maintenance: false });
  try {
    const first = await connectTestAccount(h, FIRST);
    const late = await connectTestAccount(h, LATE);
    await h.app.enqueueBackfill(first, { reason: "connect" });
    await waitFor("a few turns of the first account", async () => (await stored(first)) >= 3 * FIRST_SLICE, 60_000, 20);
    expect(await backfillDone(h, first)).toBe(false);

    const before = await stored(first);
    await h.app.enqueueBackfill(late, { reason: "connect" });
    await waitFor("the late account's first messages", async () => (await stored(late)) > 0, 30_000, 10);
    const during = (await stored(first)) - before;
    // At most the turn that was running when it connected (a slice, plus thread members with it).
    expect(during).toBeLessThanOrEqual(2 * SLICE);
    expect(await backfillDone(h, first)).toBe(false);

    await waitFor(
      "both backfills",
      async () => (await backfillDone(h, first)) && (await backfillDone(h, late)),
      150_000,
    );
    await waitFor("queues to drain", () => queuesIdle(h), 30_000);
    await expectDbEqualsMailbox(h, first, FIRST);
    await expectDbEqualsMailbox(h, late, LATE);
  } finally {
    await workers.close();
  }
});
