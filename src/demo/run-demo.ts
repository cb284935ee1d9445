// `gmail-sync demo`: the whole product in one command, against the bundled emulator. Migrates,
// starts the emulator with generated mailboxes, connects the accounts through the real OAuth2 flow
// (consent → callback → code exchange → encrypted token), backfills with the worker and the HTTP
// server in this process, then changes the mailboxes (deliveries, deletions, relabels) and lets the
// emulator's signed Pub/Sub pushes drive the incremental syncs. Ends with the database compared to
// the mailbox.
import { randomBytes } from "node:crypto";
import { readdir } from "node:fs/promises";
import MailComposer from "nodemailer/lib/mail-composer/index.js";
import { type App, createApp, createStoreApp } from "../app.ts";
import { type Config, loadConfig } from "../config.ts";
import { deleteAccountsByEmail, findAccountIdsByEmail } from "../db/accounts.ts";
import {
  accountAttachmentAndLedgerCounts,
  attachmentRouteCounts,
  backfillProgress,
  countAttachmentsMatching,
  messagesCreatedAt,
} from "../db/demo-queries.ts";
import { ensureDatabase, migrateToLatest } from "../db/migrate.ts";
import { startEmulator, type Emulator } from "@gmail-sync/emulator";
import { emulatorEnv } from "./emulator-env.ts";
import type { Logger } from "../log.ts";
import { upsertSchedules } from "../schedules.ts";
import { type RunningServer, startServer } from "../server.ts";
import { freePort } from "../http.ts";
import { compareWithMailbox, type MailboxComparison } from "./compare.ts";
import { connectThroughConsent } from "./consent.ts";
import { createProgressView } from "./progress.ts";

export interface DemoOptions {
  messages: number;
  keepRunning: boolean;
  seed: number;
  tty: boolean;
  /** Where progress and human-readable lines go (stdout, or stderr under --json). */
  say: (line: string) => void;
  log: Logger;
}

export interface DemoSummary {
  accounts: Array<{ email: string } & MailboxComparison & { attachments: number; deadLetters: number }>;
  attachments: { memory: number; temp_file: number; skipped: number };
  skippedReasons: Record<string, number>;
  tempFilesLeft: number;
  quotaUnits: number;
  quotaUnitsPerSecond: number;
  messagesPerSecond: number;
  backfillSeconds: number;
  pushToStoredMs: { p50: number | null; p99: number | null; samples: number };
  metricsUrl: string;
  searchExample: { query: string; hits: number };
  match: boolean;
}

const ACCOUNTS = ["alice@example.com", "bob@example.com"];

async function until<T>(
  what: string,
  fn: () => Promise<T | undefined | false>,
  timeoutMs: number,
  everyMs = 100,
): Promise<T> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    const v = await fn();
    if (v !== undefined && v !== false) return v;
    if (Date.now() > end)
      throw new Error(`demo: timed out after ${Math.round(timeoutMs / 1000)} s waiting for ${what}`);
    await new Promise((r) => setTimeout(r, everyMs));
  }
}

/** A message whose attachment size picks a route the generated mailbox lacks. */
async function bigAttachmentMessage(to: string, megabytes: number): Promise<Buffer> {
  const row = "2026-01-01,demo,large export row with some searchable words: heliotrope quartz,12345\n";
  const content = Buffer.from(row.repeat(Math.ceil((megabytes * 1024 * 1024) / row.length)));
  const mail = new MailComposer({
    from: "Exports <exports@example.net>",
    to,
    subject: `Your ${megabytes} MB export`,
    text: `The ${megabytes} MB export you asked for is attached.`,
    attachments: [{ filename: `export-${megabytes}mb.csv`, content, contentType: "text/csv" }],
  });
  return mail.compile().build();
}

function percentile(sorted: number[], p: number): number | null {
  if (sorted.length === 0) return null;
  return sorted[Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1)] ?? null;
}

async function countFiles(dir: string): Promise<number> {
  try {
    const entries = await readdir(dir, { recursive: true, withFileTypes: true });
    return entries.filter((e) => e.isFile()).length;
  } catch (err) {
    if ((err as { code?: string }).code === "ENOENT") return 0;
    throw err;
  }
}

export interface DemoRun {
  summary: DemoSummary;
  /** Resolves once everything is closed (immediately unless keepRunning; then on SIGINT/SIGTERM). */
  done: Promise<void>;
}

