// A backfill run lists with the scope it started with (q, label ids, spam/trash: pinned in
// sync_state), whatever the configuration says later; its end-of-run sweep decides from that
// pinned scope too, so mail outside what the run listed is never taken as deleted. `backfill
// --query` / `--restart` start a new run even while one is listing. Pages run directly, as the
// worker runs them, each with the configuration of the moment (changed between pages).
import { afterAll, beforeAll, expect, it } from "vitest";
import type { BackfillJob } from "../../src/jobs.ts";
import { runBackfillPage } from "../../src/sync/backfill.ts";
import type { SyncDeps } from "../../src/sync/deps.ts";
import { runCli } from "../helpers/cli.ts";
import { connectTestAccount, type Harness, startHarness, syncState } from "./harness.ts";

const LABELS = "labels@example.com";
const QUERY = "query@example.com";
const SCOPED_RESYNC = "scoped-resync@example.com";
const UNSCOPED_RESYNC = "unscoped-resync@example.com";
const SPAM_TRASH = "spam-trash@example.com";
const CLI = "cli@example.com";
let h: Harness;

beforeAll(async () => {
  // Several full listings of 1,400 messages within a minute: Gmail's per-minute user limit is off by name.
  h = await startHarness({
    emulator: {
      accounts: [LABELS, QUERY, SCOPED_RESYNC, UNSCOPED_RESYNC, SPAM_TRASH, CLI],
      messages: 1400,
      seed: 1515,
      attachments: false,
      hostile: false,
      userQuotaUnitsPerMinute: 0,
    },
  });
});
afterAll(async () => {
  await h?.close();
});

type ScopeConfig = Pick<SyncDeps["config"], "BACKFILL_QUERY" | "BACKFILL_LABEL_IDS" | "INCLUDE_SPAM_TRASH">;

/** The deps of a worker whose configuration is the app's with `change` applied. */
function depsWith(change: Partial<ScopeConfig> = {}): SyncDeps {
  const { app } = h;
  return {
    db: app.db,
    redis: app.redis,
    queues: app.queues,
    gmailFactory: app.gmailFactory,
    pipeline: app.pipeline,
    log: app.log,
    config: { ...app.config, ...change },
  };
}

/** Runs the rest of the run in progress, turn by turn (a slice of a page each), with `deps`. */
async function finishRun(deps: SyncDeps, accountId: number, reason: BackfillJob["reason"]): Promise<void> {
  for (let i = 0; i < 100 && (await syncState(h, accountId)).backfill_phase === "listing"; i++)
    await runBackfillPage(deps, { accountId, reason, resumeOnly: true });
  expect((await syncState(h, accountId)).backfill_phase).toBe("done");
}

async function listable(email: string, filter: (labels: string[]) => boolean = () => true): Promise<string[]> {
  const box = await h.emulator.control.mailbox(email);
  return box.messages
    .filter((m) => !m.labelIds.includes("SPAM") && !m.labelIds.includes("TRASH") && filter(m.labelIds))
    .map((m) => m.id);
}

async function liveIds(accountId: number): Promise<Set<string>> {
  const rows = await h.app.db
    .selectFrom("messages")
    .select("gmail_id")
    .where("account_id", "=", accountId)
    .where("deleted_at", "is", null)
    .execute();
  return new Set(rows.map((r) => r.gmail_id));
}

async function softDeletedIds(accountId: number): Promise<string[]> {
  const rows = await h.app.db
    .selectFrom("messages")
    .select("gmail_id")
    .where("account_id", "=", accountId)
    .where("deleted_at", "is not", null)
    .execute();
  return rows.map((r) => r.gmail_id).sort();
}

it("a run started with one label scope keeps listing it after BACKFILL_LABEL_IDS changes mid-run", {
  timeout: 120_000,
}, async () => {
  const accountId = await connectTestAccount(h, LABELS);
  const inbox = await listable(LABELS, (l) => l.includes("INBOX"));
  expect(inbox.length, "the INBOX scope spans two pages or more").toBeGreaterThan(500);
  expect(
    await runBackfillPage(depsWith({ BACKFILL_LABEL_IDS: ["INBOX"] }), { accountId, reason: "connect" }),
  ).toMatchObject({ page: 1, done: false });
  // The configuration now says SENT: the run started on INBOX lists INBOX to its end.
  await finishRun(depsWith({ BACKFILL_LABEL_IDS: ["SENT"] }), accountId, "connect");
  expect(await liveIds(accountId)).toEqual(new Set(inbox));
  const state = await syncState(h, accountId);
  expect(state).toMatchObject({
    backfill_label_ids: ["INBOX"],
    backfill_include_spam_trash: false,
    backfill_query: null,
    backfill_may_sweep: false,
  });
});

