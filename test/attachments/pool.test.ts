// The extraction pool's limits: RSS watchdog (→ too_complex), a child dying mid-job (→ crash,
// replaced), recycling after N files or when a job left the child big. The wall-clock kill is covered in pipeline.test.ts.
import pino from "pino";
import { afterEach, describe, expect, it } from "vitest";
import { makeHtml, makeLoopingPdf } from "@gmail-sync/emulator/generate";
import { createExtractPool, type ExtractPool } from "../../src/extract/pool.ts";
import type { ExtractRequest } from "../../src/extract/protocol.ts";
import { extractChildrenKilledTotal } from "../../src/metrics.ts";

const log = pino({ level: "silent" });
const limits = { maxPages: 500, maxTextBytes: 1024 * 1024, maxXmlBytes: 20 * 1024 * 1024 };
let pool: ExtractPool | undefined;

function textRequest(s: string): ExtractRequest {
  return {
    kind: "text",
    source: { type: "bytes", bytes: Buffer.from(s) },
    declaredType: "text/plain",
    charset: null,
    detectedType: "text/plain",
    limits,
  };
}

async function killed(reason: string): Promise<number> {
  return (await extractChildrenKilledTotal.get()).values.find((v) => v.labels.reason === reason)?.value ?? 0;
}

async function waitFor(check: () => boolean, ms = 5000): Promise<void> {
  const end = Date.now() + ms;
  while (!check()) {
    if (Date.now() > end) throw new Error("condition not met in time");
    await new Promise((r) => setTimeout(r, 20));
  }
}

afterEach(async () => {
  await pool?.close();
  pool = undefined;
});

describe("extraction pool", () => {
  it("kills a child over its RSS cap (→ too_complex), replaces it, and keeps serving", async () => {
    pool = createExtractPool({ size: 1, rssLimitMb: 128, timeoutMs: 20_000, recycleAfter: 100, log });
    const paragraphs = Array.from(
      { length: 60_000 },
      (_, i) => `<b>Paragraph</b> ${i} <i>with</i> <span>many</span> <em>small</em> elements.`,
    );
    const html = makeHtml({ title: "Heavy", paragraphs });
    await waitFor(() => pool!.pids().length === 1);
    const [firstPid] = pool.pids();
    const before = await killed("memory");
    const outcome = await pool.run({
      kind: "html",
      source: { type: "bytes", bytes: html },
      declaredType: "text/html",
      charset: null,
      detectedType: "text/html",
      limits,
    });
    expect(outcome).toMatchObject({ skippedReason: "too_complex", text: null, detectedType: "text/html" });
    expect(outcome.details.reason).toMatch(/RSS \d+ MB over the 128 MB cap/);
    expect(await killed("memory")).toBe(before + 1);
    expect((await pool.run(textRequest("still alive"))).text).toBe("still alive");
    expect(pool.pids()).not.toContain(firstPid);
  }, 30_000);

  it("answers a job whose child died as too_complex (crashed) and replaces the child", async () => {
    pool = createExtractPool({ size: 1, rssLimitMb: 512, timeoutMs: 60_000, recycleAfter: 100, log });
    // One answered job: the child is up and takes the next job at once (a busy machine starts slowly).
    expect((await pool.run(textRequest("ready"))).text).toBe("ready");
    const [pid] = pool.pids();
    const before = await killed("crashed");
    // pdf.js loops on this file at a steady RSS (PDFium would meet the RSS cap on its own).
    const pending = pool.run({
      kind: "pdf",
      pdfEngine: "pdf-parse",
      source: { type: "bytes", bytes: await makeLoopingPdf() },
      declaredType: "application/pdf",
      charset: null,
      detectedType: "application/pdf",
      limits,
    });
    await new Promise((r) => setTimeout(r, 500));
    process.kill(pid!, "SIGKILL"); // what the OOM killer or a native crash looks like from here
    expect(await pending).toMatchObject({ skippedReason: "too_complex", text: null });
    expect(await killed("crashed")).toBe(before + 1);
    expect((await pool.run(textRequest("replaced"))).text).toBe("replaced");
    expect(pool.pids()).not.toContain(pid);
  }, 60_000);

  it("recycles a child after N files", async () => {
    pool = createExtractPool({ size: 1, rssLimitMb: 512, timeoutMs: 10_000, recycleAfter: 2, log });
    await waitFor(() => pool!.pids().length === 1);
    const [first] = pool.pids();
    expect((await pool.run(textRequest("one"))).text).toBe("one");
    expect(pool.pids()).toEqual([first]);
    expect((await pool.run(textRequest("two"))).text).toBe("two");
    expect((await pool.run(textRequest("three"))).text).toBe("three");
    expect(pool.pids()).toHaveLength(1);
    expect(pool.pids()).not.toContain(first);
  });

  it("replaces a child whose RSS after a job is above recycleAboveMb (WebAssembly memory never shrinks)", async () => {
    // Any child is above 1 MB: every job retires its child, the next job runs in a new one.
    pool = createExtractPool({
      size: 1,
      rssLimitMb: 512,
      timeoutMs: 10_000,
      recycleAfter: 100,
      recycleAboveMb: 1,
      log,
    });
    await waitFor(() => pool!.pids().length === 1);
    const [first] = pool.pids();
    expect((await pool.run(textRequest("one"))).text).toBe("one");
    await waitFor(() => pool!.pids().length === 1 && !pool!.pids().includes(first as number));
    expect((await pool.run(textRequest("two"))).text).toBe("two");
  });

  it("rejects jobs when children cannot start, and still closes", async () => {
    pool = createExtractPool({
      size: 1,
      rssLimitMb: 512,
      timeoutMs: 10_000,
      recycleAfter: 100,
      log,
      execPath: "/nonexistent/node",
    });
    await expect(pool.run(textRequest("never"))).rejects.toThrow(/fail to start/);
    // Each new job retries the start once more rather than leaving the pool dead for good.
    await expect(pool.run(textRequest("again"))).rejects.toThrow(/fail to start/);
    await pool.close();
  });

  it("runs jobs in parallel up to its size and rejects work after close", async () => {
    pool = createExtractPool({ size: 2, rssLimitMb: 512, timeoutMs: 10_000, recycleAfter: 100, log });
    const results = await Promise.all(Array.from({ length: 20 }, (_, i) => pool!.run(textRequest(`job ${i}`))));
    expect(results.map((r) => r.text)).toEqual(Array.from({ length: 20 }, (_, i) => `job ${i}`));
    await pool.close();
    await expect(pool.run(textRequest("late"))).rejects.toThrow(/closed/);
  });
});