export async function runDemo(opts: DemoOptions, env: NodeJS.ProcessEnv = process.env): Promise<DemoRun> {
  const base = loadConfig(env);
  const { say, log } = opts;

  // 1. The database, created if missing and migrated, as `gmail-sync migrate` would.
  await ensureDatabase(base.DATABASE_URL);
  const migrator = createStoreApp(base, { log, poolSize: 1 });
  try {
    await migrateToLatest(migrator.db);
    // The demo's mailboxes are regenerated each run: forget the previous run's copies of them.
    await deleteAccountsByEmail(migrator.db, ACCOUNTS);
  } finally {
    await migrator.close();
  }

  // 2. The emulator with Gmail's behaviour as it is (per-minute quota, concurrency cap, legacy
  // charsets, forwarded messages, drafts, thread-wide history, post-push 404s…), pushing to our server.
  const port = await freePort(base.HTTP_PORT);
  const internalPort = await freePort(base.INTERNAL_HTTP_PORT === port ? 0 : base.INTERNAL_HTTP_PORT);
  const serverUrl = `http://127.0.0.1:${port}`;
  const pushUrl = `${serverUrl}/pubsub/push`;
  const emu: Emulator = await startEmulator({
    accounts: ACCOUNTS,
    messages: opts.messages,
    seed: opts.seed,
    pushEndpoint: pushUrl,
    pushAudience: pushUrl,
  });
  say(
    `emulator: ${emu.url} (${ACCOUNTS.length} mailboxes of ${opts.messages} messages, Gmail's quota: 15,000 units/min per user, 10 requests in flight)`,
  );

  // 3. The service, configured as a user would configure it for Google, but pointing at the emulator.
  const config: Config = loadConfig({
    ...env,
    HTTP_HOST: "127.0.0.1",
    HTTP_PORT: String(port),
    INTERNAL_HTTP_PORT: String(internalPort),
    QUEUE_PREFIX: `{gmail-sync-demo-${randomBytes(3).toString("hex")}}`,
    TOKEN_ENCRYPTION_KEY: env.TOKEN_ENCRYPTION_KEY ?? randomBytes(32).toString("base64"),
    ...emulatorEnv(emu, serverUrl),
    LOG_LEVEL: env.LOG_LEVEL ?? "warn",
  });
  const app: App = createApp(config, { log });
  let server: RunningServer | undefined;
  const shutdown = async () => {
    await server?.close({ deadlineMs: 10_000 }).catch(() => {});
    await app.queues.backfill.obliterate({ force: true }).catch(() => {});
    await app.queues.incremental.obliterate({ force: true }).catch(() => {});
    await app.queues.maintenance.obliterate({ force: true }).catch(() => {});
    await app.close();
    await emu.close();
  };

  try {
    await upsertSchedules(app.queues.maintenance, config);
    server = await startServer(app, { worker: true });
    say(`server: ${server.url} (metrics at ${server.internalUrl}/metrics)`);

    // 4. Connect both accounts through the consent flow; each connection enqueues a backfill + watch.
    const totals = new Map<string, number>();
    for (const email of ACCOUNTS) {
      const inScope = (await emu.control.mailbox(email)).messages.filter(
        (m) => config.INCLUDE_SPAM_TRASH || !m.labelIds.some((l) => l === "SPAM" || l === "TRASH"),
      );
      totals.set(email, inScope.length);
      await connectThroughConsent(app, serverUrl, email);
    }
    const ids = new Map<string, number>();
    for (const row of await findAccountIdsByEmail(app.db, ACCOUNTS)) ids.set(row.email, row.id);
    say(`connected ${ACCOUNTS.join(", ")} through OAuth2 consent; refresh tokens stored encrypted`);

    // 5. Backfill, with live progress.
    const backfillStarted = Date.now();
    const progress = createProgressView({ tty: opts.tty, write: say });
    const quotaSpent = async () => Object.values((await emu.control.stats()).quotaUnits).reduce((a, b) => a + b, 0);
    let lastUnits = await quotaSpent();
    let lastAt = Date.now();
    let rate = 0;
    try {
      await until(
        "the backfill",
        async () => {
          const rows = await backfillProgress(app.db, ACCOUNTS);
          // Gmail's quota is a moving average with one second of burst: show it over ≥ 2 s windows.
          const now = Date.now();
          if (now - lastAt >= 2000) {
            const units = await quotaSpent();
            rate = ((units - lastUnits) * 1000) / (now - lastAt);
            lastUnits = units;
            lastAt = now;
          }
          progress.update({
            accounts: ACCOUNTS.map((email) => {
              const r = rows.find((x) => x.email === email);
              return { email, stored: r?.stored ?? 0, total: totals.get(email) ?? 0, attachments: r?.attachments ?? 0 };
            }),
            quotaUnitsPerSecond: rate,
          });
          return (
            rows.length === ACCOUNTS.length &&
            rows.every((r) => r.backfill_phase === "done" && r.stored >= (totals.get(r.email) ?? 0))
          );
        },
        15 * 60_000,
        500,
      );
    } finally {
      progress.stop();
    }
    const backfillSeconds = (Date.now() - backfillStarted) / 1000;
    const backfillStored = [...totals.values()].reduce((a, b) => a + b, 0);
    say(
      `backfill done: ${backfillStored} messages in ${backfillSeconds.toFixed(1)} s (${(backfillStored / backfillSeconds).toFixed(1)} messages/s)`,
    );

    // 6. Change the mailboxes; only the emulator's Pub/Sub pushes tell the service about it.
    const delivered: Array<{ email: string; id: string; at: number; big?: boolean }> = [];
    for (const email of ACCOUNTS) {
      const snapshot = await emu.control.mailbox(email);
      for (const m of snapshot.messages.slice(0, 3)) await emu.control.deleteMessage(email, m.id);
      for (const m of snapshot.messages.slice(3, 6))
        await emu.control.modifyLabels(email, m.id, { add: ["STARRED"], remove: ["UNREAD"] });
    }
    const big = [
      await bigAttachmentMessage(ACCOUNTS[0] as string, 12),
      await bigAttachmentMessage(ACCOUNTS[0] as string, 60),
    ];
    for (const raw of big) {
      const at = Date.now();
      delivered.push({
        email: ACCOUNTS[0] as string,
        id: (await emu.control.deliver(ACCOUNTS[0] as string, { raw, labelIds: ["INBOX", "UNREAD"] })).id,
        at,
        big: true,
      });
    }
    // Deliveries spaced past Gmail's one-notification-per-second-per-user, so each is its own push.
    for (let i = 0; i < 5; i++) {
      for (const email of ACCOUNTS) {
        const at = Date.now();
        delivered.push({ email, id: (await emu.control.deliver(email, {})).id, at });
      }
      await new Promise((r) => setTimeout(r, 1100));
    }
    say(
      `changed the mailboxes: ${delivered.length} deliveries (a 12 MB and a 60 MB attachment among them), ${3 * ACCOUNTS.length} deletions, ${3 * ACCOUNTS.length} relabels; waiting for the pushes`,
    );

    await until(
      "the incremental syncs to make the database equal to the mailboxes",
      async () => {
        const out = [];
        for (const email of ACCOUNTS)
          out.push({
            email,
            ...(await compareWithMailbox(app.db, ids.get(email) as number, await emu.control.mailbox(email), {
              includeSpamTrash: config.INCLUDE_SPAM_TRASH,
            })),
          });
        return out.every((c) => c.match) ? out : undefined;
      },
      90_000,
      250,
    ).catch((err: Error) => {
      say(err.message);
      return undefined;
    });
    // The verdict, bodies included (rendering every body is too dear for the polling above).
    const comparisons = [];
    for (const email of ACCOUNTS)
      comparisons.push({
        email,
        ...(await compareWithMailbox(
          app.db,
          ids.get(email) as number,
          await emu.control.mailbox(email, { bodies: true }),
          { includeSpamTrash: config.INCLUDE_SPAM_TRASH },
        )),
      });

    // 7. The summary. Latency is over the ordinary deliveries: the two big ones are there to show
    // the temp-file and too-large routes, and the 12 MB extraction would dominate the tail.
    const small = delivered.filter((d) => d.big !== true);
    const latencies = (
      await messagesCreatedAt(
        app.db,
        small.map((d) => d.id),
      )
    )
      .map((r) => r.created_at.getTime() - (small.find((d) => d.id === r.gmail_id)?.at ?? r.created_at.getTime()))
      .sort((a, b) => a - b);
    const routes = await attachmentRouteCounts(app.db, [...ids.values()]);
    const attachments = { memory: 0, temp_file: 0, skipped: 0 };
    const skippedReasons: Record<string, number> = {};
    for (const r of routes) {
      if (r.route === "memory" || r.route === "temp_file" || r.route === "skipped") attachments[r.route] += r.n;
      if (r.skipped_reason !== null) skippedReasons[r.skipped_reason] = (skippedReasons[r.skipped_reason] ?? 0) + r.n;
    }
    const perAccount = [];
    for (const c of comparisons) {
      const id = ids.get(c.email) as number;
      const counts = await accountAttachmentAndLedgerCounts(app.db, id);
      perAccount.push({ ...c, attachments: counts.attachments, deadLetters: counts.dead_letters });
    }
    const searchQuery = "heliotrope";
    const searchHits = await countAttachmentsMatching(app.db, searchQuery);
    const quotaUnits = await quotaSpent();
    const summary: DemoSummary = {
      accounts: perAccount,
      attachments,
      skippedReasons,
      tempFilesLeft: await countFiles(config.ATTACHMENT_TEMP_DIR),
      quotaUnits,
      quotaUnitsPerSecond: Math.round(quotaUnits / Math.max(1, (Date.now() - backfillStarted) / 1000)),
      messagesPerSecond: Math.round((backfillStored / backfillSeconds) * 10) / 10,
      backfillSeconds: Math.round(backfillSeconds * 10) / 10,
      pushToStoredMs: { p50: percentile(latencies, 50), p99: percentile(latencies, 99), samples: latencies.length },
      metricsUrl: `${server.internalUrl}/metrics`,
      searchExample: { query: searchQuery, hits: searchHits },
      match: perAccount.every((a) => a.match),
    };

    if (!opts.keepRunning) {
      await shutdown();
      return { summary, done: Promise.resolve() };
    }
    const done = new Promise<void>((resolve) => {
      const stop = () => void shutdown().finally(resolve);
      process.once("SIGINT", stop);
      process.once("SIGTERM", stop);
    });
    return { summary, done };
  } catch (err) {
    await shutdown().catch(() => {});
    throw err;
  }
}
