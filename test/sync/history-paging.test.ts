// history.list paging that never ends — the same nextPageToken given twice, or empty pages that
// always carry another token — stops the run as a transient failure with the cursor unmoved,
// instead of keeping a worker listing for ever. Gmail is the emulator behind a port whose
// listHistory misbehaves.
import { afterAll, beforeAll, expect, it } from "vitest";
import { isGmailError } from "../../src/errors.ts";
import type { GmailPort, HistoryPage } from "../../src/gmail/port.ts";
import type { SyncDeps } from "../../src/sync/deps.ts";
import { runIncremental } from "../../src/sync/incremental.ts";
import { connectTestAccount, type Harness, startHarness, syncState } from "./harness.ts";

const EMAIL = "paging@example.com";
let h: Harness;

beforeAll(async () => {
  h = await startHarness({ emulator: { accounts: [EMAIL], messages: 5, seed: 5151, attachments: false } });
});
afterAll(async () => {
  await h?.close();
});

function depsWith(listHistory: (n: number) => HistoryPage): SyncDeps {
  const { app } = h;
  let calls = 0;
  return {
    db: app.db,
    redis: app.redis,
    queues: app.queues,
    pipeline: app.pipeline,
    log: app.log,
    config: app.config,
    gmailFactory: async (account) => {
      const real: GmailPort = await app.gmailFactory(account);
      return { ...real, listHistory: async () => listHistory(++calls) };
    },
  };
}

it("a repeated nextPageToken or an endless run of empty pages fails the run transiently, cursor unmoved", async () => {
  const accountId = await connectTestAccount(h, EMAIL);
  const historyId = (await h.emulator.control.mailbox(EMAIL)).historyId;
  await h.app.db
    .updateTable("sync_state")
    .set({ history_id: historyId, backfill_phase: "done" })
    .where("account_id", "=", accountId)
    .execute();

  const looping = await runIncremental(
    depsWith((n) => ({ history: [], historyId, nextPageToken: n % 2 === 0 ? "A" : "B" })),
    { accountId, reason: "manual" },
  ).catch((e: unknown) => e);
  expect(isGmailError(looping, "transient")).toBe(true);
  expect((looping as Error).message).toMatch(/same nextPageToken/);

  let pages = 0;
  const endless = await runIncremental(
    depsWith((n) => {
      pages = n;
      return { history: [], historyId, nextPageToken: `t${n}` };
    }),
    { accountId, reason: "manual" },
  ).catch((e: unknown) => e);
  expect(isGmailError(endless, "transient")).toBe(true);
  expect(pages).toBe(50);
  expect((await syncState(h, accountId)).history_id).toBe(historyId);
});
