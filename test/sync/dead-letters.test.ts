// The per-message outcome ledger on real Postgres: a transient failure is counted and holds the
// cursor until MAX_MESSAGE_ATTEMPTS runs have failed, then it is parked (a dead letter); a
// permanent one is parked at once; a later success resolves it; failing again starts a new count.
import { afterAll, beforeAll, expect, it } from "vitest";
import { listDeadLetters, MAX_MESSAGE_ATTEMPTS, recordMessageFailure, resolveDeadLetters } from "../../src/db/dead-letters.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";

let tdb: TestDatabase;
let accountId: number;

beforeAll(async () => {
  tdb = await createTestDatabase();
  accountId = (await tdb.db.insertInto("accounts").values({ email: "erin@example.com" }).returning("id").executeTakeFirstOrThrow()).id;
});
afterAll(async () => {
  await tdb?.drop();
});

it("parks a transiently failing message after MAX_MESSAGE_ATTEMPTS runs, and only then", async () => {
  const failure = { reason: "fetch_transient", detail: "500 Backend Error", permanent: false };
  for (let i = 1; i < MAX_MESSAGE_ATTEMPTS; i++) {
    expect(await recordMessageFailure(tdb.db, accountId, "m1", failure)).toBe(false);
    expect(await listDeadLetters(tdb.db, { parkedOnly: true })).toHaveLength(0);
  }
  expect(await recordMessageFailure(tdb.db, accountId, "m1", failure)).toBe(true);
  const [row] = await listDeadLetters(tdb.db, { parkedOnly: true });
  expect(row).toMatchObject({ gmailId: "m1", attempts: MAX_MESSAGE_ATTEMPTS, email: "erin@example.com" });
  expect(row?.parkedAt).toBeInstanceOf(Date);
  // Once parked it stays parked (does not block the cursor again).
  expect(await recordMessageFailure(tdb.db, accountId, "m1", failure)).toBe(true);
});

it("parks a permanent failure at once; success resolves; a new failure counts from one", async () => {
  expect(await recordMessageFailure(tdb.db, accountId, "m2", { reason: "parse", detail: "unparsable", permanent: true })).toBe(true);
  await resolveDeadLetters(tdb.db, accountId, ["m1", "m2"]);
  expect(await listDeadLetters(tdb.db)).toHaveLength(0);
  expect(await recordMessageFailure(tdb.db, accountId, "m1", { reason: "fetch_transient", detail: "503", permanent: false })).toBe(false);
  const open = await listDeadLetters(tdb.db);
  expect(open).toHaveLength(1);
  expect(open[0]).toMatchObject({ gmailId: "m1", attempts: 1, parkedAt: null });
});
