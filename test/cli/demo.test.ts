// The README's first command, end to end, as a child process: `gmail-sync demo --json` with a small
// mailbox. Its JSON summary must say the database equals the mailbox, no temp file is left, and
// every attachment route was taken.
import { afterAll, describe, expect, it } from "vitest";
import { runCli } from "../helpers/cli.ts";
import { unusedDatabaseUrl } from "../helpers/database.ts";

const target = unusedDatabaseUrl();
afterAll(() => target.drop());

describe("gmail-sync demo", () => {
  it("mirrors the generated mailboxes and reports a matching summary", async () => {
    // A short extraction timeout keeps the looping-PDF fixture from costing 30 s here.
    const r = await runCli(
      ["demo", "--messages", "150", "--json"],
      { DATABASE_URL: target.url, EXTRACT_TIMEOUT_MS: "4000", HTTP_PORT: "0" },
      240_000,
    );
    expect(r.stderr).not.toMatch(/Error|error:/);
    expect(r.code).toBe(0);
    const lines = r.stdout.trim().split("\n");
    expect(lines).toHaveLength(1); // under --json, stdout is the summary alone
    const summary = JSON.parse(lines[0] as string);
    expect(summary.match).toBe(true);
    expect(summary.accounts).toHaveLength(2);
    for (const a of summary.accounts) {
      expect(a).toMatchObject({ match: true, missing: [], extra: [] });
      expect(a.storedMessages).toBe(a.mailboxMessages);
      expect(a.mailboxMessages).toBeGreaterThan(140);
    }
    expect(summary.tempFilesLeft).toBe(0);
    expect(summary.attachments.memory).toBeGreaterThan(0);
    expect(summary.attachments.temp_file).toBeGreaterThanOrEqual(1);
    expect(summary.attachments.skipped).toBeGreaterThanOrEqual(1);
    expect(summary.skippedReasons).toMatchObject({ too_large: 1, encrypted: expect.any(Number) });
    expect(summary.quotaUnits).toBeGreaterThan(0);
    expect(summary.pushToStoredMs.samples).toBe(10);
    expect(summary.pushToStoredMs.p50).toBeGreaterThan(0);
    expect(summary.searchExample.hits).toBeGreaterThanOrEqual(1);
    expect(summary.metricsUrl).toMatch(/^http:\/\/127\.0\.0\.1:\d+\/metrics$/);
  }, 300_000);

  it("rejects a bad flag with one line and exit 1", async () => {
    const r = await runCli(["demo", "--messages", "lots"], { DATABASE_URL: target.url });
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/--messages.*must be an integer/);
  });
});