it("BACKFILL_QUERY is resolved into the run when it starts: a later change does not reach the run", {
  timeout: 120_000,
}, async () => {
  const accountId = await connectTestAccount(h, QUERY);
  const inbox = await listable(QUERY, (l) => l.includes("INBOX"));
  expect(inbox.length, "the query spans two pages or more").toBeGreaterThan(500);
  await runBackfillPage(depsWith({ BACKFILL_QUERY: "in:inbox" }), { accountId, reason: "connect" });
  expect((await syncState(h, accountId)).backfill_query).toBe("in:inbox");
  await finishRun(depsWith({ BACKFILL_QUERY: "in:sent" }), accountId, "connect");
  expect(await liveIds(accountId)).toEqual(new Set(inbox));
  expect((await syncState(h, accountId)).backfill_query).toBe("in:inbox");
});

it("a resync started scoped never sweeps, even when the configuration becomes unscoped mid-run: mail outside its scope stays", {
  timeout: 150_000,
}, async () => {
  const accountId = await connectTestAccount(h, SCOPED_RESYNC);
  await runBackfillPage(depsWith(), { accountId, reason: "connect" });
  await finishRun(depsWith(), accountId, "connect");
  const all = await listable(SCOPED_RESYNC);
  expect(await liveIds(accountId)).toEqual(new Set(all));

  // A manual re-listing of INBOX only (a resync: the mailbox is held), then the scope is dropped.
  expect(
    await runBackfillPage(depsWith({ BACKFILL_LABEL_IDS: ["INBOX"] }), { accountId, reason: "manual" }),
  ).toMatchObject({ page: 1, done: false });
  expect(await syncState(h, accountId)).toMatchObject({
    resync_reason: "manual",
    backfill_label_ids: ["INBOX"],
    backfill_may_sweep: false,
  });
  await finishRun(depsWith({ BACKFILL_LABEL_IDS: [] }), accountId, "manual");
  // Nothing was deleted in Gmail, and the run listed INBOX only: SENT and the rest are untouched.
  expect(await softDeletedIds(accountId)).toEqual([]);
  expect(await liveIds(accountId)).toEqual(new Set(all));
});

it("a resync started unscoped still sweeps when the configuration becomes scoped mid-run: exactly the mail deleted in Gmail goes", {
  timeout: 150_000,
}, async () => {
  const accountId = await connectTestAccount(h, UNSCOPED_RESYNC);
  await runBackfillPage(depsWith(), { accountId, reason: "connect" });
  await finishRun(depsWith(), accountId, "connect");
  // Deleted in Gmail while we do not look (no history read): only the resync's sweep can notice.
  const before = await listable(UNSCOPED_RESYNC);
  const gone = before.slice(-2);
  for (const id of gone) await h.emulator.control.deleteMessage(UNSCOPED_RESYNC, id);

  expect(await runBackfillPage(depsWith(), { accountId, reason: "manual" })).toMatchObject({ page: 1, done: false });
  expect(await syncState(h, accountId)).toMatchObject({
    resync_reason: "manual",
    backfill_label_ids: [],
    backfill_may_sweep: true,
  });
  await finishRun(depsWith({ BACKFILL_LABEL_IDS: ["INBOX"] }), accountId, "manual");
  expect(await softDeletedIds(accountId)).toEqual([...gone].sort());
  expect(await liveIds(accountId)).toEqual(new Set(await listable(UNSCOPED_RESYNC)));
});

