// A revoked refresh token makes the account reauth_required within one job, after which no Gmail
// or token call is made for it; and two runs of one kind for one account never overlap (the
// Postgres advisory lock), even when two worker sets in different processes pick them up.
import { afterAll, beforeAll, expect, it } from "vitest";
import { getSyncState } from "../../src/db/sync-state.ts";
import { enqueueBackfill } from "../../src/jobs.ts";
import { runIncremental } from "../../src/sync/incremental.ts";
import { SyncBusyError } from "../../src/errors.ts";
import { withSyncLock } from "../../src/sync/lock.ts";
import { accountStatuses } from "../../src/sync/status.ts";
import {
  backfillDone,
  connectTestAccount,
  type Harness,
  queuesIdle,
  startHarness,
  syncToMailbox,
  waitFor,
} from "./harness.ts";

const ALICE = "alice@example.com";
const DAN = "dan@example.com";
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ emulator: { accounts: [ALICE, DAN], messages: 60, seed: 3, attachments: false } });
  h.app.startWorkers({ maintenance: false });
});
afterAll(async () => {
  await h?.close();
});

function callsFor(stats: { requests: Record<string, Record<string, number>> }): number {
  let n = 0;
  // Gmail API, batch and OAuth token calls (the emulator also counts its own control requests).
  for (const [name, byStatus] of Object.entries(stats.requests)) {
    if (!/^(gmail|oauth|batch)/i.test(name)) continue;
    for (const c of Object.values(byStatus)) n += c;
  }
  return n;
}

it("revoked refresh token → reauth_required within one job, then no more Gmail or token calls", {
  timeout: 60_000,
}, async () => {
  const alice = await connectTestAccount(h, ALICE);
  const dan = await connectTestAccount(h, DAN);
  await h.app.enqueueBackfill(alice, { reason: "connect" });
  await h.app.enqueueBackfill(dan, { reason: "connect" });
  await waitFor(
    "backfills",
    async () => (await backfillDone(h, alice)) && (await backfillDone(h, dan)) && (await queuesIdle(h)),
    30_000,
  );

  await h.emulator.control.revoke(ALICE);
  await h.emulator.control.deliver(ALICE, { labelIds: ["INBOX"] });
  await h.app.enqueueIncremental(alice, { reason: "manual" });
  await waitFor(
    "reauth_required",
    async () => (await accountStatuses(h.app.db, { email: ALICE }))[0]?.status === "reauth_required",
    20_000,
  );
  await waitFor("queues idle", () => queuesIdle(h), 10_000);
  const failed = await h.app.queues.incremental.getFailed();
  expect(failed).toHaveLength(1);
  expect(failed[0]?.attemptsMade).toBe(1); // no retry storm

  // Nothing more reaches the emulator for alice: more jobs are no-ops.
  const before = callsFor(await h.emulator.control.stats());
  expect(before).toBeGreaterThan(0);
  await h.app.enqueueIncremental(alice, { reason: "poll" });
  await h.app.enqueueBackfill(alice, { reason: "manual" });
  await waitFor("queues idle", () => queuesIdle(h), 10_000);
  expect(callsFor(await h.emulator.control.stats())).toBe(before);

  // The other account is untouched.
  await h.emulator.control.deliver(DAN, { labelIds: ["INBOX"] });
  await syncToMailbox(h, dan, DAN);
  expect((await accountStatuses(h.app.db, { email: DAN }))[0]?.status).toBe("active");
});

it("two runs of one kind for one account never overlap", async () => {
  const dan = (await accountStatuses(h.app.db, { email: DAN }))[0]?.id as number;
  let release!: () => void;
  const held = withSyncLock(h.app.db, "incremental", dan, () => new Promise<void>((r) => (release = r)));
  await new Promise((r) => setTimeout(r, 50));
  const deps = {
    db: h.app.db,
    redis: h.app.redis,
    queues: h.app.queues,
    gmailFactory: h.app.gmailFactory,
    pipeline: h.app.pipeline,
    log: h.app.log,
    config: h.app.config,
  };
  const cursor = (await getSyncState(h.app.db, dan))?.history_id;
  await expect(runIncremental(deps, { accountId: dan, reason: "manual" })).rejects.toBeInstanceOf(SyncBusyError);
  // A different kind is a different lock: backfill may page while incremental runs.
  await expect(withSyncLock(h.app.db, "backfill", dan, async () => "ok")).resolves.toBe("ok");
  release();
  await held;
  await expect(runIncremental(deps, { accountId: dan, reason: "manual" })).resolves.toMatchObject({
    cursor: expect.any(String),
  });
  expect(BigInt((await getSyncState(h.app.db, dan))?.history_id as string)).toBeGreaterThanOrEqual(
    BigInt(cursor as string),
  );
});

it("a backfill whose job chain broke is resumed by the next sync (resume only, never a new run)", {
  timeout: 30_000,
}, async () => {
  const dan = (await accountStatuses(h.app.db, { email: DAN }))[0]?.id as number;
  await waitFor("idle", () => queuesIdle(h), 10_000);
  // A run left mid-listing with no job (as after its job failed all its attempts).
  await h.app.db
    .updateTable("sync_state")
    .set({
      backfill_phase: "listing",
      backfill_page_token: null,
      backfill_started_at: new Date(Date.now() - 1000),
      backfill_pages: 0,
      backfill_listed: 0,
      backfill_stored: 0,
    })
    .where("account_id", "=", dan)
    .execute();
  await h.app.enqueueIncremental(dan, { reason: "poll" });
  await waitFor("the stuck run to finish", () => backfillDone(h, dan), 20_000);
  await waitFor("idle", () => queuesIdle(h), 10_000);
  const [view] = await accountStatuses(h.app.db, { email: DAN });
  expect(view?.backfill).toMatchObject({ done: true, pages: 1 });
  expect(view?.status).toBe("active");
  // A resume-only job never starts a new run.
  const startedAt = view?.backfill.startedAt;
  await enqueueBackfill(h.app.queues, dan, { reason: "manual", resumeOnly: true });
  await waitFor("idle", () => queuesIdle(h), 10_000);
  expect((await accountStatuses(h.app.db, { email: DAN }))[0]?.backfill.startedAt).toBe(startedAt);
});
