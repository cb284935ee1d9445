// After a small real sync — backfill through the queues, a watch, pushes signed by the emulator
// delivered to our push route, an expired-history resync — /metrics shows non-zero samples for the
// seed's five names and the API, quota, queue, job, attachment, push and watch families; every
// metric the dashboard and the alerts name is exported; promtool's lint still passes.
import type { FastifyInstance } from "fastify";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { DEFAULT_PUSH_SERVICE_ACCOUNT } from "@gmail-sync/emulator";
import { buildHttpServer, listen } from "../../src/http.ts";
import { createLogger } from "../../src/log.ts";
import { createPushAuthenticator } from "../../src/pubsub.ts";
import { registerPushRoute } from "../../src/push-route.ts";
import { renewWatch } from "../../src/watch.ts";
import type { RunningWorkers } from "../../src/worker.ts";
import {
  backfillDone,
  connectTestAccount,
  expectDbEqualsMailbox,
  type Harness,
  queuesIdle,
  startHarness,
  syncState,
  waitFor,
} from "../sync/harness.ts";
import { parseExposition, type Sample, sampleSum, sampleValue } from "./exposition.ts";
import { alertQueries, dashboardQueries, parsePromql, substituteGrafanaMacros } from "./promql.ts";
import { freePort, hasBinary, promtoolLint, skipNotice } from "./tools.ts";

const EMAIL = "alice@example.com";
const t0 = Date.now();
// OBS_DEBUG=1 prints how long each stage of the run took.
const step = (what: string) => {
  if (process.env.OBS_DEBUG) console.log(`${Date.now() - t0} ms: ${what}`);
};
let h: Harness;
let server: FastifyInstance;
let base: string;
let workers: RunningWorkers;
let accountId: number;

async function scrape(): Promise<{ text: string; samples: Sample[] }> {
  const res = await fetch(`${base}/metrics`);
  expect(res.status).toBe(200);
  const text = await res.text();
  return { text, samples: parseExposition(text) };
}

/** Waits until the database has caught up with the mailbox's history id and the queues are idle. */
async function caughtUp(): Promise<void> {
  const target = BigInt((await h.emulator.control.mailbox(EMAIL)).historyId);
  await waitFor(
    "cursor to reach the mailbox",
    async () => {
      const s = await syncState(h, accountId);
      return s.history_id !== null && BigInt(s.history_id) >= target && (await queuesIdle(h));
    },
    60_000,
  );
}

beforeAll(async () => {
  const port = await freePort();
  const pushUrl = `http://127.0.0.1:${port}/pubsub/push`;
  h = await startHarness({
    emulator: { accounts: [EMAIL], messages: 40, seed: 11, pushEndpoint: pushUrl },
    env: {
      HTTP_HOST: "127.0.0.1",
      HTTP_PORT: String(port),
      INTERNAL_HTTP_PORT: "0",
      PUBSUB_TOPIC: "projects/gmail-sync-test/topics/gmail",
      PUBSUB_AUDIENCE: pushUrl,
      PUBSUB_SERVICE_ACCOUNT: DEFAULT_PUSH_SERVICE_ACCOUNT,
      // Small enough that some attachments take the temp-file route and get cleaned up.
      ATTACHMENT_MEMORY_MAX_BYTES: "4096",
      EXTRACT_TIMEOUT_MS: "3000",
      // The generated mailbox has mail in SPAM; list it so the database can equal the mailbox.
      INCLUDE_SPAM_TRASH: "true",
    },
  });
  const { config } = h.app;
  const log = createLogger("silent");
  server = buildHttpServer({ config, log, db: h.app.db, redis: h.app.redis, queues: h.app.queues, metricsReuseMs: 0 });
  registerPushRoute(server, {
    db: h.app.db,
    redis: h.app.redis,
    log,
    keyPrefix: config.QUEUE_PREFIX,
    authenticate: createPushAuthenticator({
      certsUrl: config.GOOGLE_CERTS_URL,
      audience: config.PUBSUB_AUDIENCE,
      serviceAccount: config.PUBSUB_SERVICE_ACCOUNT,
      verificationToken: undefined,
    }),
    enqueueIncremental: (id, opts) => h.app.enqueueIncremental(id, opts),
  });
  base = await listen(server, config, "public"); // one server with both, on the port the emulator pushes to
  workers = h.app.startWorkers({ maintenance: false });
}, 120_000);