it("the sweep leaves out spam and trash as the run listed them, not as INCLUDE_SPAM_TRASH says at its end", {
  timeout: 150_000,
}, async () => {
  const accountId = await connectTestAccount(h, SPAM_TRASH);
  await runBackfillPage(depsWith(), { accountId, reason: "connect" });
  await finishRun(depsWith(), accountId, "connect");
  // The newest message goes to Trash (and our row knows it): a run without spam and trash does not list it.
  const [newest] = await listable(SPAM_TRASH);
  if (newest === undefined) throw new Error("empty mailbox");
  await h.emulator.control.modifyLabels(SPAM_TRASH, newest, { add: ["TRASH"] });
  await h.app.db
    .updateTable("messages")
    .set((eb) => ({ label_ids: eb.fn<string[]>("array_append", ["label_ids", eb.val("TRASH")]) }))
    .where("account_id", "=", accountId)
    .where("gmail_id", "=", newest)
    .execute();

  await runBackfillPage(depsWith({ INCLUDE_SPAM_TRASH: false }), { accountId, reason: "manual" });
  expect(await syncState(h, accountId)).toMatchObject({ backfill_include_spam_trash: false, backfill_may_sweep: true });
  await finishRun(depsWith({ INCLUDE_SPAM_TRASH: true }), accountId, "manual");
  // Unlisted because the run left Trash out, not because it was deleted.
  expect(await softDeletedIds(accountId)).toEqual([]);
  expect((await liveIds(accountId)).has(newest)).toBe(true);
});

it("`backfill` continues a run in progress; `--query` and `--restart` start a new run even while one is listing", {
  timeout: 120_000,
}, async () => {
  const { app } = h;
  const accountId = await connectTestAccount(h, CLI);
  expect(await runBackfillPage(depsWith(), { accountId, reason: "connect" })).toMatchObject({ page: 1, done: false });
  const first = await syncState(h, accountId);
  const queued = async () =>
    (await app.queues.backfill.getJobs(["waiting", "delayed", "prioritized"])).filter(
      (j) => j.data.accountId === accountId,
    );
  // The page queued its successor, as in production: the run is in progress.
  expect((await queued()).map((j) => j.data)).toEqual([{ accountId, reason: "connect", resumeOnly: true }]);

  const plain = await runCli(["backfill", CLI], h.env);
  expect(plain.code, plain.stderr).toBe(0);
  expect(plain.stdout).toMatch(
    /^backfill of cli@example\.com: continuing the run in progress \(started .*, \d+ page\(s\) listed, no query\); --restart or --query starts a new run$/m,
  );
  expect((await queued()).filter((j) => j.data.restart === true)).toEqual([]);

  /** Runs the one restart job the CLI queued, as the worker would, and returns the run it started. */
  const runRestartJob = async (expected: Partial<BackfillJob>) => {
    const restarts = (await queued()).filter((j) => j.data.restart === true);
    expect(restarts.map((j) => j.data)).toEqual([{ accountId, reason: "manual", restart: true, ...expected }]);
    const job = restarts[0];
    if (job === undefined) throw new Error("no restart job");
    await job.remove();
    expect(await runBackfillPage(depsWith(), job.data)).toMatchObject({ page: 1 });
    return syncState(h, accountId);
  };

  const withQuery = await runCli(["backfill", CLI, "--query", "in:inbox"], h.env);
  expect(withQuery.code, withQuery.stderr).toBe(0);
  expect(withQuery.stdout).toMatch(
    /^backfill of cli@example\.com: restart queued: a new run \(query "in:inbox"\) replaces the run in progress/m,
  );
  const second = await runRestartJob({ query: "in:inbox" });
  expect(second.backfill_started_at?.getTime()).toBeGreaterThan(first.backfill_started_at?.getTime() ?? Infinity);
  expect(second).toMatchObject({ backfill_phase: "listing", backfill_query: "in:inbox" });

  const restart = await runCli(["backfill", CLI, "--restart"], h.env);
  expect(restart.code, restart.stderr).toBe(0);
  expect(restart.stdout).toMatch(
    /restart queued: a new run \(the configured scope\) replaces the run in progress \(.*query "in:inbox"\)/,
  );
  const third = await runRestartJob({});
  expect(third.backfill_started_at?.getTime()).toBeGreaterThan(second.backfill_started_at?.getTime() ?? Infinity);
  // A restart without --query takes the configured scope (here none), not the previous run's.
  expect(third).toMatchObject({ backfill_phase: "listing", backfill_query: null, backfill_label_ids: [] });
});
