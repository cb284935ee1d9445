// The retry ledger on real Postgres: a transient failure is counted and scheduled on a backoff; it
// is parked only when it has failed MAX_MESSAGE_ATTEMPTS times AND first failed over
// MIN_PARK_AGE_MINUTES ago; a permanent one is parked at once; parked rows come due hourly; a later
// success resolves; failing again starts a new count.
import { sql } from "kysely";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  accountsWithDueMessages,
  dueMessages,
  listDeadLetters,
  MAX_MESSAGE_ATTEMPTS,
  MIN_PARK_AGE_MINUTES,
  nextRetryAt,
  recordMessageFailure,
  resolveDeadLetters,
} from "../../src/db/dead-letters.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";

let tdb: TestDatabase;
let accountId: number;

beforeAll(async () => {
  tdb = await createTestDatabase();
  accountId = (
    await tdb.db.insertInto("accounts").values({ email: "erin@example.com" }).returning("id").executeTakeFirstOrThrow()
  ).id;
});
afterAll(async () => {
  await tdb?.drop();
});

const secondsFromNow = (d: Date | null | undefined) => ((d?.getTime() ?? NaN) - Date.now()) / 1000;

it("backs a transiently failing message off and parks it only after MAX_MESSAGE_ATTEMPTS attempts over MIN_PARK_AGE_MINUTES", async () => {
  const failure = { reason: "fetch_transient", detail: "500 Backend Error", permanent: false };
  const delays: number[] = [];
  for (let i = 1; i <= MAX_MESSAGE_ATTEMPTS + 2; i++) {
    const r = await recordMessageFailure(tdb.db, accountId, "m1", failure);
    // Many attempts within minutes: still retrying (an outage of a few minutes parks nothing).
    expect(r.parked).toBe(false);
    delays.push(secondsFromNow(r.nextAttemptAt));
  }
  // Exponential: each wait about twice the one before (1 s, 2 s, 4 s …).
  for (let i = 1; i < delays.length; i++) expect(delays[i]).toBeGreaterThan((delays[i - 1] as number) * 1.5);
  expect(await listDeadLetters(tdb.db, { parkedOnly: true })).toHaveLength(0);
  expect(secondsFromNow(await nextRetryAt(tdb.db, accountId))).toBeGreaterThan(0);
  expect(await dueMessages(tdb.db, accountId, { limit: 10 })).toEqual([]);

  await sql`UPDATE dead_letters SET first_failed_at = now() - make_interval(mins => ${MIN_PARK_AGE_MINUTES + 1}) WHERE gmail_id = 'm1'`.execute(
    tdb.db,
  );
  const r = await recordMessageFailure(tdb.db, accountId, "m1", failure);
  expect(r.parked).toBe(true);
  // Parked rows are tried hourly, not on the backoff; nextRetryAt (the job schedule) leaves them to the tick.
  expect(secondsFromNow(r.nextAttemptAt)).toBeGreaterThan(55 * 60);
  expect(await nextRetryAt(tdb.db, accountId)).toBeNull();
  const [row] = await listDeadLetters(tdb.db, { parkedOnly: true });
  expect(row).toMatchObject({ gmailId: "m1", attempts: MAX_MESSAGE_ATTEMPTS + 3, email: "erin@example.com" });
  expect(row?.parkedAt).toBeInstanceOf(Date);
  // Once parked it stays parked.
  expect((await recordMessageFailure(tdb.db, accountId, "m1", failure)).parked).toBe(true);
  // Due: listed for the retry step and by the hourly tick's account query.
  expect(await accountsWithDueMessages(tdb.db)).toEqual([]);
  await sql`UPDATE dead_letters SET next_attempt_at = now() WHERE gmail_id = 'm1'`.execute(tdb.db);
  expect(await dueMessages(tdb.db, accountId, { limit: 10 })).toEqual([
    { gmailId: "m1", reason: "fetch_transient", parked: true },
  ]);
  expect(await accountsWithDueMessages(tdb.db)).toEqual([accountId]);
});

it("parks a permanent failure at once; success resolves; a new failure counts from one", async () => {
  expect(
    (await recordMessageFailure(tdb.db, accountId, "m2", { reason: "parse", detail: "unparsable", permanent: true }))
      .parked,
  ).toBe(true);
  await resolveDeadLetters(tdb.db, accountId, ["m1", "m2"]);
  expect(await listDeadLetters(tdb.db)).toHaveLength(0);
  expect(await accountsWithDueMessages(tdb.db)).toEqual([]);
  expect(
    (
      await recordMessageFailure(tdb.db, accountId, "m1", {
        reason: "fetch_transient",
        detail: "503",
        permanent: false,
      })
    ).parked,
  ).toBe(false);
  const open = await listDeadLetters(tdb.db);
  expect(open).toHaveLength(1);
  expect(open[0]).toMatchObject({ gmailId: "m1", attempts: 1, parkedAt: null });
});