afterAll(async () => {
  await workers?.close();
  await server?.close();
  await h?.close();
});

describe("metrics after a small sync", () => {
  it("runs the sync: backfill, watch, pushes, an expired-history resync", async () => {
    accountId = await connectTestAccount(h, EMAIL);
    await h.app.enqueueBackfill(accountId, { reason: "connect" });
    step("backfill enqueued");
    await waitFor("backfill to finish", () => backfillDone(h, accountId), 90_000);
    await waitFor("queues to drain", () => queuesIdle(h), 30_000);

    step("backfill done");
    const watch = await renewWatch(
      { db: h.app.db, config: h.app.config, log: createLogger("silent"), gmailFactory: h.app.gmailFactory },
      accountId,
    );
    expect(watch).toBe("renewed");

    // New mail: the emulator pushes a signed notification to our route, which enqueues the sync.
    for (let i = 0; i < 3; i++) await h.emulator.control.deliver(EMAIL);
    await waitFor(
      "a push to be accepted",
      async () => {
        const s = (await scrape()).samples;
        return s.some(
          (x) => x.name === "gmail_sync_push_requests_total" && x.labels.outcome === "accepted" && x.value > 0,
        );
      },
      30_000,
      200,
    );
    step("push accepted");
    await caughtUp();
    step("caught up");

    // History older than the cursor expires: the next incremental sync gets Gmail's 404 and resyncs.
    await h.emulator.control.updateSettings({ pushEndpoint: null });
    await h.emulator.control.deliver(EMAIL);
    await h.emulator.control.expireHistory(EMAIL);
    await h.emulator.control.deliver(EMAIL);
    await h.app.enqueueIncremental(accountId, { reason: "manual" });
    await waitFor(
      "the expired-history error",
      async () =>
        (await scrape()).samples.some(
          (x) => x.name === "gmail_sync_errors_total" && x.labels.error_type === "history_expired" && x.value > 0,
        ),
      30_000,
      200,
    );
    step("history_expired seen");
    // The resync resets the cursor to a fresh pin at once, so "caught up" is not enough: wait for
    // the database to equal the mailbox again.
    await waitFor(
      "the resync to finish",
      async () => {
        if (!(await backfillDone(h, accountId)) || !(await queuesIdle(h))) return false;
        try {
          await expectDbEqualsMailbox(h, accountId, EMAIL);
          return true;
        } catch {
          return false;
        }
      },
      60_000,
      250,
    );
  }, 180_000);

  it("shows non-zero samples for the seed's five names (the orphan gauge stays 0) and every family the run exercised", async () => {
    const { samples: s } = await scrape();
    const positive = (name: string, labels: Record<string, string> = {}) => {
      const matching = s.filter((x) => x.name === name && Object.entries(labels).every(([k, v]) => x.labels[k] === v));
      return matching.reduce((a, x) => a + x.value, 0);
    };
    // The seed's five.
    expect(positive("gmail_sync_messages_total", { direction: "backfill" })).toBeGreaterThan(0);
    expect(positive("gmail_sync_messages_total", { direction: "incremental" })).toBeGreaterThan(0);
    expect(positive("gmail_sync_errors_total")).toBeGreaterThan(0);
    expect(positive("gmail_attachment_processing_seconds_count")).toBeGreaterThan(0);
    expect(positive("temp_file_cleanup_total", { outcome: "deleted" })).toBeGreaterThan(0);
    expect(sampleValue(s, "orphaned_temp_files_gauge")).toBe(0);
    // Gmail API and quota.
    expect(positive("gmail_api_requests_total")).toBeGreaterThan(0);
    expect(positive("gmail_api_requests_total", { code: "2xx" })).toBeGreaterThan(0);
    expect(positive("gmail_api_request_duration_seconds_count")).toBeGreaterThan(0);
    expect(positive("gmail_api_quota_units_total")).toBeGreaterThan(0);
    expect(sampleValue(s, "gmail_sync_quota_limit_units_per_second", { scope: "user" })).toBe(1_000_000);
    // Queues and jobs.
    expect(
      positive("gmail_sync_job_duration_seconds_count", { queue: "backfill", outcome: "completed" }),
    ).toBeGreaterThan(0);
    expect(
      positive("gmail_sync_job_duration_seconds_count", { queue: "incremental", outcome: "completed" }),
    ).toBeGreaterThan(0);
    expect(positive("gmail_sync_job_wait_seconds_count")).toBeGreaterThan(0);
    expect(s.filter((x) => x.name === "gmail_sync_queue_jobs").length).toBeGreaterThanOrEqual(3 * 7);
    expect(positive("gmail_sync_queue_jobs", { queue: "backfill", state: "completed" })).toBeGreaterThan(0);
    // Attachments.
    expect(positive("gmail_attachments_total")).toBeGreaterThan(0);
    expect(positive("gmail_attachments_total", { route: "temp_file" })).toBeGreaterThan(0);
    expect(positive("gmail_attachment_downloaded_bytes_total")).toBeGreaterThan(0);
    expect(positive("gmail_attachment_extracted_bytes_total")).toBeGreaterThan(0);
    // Push and watch.
    expect(positive("gmail_sync_push_requests_total", { outcome: "accepted" })).toBeGreaterThan(0);
    expect(positive("gmail_sync_push_to_commit_seconds_count")).toBeGreaterThan(0);
    expect(positive("gmail_sync_watch_renewals_total", { outcome: "ok" })).toBeGreaterThan(0);
    expect(sampleValue(s, "gmail_sync_watch_expiry_soonest_seconds")).toBeGreaterThan(6 * 86400);
    expect(sampleValue(s, "gmail_sync_accounts_watched")).toBe(1);
    // Sync state.
    expect(positive("gmail_sync_message_changes_total")).toBeGreaterThan(0);
    expect(positive("gmail_sync_full_resyncs_total", { reason: "history_expired" })).toBeGreaterThan(0);
    expect(sampleValue(s, "gmail_sync_accounts", { status: "active" })).toBe(1);
    expect(sampleValue(s, "gmail_sync_backfill_messages", { stage: "stored" })).toBeGreaterThan(0);
    expect(sampleValue(s, "gmail_sync_cursor_age_max_seconds")).toBeLessThan(120);
    expect(sampleValue(s, "gmail_sync_accounts_by_cursor_age", { age: "lt_5m" })).toBe(1);
    expect(sampleValue(s, "gmail_sync_accounts_stale")).toBe(0);
    expect(sampleSum(s, "gmail_sync_metrics_collect_errors_total")).toBe(0);
    // The change feed: a head past the oldest kept change (nothing pruned yet).
    expect(sampleValue(s, "gmail_sync_change_feed_oldest_seq")).toBeGreaterThan(0);
    expect(sampleValue(s, "gmail_sync_change_feed_head_seq")).toBeGreaterThan(
      sampleValue(s, "gmail_sync_change_feed_oldest_seq"),
    );
  });

  it("exports every metric the dashboard and the alerts name, and passes promtool's lint", async (ctx) => {
    const { text } = await scrape();
    const families = new Set([...text.matchAll(/^# TYPE (\S+) (\w+)$/gm)].map((m) => m[1] as string));
    const missing = new Set<string>();
    for (const q of [...dashboardQueries(), ...alertQueries()]) {
      for (const name of parsePromql(substituteGrafanaMacros(q.expr)).metricNames) {
        if (name === "up") continue; // made by Prometheus
        if (!families.has(name) && !families.has(name.replace(/_(bucket|sum|count)$/, ""))) missing.add(name);
      }
    }
    expect([...missing]).toEqual([]);
    if (!hasBinary("promtool")) {
      skipNotice("promtool", "prometheus");
      ctx.skip();
    }
    expect(promtoolLint(text).problems).toEqual([]);
  });
});
