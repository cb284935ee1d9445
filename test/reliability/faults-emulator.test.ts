// Reliability under a misbehaving Gmail: 10% of Gmail requests answered 500/503 backendError or
// with a dropped connection for the whole run, a window of 2 s latency on every request, a 429
// burst (the emulator's per-user quota dropped far below ours for a moment; then the same answered
// with the legacy 403 userRateLimitExceeded), and the history
// expired while the account has unsynced changes (→ a reconciling resync). Mail is delivered,
// deleted and relabelled throughout. The run must converge: the database equals the mailbox, no
// dead letter (every fault here is transient), no failed or stuck job, no temp file left.
import { readdir } from "node:fs/promises";
import { afterAll, beforeAll, expect, it } from "vitest";
import {
  connectTestAccount,
  expectDbEqualsMailbox,
  type Harness,
  queuesIdle,
  startHarness,
  syncState,
  syncToMailbox,
  waitFor,
} from "../sync/harness.ts";

const EMAIL = "faulty@example.com";
let h: Harness;

beforeAll(async () => {
  h = await startHarness({
    emulator: { accounts: [EMAIL], messages: 120, seed: 4242, attachments: true, faultRate: 0.1 },
    env: { INCLUDE_SPAM_TRASH: "true" },
  });
  h.app.startWorkers({ maintenance: false });
});
afterAll(async () => {
  await h?.close();
});

function faultCounts(stats: { requests: Record<string, Record<string, number>> }): {
  errors5xx: number;
  dropped: number;
  rateLimited: number;
  forbidden: number;
} {
  let errors5xx = 0;
  let forbidden = 0;
  let dropped = 0;
  let rateLimited = 0;
  for (const [method, byStatus] of Object.entries(stats.requests)) {
    if (
      method.startsWith("oauth") ||
      method.startsWith("POST /emulator") ||
      method.startsWith("GET /emulator") ||
      method.startsWith("PUT /emulator")
    )
      continue;
    for (const [status, n] of Object.entries(byStatus)) {
      if (status === "500" || status === "503") errors5xx += n;
      if (status === "dropped") dropped += n;
      if (status === "429") rateLimited += n;
      if (status === "403") forbidden += n;
    }
  }
  return { errors5xx, dropped, rateLimited, forbidden };
}

// Dropped connections are injected only on plain requests (not inside an HTTP batch, where
// messages.get goes): 30 messages with 10 small image attachments each make ~300
// messages.attachments.get calls, enough for a 2% chance per call (10% faults, one kind in five)
// to hit several times. The images are declared application/octet-stream, so they are downloaded
// (an image/png part is skipped before download) and then skipped as unsupported_type by their bytes.
async function deliverManyAttachments(): Promise<void> {
  const CRLF = "\r\n";
  const pngMagic = Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  for (let m = 0; m < 30; m++) {
    const boundary = `many-${m}`;
    const lines = [
      "From: Camera <cam@example.net>",
      `To: ${EMAIL}`,
      `Subject: photos ${m}`,
      `Message-ID: <photos-${m}@example.net>`,
      "MIME-Version: 1.0",
      `Content-Type: multipart/mixed; boundary="${boundary}"`,
      "",
    ];
    lines.push(`--${boundary}`, "Content-Type: text/plain", "", `Photos batch ${m}.`);
    for (let a = 0; a < 10; a++) {
      const bytes = Buffer.concat([pngMagic, Buffer.from(`image ${m}.${a} `.repeat(20))]);
      lines.push(
        `--${boundary}`,
        "Content-Type: application/octet-stream",
        `Content-Disposition: attachment; filename="img-${m}-${a}.png"`,
        "Content-Transfer-Encoding: base64",
        "",
        bytes.toString("base64"),
      );
    }
    lines.push(`--${boundary}--`, "");
    await h.emulator.control.deliver(EMAIL, {
      raw: Buffer.from(lines.join(CRLF)).toString("base64url"),
      internalDate: Date.now() - (m + 1) * 3_600_000,
    });
  }
}

async function mutate(n: number): Promise<void> {
  const box = await h.emulator.control.mailbox(EMAIL);
  for (let i = 0; i < n; i++) await h.emulator.control.deliver(EMAIL, { attachments: i % 2 === 0 });
  for (const m of box.messages.slice(3 * n, 3 * n + 2)) await h.emulator.control.deleteMessage(EMAIL, m.id);
  for (const m of box.messages.slice(5 * n, 5 * n + 3))
    await h.emulator.control.modifyLabels(EMAIL, m.id, { add: ["STARRED"], remove: ["UNREAD", "INBOX"] });
}

