// `npm run bench:storage [-- --json]`: rows/s of the product's message upsert (src/db/messages.ts
// upsertMessages, the function backfill and incremental sync call; a backfill page of 500 is one
// call, which writes 200 messages per INSERT … ON CONFLICT statement) called one message at a time
// vs with whole batches, for fresh rows (INSERT) and for rows already stored (ON CONFLICT UPDATE,
// what a resync or a relabel re-fetch does). Same generated records in every scenario; each
// scenario writes under its own account so table sizes stay comparable. Not a test.
//   BENCH_STORAGE_ROWS (default 1000) rows per scenario
import { randomBytes } from "node:crypto";
import type { AttachmentResult } from "../src/attachments/types.ts";
import { upsertConnectedAccount } from "../src/db/accounts.ts";
import { createStoreApp } from "../src/app.ts";
import { loadConfig } from "../src/config.ts";
import { createLogger } from "../src/log.ts";
import type { Db } from "../src/db/database.ts";
import { type MessageRecord, upsertMessages } from "../src/db/messages.ts";
import { encryptToken, parseKeyRing } from "../src/token-crypto.ts";
import { createBenchDatabase } from "./lib/database.ts";

const ROWS = Number(process.env.BENCH_STORAGE_ROWS ?? 1000);
const json = process.argv.includes("--json");
const say = (line: string) => (json ? process.stderr : process.stdout).write(`${line}\n`);

// Deterministic records shaped like a mailbox: ~2 KB bodies, a few labels and addresses, and an
// attachment row (with ~3 KB of extracted text) on one message in five.
function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}
const WORDS =
  "the budget committee quarterly report revenue northern region review approved figures growth market customer service contract delivery schedule invoice payment".split(
    " ",
  );
function words(r: () => number, chars: number): string {
  const out: string[] = [];
  let n = 0;
  while (n < chars) {
    const w = WORDS[Math.floor(r() * WORDS.length)] as string;
    out.push(w);
    n += w.length + 1;
  }
  return out.join(" ");
}
function records(count: number, historyBase: number): MessageRecord[] {
  const r = rng(11);
  return Array.from({ length: count }, (_, i) => {
    const attachments: AttachmentResult[] =
      i % 5 === 0
        ? [
            {
              partId: "2",
              filename: `report-${i}.pdf`,
              mimeType: "application/pdf",
              contentId: null,
              size: 40_000,
              detectedType: "application/pdf",
              checksum: randomBytes(32).toString("hex"),
              text: words(r, 3000),
              textTruncated: false,
              route: "memory",
              skippedReason: null,
              metadata: { pages: 3, extractor: "pdf-parse" },
            },
          ]
        : [];
    return {
      gmailId: (0x18f0000000000000n + BigInt(i)).toString(16),
      threadId: (0x18f0000000000000n + BigInt(i - (i % 3))).toString(16),
      historyId: String(historyBase + i),
      internalDate: new Date(1_700_000_000_000 + i * 60_000),
      labelIds: i % 2 === 0 ? ["INBOX", "UNREAD", "Label_3"] : ["INBOX", "CATEGORY_UPDATES"],
      fromAddress: `sender${i % 50}@example.com`,
      toAddresses: ["bench@example.com"],
      ccAddresses: i % 4 === 0 ? ["cc1@example.com", "cc2@example.com"] : [],
      subject: words(r, 50),
      messageIdHeader: `<${i}.bench@example.com>`,
      inReplyTo: i % 3 === 0 ? null : `<${i - 1}.bench@example.com>`,
      snippet: words(r, 120),
      bodyText: words(r, 2000),
      sizeEstimate: 4000 + (i % 7) * 1000,
      attachments,
    };
  });
}

interface Scenario {
  name: string;
  /** Messages per upsertMessages call; 1 = one by one. */
  batch: number;
  /** One transaction around all calls (as a sync page holds) instead of one per call. */
  oneTransaction: boolean;
}
const SCENARIOS: Scenario[] = [
  { name: "one by one, a transaction each", batch: 1, oneTransaction: false },
  { name: "one by one, one transaction", batch: 1, oneTransaction: true },
  { name: "batches of 50", batch: 50, oneTransaction: true },
  { name: "batches of 200 (one statement each)", batch: 200, oneTransaction: true },
  { name: "batches of 500 (the product: a page per call)", batch: 500, oneTransaction: true },
];

