// The private temp directory: 0700, files 0600 with random names, deletion counted, orphans swept.
import { spawnSync } from "node:child_process";
import { mkdtemp, readdir, rm, stat, utimes, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import pino from "pino";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import {
  ensureTempDir,
  removeTempFile,
  sweepOrphanTempFiles,
  writeTempFile,
} from "../../src/attachments/temp-files.ts";
import { attachmentTempFiles, orphanedTempFilesGauge, tempFileCleanupTotal } from "../../src/metrics.ts";

const log = pino({ level: "silent" });
let root: string;

async function counter(outcome: string): Promise<number> {
  return (await tempFileCleanupTotal.get()).values.find((v) => v.labels.outcome === outcome)?.value ?? 0;
}

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "gs-temp-files-"));
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("temp files", () => {
  it("creates a 0700 directory and tightens an existing one", async () => {
    const dir = path.join(root, "a", "attachments");
    await ensureTempDir(dir);
    expect((await stat(dir)).mode & 0o777).toBe(0o700);
    const loose = path.join(root, "loose");
    await ensureTempDir(loose);
    await import("node:fs/promises").then((fs) => fs.chmod(loose, 0o755));
    await ensureTempDir(loose);
    expect((await stat(loose)).mode & 0o777).toBe(0o700);
  });

  it("writes 0600 files with random names and deletes them, counting outcomes", async () => {
    const dir = await ensureTempDir(path.join(root, "w"));
    const deletedBefore = await counter("deleted");
    const goneBefore = await counter("already_gone");
    const a = await writeTempFile(dir, Buffer.from("secret bytes"));
    const b = await writeTempFile(dir, Buffer.from("secret bytes"));
    expect(a).not.toBe(b);
    expect(path.dirname(a)).toBe(dir);
    expect(path.basename(a)).toMatch(new RegExp(`^att-[0-9a-f]{8}-${process.pid}-[0-9a-f]{32}\\.bin$`));
    expect((await stat(a)).mode & 0o777).toBe(0o600);
    expect((await attachmentTempFiles.get()).values[0]?.value).toBeGreaterThanOrEqual(2);
    await removeTempFile(a);
    await removeTempFile(b);
    await removeTempFile(b); // deleted twice: counted, never thrown
    expect(await readdir(dir)).toEqual([]);
    expect((await counter("deleted")) - deletedBefore).toBe(2);
    expect((await counter("already_gone")) - goneBefore).toBe(1);
  });

  it("sweeps only our files older than the orphan age and reports how many it found", async () => {
    const dir = await ensureTempDir(path.join(root, "s"));
    const old = await writeTempFile(dir, Buffer.from("left by a crash"));
    const fresh = await writeTempFile(dir, Buffer.from("in use"));
    const foreign = path.join(dir, "not-ours.txt");
    await writeFile(foreign, "someone else's");
    const hourAgo = new Date(Date.now() - 60 * 60_000);
    await utimes(old, hourAgo, hourAgo);
    await utimes(foreign, hourAgo, hourAgo);
    const orphansBefore = await counter("orphan");

    expect(await sweepOrphanTempFiles(dir, 30, log)).toEqual({ found: 1, removed: 1 });
    expect((await readdir(dir)).sort()).toEqual([path.basename(fresh), "not-ours.txt"].sort());
    expect((await orphanedTempFilesGauge.get()).values[0]?.value).toBe(1);
    expect((await counter("orphan")) - orphansBefore).toBe(1);

    expect(await sweepOrphanTempFiles(dir, 30, log)).toEqual({ found: 0, removed: 0 });
    expect((await orphanedTempFilesGauge.get()).values[0]?.value).toBe(0);
    expect(await sweepOrphanTempFiles(path.join(root, "missing"), 30, log)).toEqual({ found: 0, removed: 0 });
    await removeTempFile(fresh);
  });

  it("removes a fresh file at once when its writer on this host is dead, not when it lives", async () => {
    const dir = await ensureTempDir(path.join(root, "dead"));
    // A child process writes a temp file and is killed before it can delete it.
    const child = spawnSync(
      process.execPath,
      [
        "-e",
        `import(${JSON.stringify(new URL("../../src/attachments/temp-files.ts", import.meta.url).href)}).then(async (m) => { console.log(await m.writeTempFile(${JSON.stringify(dir)}, Buffer.from("bytes of a crashed writer"))); process.kill(process.pid, "SIGKILL"); })`,
      ],
      { encoding: "utf8" },
    );
    const orphan = child.stdout.trim();
    expect(path.dirname(orphan)).toBe(dir);
    const live = await writeTempFile(dir, Buffer.from("in use by a live process"));
    expect(await sweepOrphanTempFiles(dir, 30, log)).toEqual({ found: 1, removed: 1 });
    expect(await readdir(dir)).toEqual([path.basename(live)]);
    await removeTempFile(live);
  });
});
