// SIGKILL of a worker child process while its extraction child is busy with an attachment that
// never finishes (the generator's looping PDF, routed through a temp file). After the kill: the
// extraction child does not outlive its parent, the orphaned temp file is swept when a worker
// starts again, and the restarted worker stores the message with the attachment skipped for a
// clear reason. Ends converged: database = mailbox, no duplicate, no temp file, no stuck job.
import { utimes } from "node:fs/promises";
import path from "node:path";
import MailComposer from "nodemailer/lib/mail-composer/index.js";
import { afterAll, beforeAll, expect, it } from "vitest";
import { makeLoopingPdf } from "@gmail-sync/emulator/generate";
import { backfillDone, connectTestAccount, type Harness, queuesIdle, startHarness } from "../sync/harness.ts";
import {
  alive,
  expectConverged,
  extractionChildrenOf,
  killAllWorkerChildren,
  poll,
  startWorkerChild,
  tempFiles,
} from "./helpers/crash.ts";

const EMAIL = "judy@example.com";
let h: Harness;
const extractionPids: number[] = [];

// Attachments over 1 KB go through a temp file (the looping PDF is ~5 KB; the note stays in memory).
// pdf.js (PDF_ENGINE=pdf-parse) loops on the generator's looping PDF until the wall clock stops it:
// the extraction that never finishes this test needs. PDFium, the default, meets the RSS cap instead
// within about a second (test/attachments/pdfium.test.ts).
const ATTACHMENT_ENV = {
  ATTACHMENT_MEMORY_MAX_BYTES: "1024",
  TEMP_FILE_ORPHAN_MINUTES: "1",
  EXTRACT_POOL_SIZE: "1",
  PDF_ENGINE: "pdf-parse",
};

beforeAll(async () => {
  h = await startHarness({
    emulator: { accounts: [EMAIL], messages: 40, seed: 33, attachments: false },
    env: { INCLUDE_SPAM_TRASH: "true", ...ATTACHMENT_ENV },
  });
});
afterAll(async () => {
  killAllWorkerChildren();
  // An extraction child the product failed to stop must not keep spinning after the test.
  for (const pid of await alive(extractionPids).catch(() => [])) process.kill(pid, "SIGKILL");
  await h?.close();
});

it("SIGKILL during an attachment extraction, restart: no orphan child, temp file swept, message stored with a skip reason", {
  timeout: 90_000,
}, async () => {
  const raw = await new MailComposer({
    from: "Ledger <ledger@example.net>",
    to: EMAIL,
    subject: "Quarterly ledger",
    text: "The ledger is attached, with a note.",
    attachments: [
      { filename: "ledger.pdf", content: await makeLoopingPdf(), contentType: "application/pdf" },
      { filename: "note.txt", content: "remember the heliotrope invoice", contentType: "text/plain" },
    ],
  })
    .compile()
    .build();
  const { id: ledgerId } = await h.emulator.control.deliver(EMAIL, { raw, labelIds: ["INBOX"] });
  const accountId = await connectTestAccount(h, EMAIL);
  await h.app.enqueueBackfill(accountId, { reason: "connect" });

  // No wall-clock limit for the first worker: its extraction is busy until the kill.
  const first = startWorkerChild(h, { EXTRACT_TIMEOUT_MS: "600000" });
  const tempDir = h.app.config.ATTACHMENT_TEMP_DIR;
  const orphan = await poll("the PDF's temp file", async () => (await tempFiles(tempDir))[0], 45_000, 20);
  const busy = await poll("the extraction child", async () => {
    const pids = await extractionChildrenOf(first.pid);
    return pids.length > 0 ? pids : null;
  });
  extractionPids.push(...busy);
  first.child.kill("SIGKILL");
  expect((await first.exited).signal).toBe("SIGKILL");
  expect(await backfillDone(h, accountId), "killed mid-backfill").toBe(false);

  // The extraction child notices its parent is gone and exits instead of looping on as an orphan.
  await poll("the extraction child to exit", async () => (await alive(busy)).length === 0, 10_000, 100);
  // The crash left the temp file behind; age it past TEMP_FILE_ORPHAN_MINUTES as if time had passed.
  expect(await tempFiles(tempDir)).toEqual([orphan]);
  const old = new Date(Date.now() - 5 * 60_000);
  await utimes(path.join(tempDir, orphan), old, old);

  const second = startWorkerChild(h, { EXTRACT_TIMEOUT_MS: "1500" });
  await poll("backfill to finish after the restart", () => backfillDone(h, accountId), 45_000, 100);
  await poll("queues to drain", () => queuesIdle(h), 30_000, 100);

  await expectConverged(h, accountId, EMAIL);
  const rows = await h.app.db
    .selectFrom("attachments")
    .innerJoin("messages", "messages.id", "attachments.message_id")
    .select(["attachments.filename", "attachments.skipped_reason", "attachments.extracted_text"])
    .where("messages.account_id", "=", accountId)
    .where("messages.gmail_id", "=", ledgerId)
    .orderBy("attachments.filename")
    .execute();
  expect(rows).toHaveLength(2);
  expect(rows[0]).toMatchObject({ filename: "ledger.pdf", skipped_reason: "timeout", extracted_text: null });
  expect(rows[1]).toMatchObject({ filename: "note.txt", skipped_reason: null });
  expect(rows[1]?.extracted_text).toContain("heliotrope");

  // A graceful stop of the second worker leaves no extraction child either.
  const secondChildren = await extractionChildrenOf(second.pid);
  extractionPids.push(...secondChildren);
  second.child.kill("SIGTERM");
  expect((await second.exited).code, second.output()).toBe(0);
  await poll(
    "the second worker's extraction children to exit",
    async () => (await alive(secondChildren)).length === 0,
    10_000,
    100,
  );
});