it("10% faults, a 2 s latency window, a 429 burst and an expired history: converges with nothing lost", {
  timeout: 100_000,
}, async () => {
  await deliverManyAttachments();
  const accountId = await connectTestAccount(h, EMAIL);
  await h.app.enqueueBackfill(accountId, { reason: "connect" });
  await waitFor(
    "first backfill page",
    async () =>
      (await syncState(h, accountId)).backfill_pages >= 1 || (await syncState(h, accountId)).backfill_phase === "done",
    40_000,
    50,
  );

  // Changes during the backfill, then a 2 s latency window on every Gmail request.
  await mutate(2);
  await h.emulator.control.updateSettings({ latencyMs: 2000 });
  await h.app.enqueueIncremental(accountId, { reason: "push", pushReceivedAt: Date.now() });
  await new Promise((r) => setTimeout(r, 2500));
  await h.emulator.control.updateSettings({ latencyMs: 0 });

  // A 429 burst: the emulator's quota far below what the worker assumes, for a moment.
  await mutate(3);
  await h.emulator.control.updateSettings({ quotaUnitsPerSecond: 15 });
  await h.app.enqueueIncremental(accountId, { reason: "push", pushReceivedAt: Date.now() });
  await waitFor(
    "a 429 from the emulator",
    async () => faultCounts(await h.emulator.control.stats()).rateLimited > 0,
    20_000,
    50,
  );
  await new Promise((r) => setTimeout(r, 1000));
  // Refusals without a retry time park the account's jobs with a growing backoff; let the quota
  // recover until a job completes (which resets it) before the next burst.
  await h.emulator.control.updateSettings({ quotaUnitsPerSecond: 0 });
  await waitFor(
    "a job to complete after the burst",
    async () => (await syncState(h, accountId)).throttled_until === null,
    40_000,
    100,
  );
  // The same with Gmail's legacy answer: 403 userRateLimitExceeded is a rate limit, not a refusal.
  // (The first burst got Gmail's usual mixed forms; the legacy 403 is its own form by name.) A
  // bucket of 5 units refuses the second request of any sync (history.list 2 + messages.get 5),
  // whether or not the backfill is still running to use it up.
  await h.emulator.control.updateSettings({
    quotaUnitsPerSecond: 5,
    quotaErrorForms: "retry-after",
    quotaErrorStatus: 403,
  });
  await mutate(1);
  await h.app.enqueueIncremental(accountId, { reason: "push", pushReceivedAt: Date.now() });
  await waitFor(
    "a 403 rate limit from the emulator",
    async () => faultCounts(await h.emulator.control.stats()).forbidden > 0,
    20_000,
    50,
  );
  await h.emulator.control.updateSettings({ quotaUnitsPerSecond: 0, quotaErrorForms: "gmail", quotaErrorStatus: 429 });

  await waitFor(
    "backfill to finish",
    async () => (await syncState(h, accountId)).backfill_phase === "done",
    60_000,
    100,
  );
  await waitFor("queues to drain", () => queuesIdle(h), 40_000);

  // History expiry with unsynced changes: deletions made now are only found by the resync's sweep.
  await mutate(4);
  await h.emulator.control.expireHistory(EMAIL);
  const resyncsBefore = (await syncState(h, accountId)).backfill_started_at;
  await syncToMailbox(h, accountId, EMAIL);
  await waitFor(
    "resync to finish",
    async () => (await syncState(h, accountId)).backfill_phase === "done" && (await queuesIdle(h)),
    60_000,
  );
  await syncToMailbox(h, accountId, EMAIL);
  expect((await syncState(h, accountId)).backfill_started_at).not.toEqual(resyncsBefore);

  const faults = faultCounts(await h.emulator.control.stats());
  console.log(`faults: ${JSON.stringify(faults)}`);
  expect(faults.errors5xx, "the emulator injected 5xx").toBeGreaterThan(0);
  expect(faults.dropped, "the emulator dropped connections").toBeGreaterThan(0);
  expect(faults.rateLimited, "the emulator answered 429").toBeGreaterThan(0);

  await expectConverged(accountId);
});

async function expectConverged(accountId: number): Promise<void> {
  const counts = await expectDbEqualsMailbox(h, accountId, EMAIL);
  expect(counts.messages).toBeGreaterThan(140);
  expect(counts.attachments).toBeGreaterThan(250);
  // Transient faults never park a message.
  const dead = await h.app.db
    .selectFrom("dead_letters")
    .select(["gmail_id", "reason", "detail", "parked_at", "resolved_at"])
    .where("account_id", "=", accountId)
    .execute();
  expect(dead.filter((d) => d.resolved_at === null)).toEqual([]);
  // Every job finished: none failed, none stuck active/waiting/delayed.
  for (const q of [h.app.queues.backfill, h.app.queues.incremental]) {
    const c = await q.getJobCounts("failed", "active", "waiting", "delayed", "prioritized", "waiting-children");
    expect(c, q.name).toEqual({ failed: 0, active: 0, waiting: 0, delayed: 0, prioritized: 0, "waiting-children": 0 });
  }
  const s = await syncState(h, accountId);
  expect(s.last_error).toBeNull();
  // Attachment rows: one per part, none left half-processed.
  const rows = await h.app.db
    .selectFrom("attachments")
    .innerJoin("messages", "messages.id", "attachments.message_id")
    .select(["attachments.checksum", "attachments.skipped_reason"])
    .where("messages.account_id", "=", accountId)
    .execute();
  expect(rows.every((r) => r.checksum !== null || r.skipped_reason !== null)).toBe(true);
  const left = await readdir(h.app.config.ATTACHMENT_TEMP_DIR).catch((): string[] => []);
  expect(left).toEqual([]);
}