async function write(db: Db, accountId: number, recs: MessageRecord[], s: Scenario): Promise<number> {
  const calls = async (exec: Parameters<typeof upsertMessages>[0]) => {
    let n = 0;
    for (let i = 0; i < recs.length; i += s.batch)
      n += await upsertMessages(exec, accountId, recs.slice(i, i + s.batch));
    return n;
  };
  if (s.oneTransaction) return db.transaction().execute(calls);
  let n = 0;
  for (let i = 0; i < recs.length; i += s.batch)
    n += await db.transaction().execute((trx) => upsertMessages(trx, accountId, recs.slice(i, i + s.batch)));
  return n;
}

const bdb = await createBenchDatabase("storage");
const store = createStoreApp(loadConfig({ ...process.env, DATABASE_URL: bdb.url }), {
  log: createLogger("silent"),
  poolSize: 4,
});
const db = store.db;
try {
  const keyRing = parseKeyRing(randomBytes(32).toString("base64"));
  const fresh = records(ROWS, 1000);
  const newer = records(ROWS, 100_000); // same ids, newer history ids: every row is updated
  // Warm the connection pool, the plan cache and the table's first pages.
  {
    const warm = await upsertConnectedAccount(db, {
      email: "warm@example.com",
      scopes: [],
      accessTokenExpiresAt: null,
      encrypt: (id) => ({
        refreshTokenEncrypted: encryptToken(keyRing, "refresh_token", id, "x"),
        accessTokenEncrypted: null,
        keyId: keyRing.activeKeyId,
      }),
    });
    await write(db, warm.id, fresh.slice(0, 200), SCENARIOS[0] as Scenario);
    await write(db, warm.id, fresh.slice(0, 200), SCENARIOS.at(-1) as Scenario);
  }
  const results: Array<{ scenario: string; batch: number; insertRowsPerSecond: number; updateRowsPerSecond: number }> =
    [];
  for (const [k, s] of SCENARIOS.entries()) {
    const account = await upsertConnectedAccount(db, {
      email: `storage${k}@example.com`,
      scopes: [],
      accessTokenExpiresAt: null,
      encrypt: (id) => ({
        refreshTokenEncrypted: encryptToken(keyRing, "refresh_token", id, "x"),
        accessTokenEncrypted: null,
        keyId: keyRing.activeKeyId,
      }),
    });
    let t = performance.now();
    const inserted = await write(db, account.id, fresh, s);
    const insertS = (performance.now() - t) / 1000;
    t = performance.now();
    const updated = await write(db, account.id, newer, s);
    const updateS = (performance.now() - t) / 1000;
    if (inserted !== ROWS || updated !== ROWS)
      throw new Error(`${s.name}: wrote ${inserted}/${updated} rows, expected ${ROWS}`);
    results.push({
      scenario: s.name,
      batch: s.batch,
      insertRowsPerSecond: Math.round(ROWS / insertS),
      updateRowsPerSecond: Math.round(ROWS / updateS),
    });
    say(
      `${s.name.padEnd(48)} insert ${String(Math.round(ROWS / insertS)).padStart(6)} rows/s   update ${String(Math.round(ROWS / updateS)).padStart(6)} rows/s`,
    );
  }
  const oneByOne = results[0] as (typeof results)[number];
  const product = results.at(-1) as (typeof results)[number];
  const summary = {
    storage: {
      rows: ROWS,
      attachmentRowsPerMessage: 0.2,
      oneByOneRowsPerSecond: oneByOne.insertRowsPerSecond,
      batchedRowsPerSecond: product.insertRowsPerSecond,
      batchVsOneByOne: Math.round((product.insertRowsPerSecond / oneByOne.insertRowsPerSecond) * 100) / 100,
      updateBatchVsOneByOne: Math.round((product.updateRowsPerSecond / oneByOne.updateRowsPerSecond) * 100) / 100,
      scenarios: results,
    },
  };
  say(
    `batches of 500 vs one by one (a transaction each): insert ${summary.storage.batchVsOneByOne}x, update ${summary.storage.updateBatchVsOneByOne}x`,
  );
  if (json) console.log(JSON.stringify(summary));
} finally {
  await store.close();
  await bdb.drop();
}
