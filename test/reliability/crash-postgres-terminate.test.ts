// Postgres connections killed under a backfill run by a worker child process: pg_terminate_backend
// on the backends of the test database that are inside a write transaction (a page's upsert +
// checkpoint), then on every backend of the database at once (the advisory-lock sessions and idle
// pool connections too). The worker survives (no unhandled connection error), the page whose
// transaction died rolls back whole, its job retries and the backfill converges. Ends converged: database = mailbox, no duplicate, no temp file, no stuck or failed job.
import pg from "pg";
import { afterAll, beforeAll, expect, it } from "vitest";
import { adminUrl } from "../helpers/env.ts";
import { backfillDone, connectTestAccount, type Harness, startHarness, syncState } from "../sync/harness.ts";
import { expectConverged, killAllWorkerChildren, poll, startWorkerChild, syncQueueCounts } from "./helpers/crash.ts";

const EMAIL = "leo@example.com";
const MESSAGES = 3000; // 6 pages of 500: room for the kills to catch writers
let h: Harness;
let admin: pg.Client;

beforeAll(async () => {
  h = await startHarness({
    emulator: { accounts: [EMAIL], messages: MESSAGES, seed: 55, attachments: false },
    // About a second per page: the kills land while pages are still being written.
    env: { INCLUDE_SPAM_TRASH: "true", GMAIL_QUOTA_UNITS_PER_SECOND: "2500" },
  });
  admin = new pg.Client({ connectionString: adminUrl });
  await admin.connect();
});
afterAll(async () => {
  killAllWorkerChildren();
  await admin?.end();
  await h?.close();
});

/** Terminates the test database's backends matching `where`; returns how many. */
async function terminate(where: string): Promise<number> {
  const r = await admin.query<{ n: number }>(
    `SELECT count(*) FILTER (WHERE pg_terminate_backend(pid))::int AS n FROM pg_stat_activity
     WHERE datname = $1 AND pid <> pg_backend_pid() AND ${where}`,
    [h.tdb.name],
  );
  return r.rows[0]?.n ?? 0;
}

it("pg_terminate_backend mid-transaction and on every connection during a backfill: jobs retry and converge", {
  timeout: 90_000,
}, async () => {
  const accountId = await connectTestAccount(h, EMAIL);
  const worker = startWorkerChild(h);
  await h.app.enqueueBackfill(accountId, { reason: "connect" });

  // Writers caught inside their transaction: a transaction id assigned (rows written), not committed.
  let inTransaction = 0;
  const until = Date.now() + 30_000;
  while (inTransaction < 2 && Date.now() < until) {
    inTransaction += await terminate("backend_xid IS NOT NULL AND state IN ('active', 'idle in transaction')");
    await new Promise((r) => setTimeout(r, 5));
  }
  expect(inTransaction, "no write transaction caught mid-way").toBeGreaterThanOrEqual(2);
  const midway = await poll("sync state after the kills", () => syncState(h, accountId), 10_000);
  expect(midway.backfill_phase, "the kills landed mid-backfill").not.toBe("done");

  // Everything at once, twice: lock sessions, idle pooled connections, the test's own.
  // (A round counts when it found connections: between retries the pool may hold none.)
  for (let rounds = 0; rounds < 2; ) {
    if ((await terminate("true")) > 0) rounds++;
    await new Promise((r) => setTimeout(r, 200));
  }

  await poll("backfill to finish", () => backfillDone(h, accountId), 60_000, 100);
  await poll("queues to drain", async () => (await syncQueueCounts(h)).stuck === 0, 30_000, 100);
  expect((await syncState(h, accountId)).backfill_pages).toBe(MESSAGES / 500);
  await expectConverged(h, accountId, EMAIL);
  expect(worker.child.exitCode, `the worker died: ${worker.output()}`).toBe(null);
  worker.child.kill("SIGTERM");
  expect((await worker.exited).code, worker.output()).toBe(0);
});
