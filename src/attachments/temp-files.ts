// The private temp directory for attachments between 10 and 50 MB: mode 0700, files 0600 with
// random names (never derived from the attachment's filename), deleted the moment extraction ends.
// A sweeper removes orphans a crashed process left behind.
import { createHash, randomBytes } from "node:crypto";
import { chmod, lstat, mkdir, open, readdir, stat, unlink } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import type { Logger } from "../log.ts";
import { attachmentTempFiles, orphanedTempFilesGauge, tempFileCleanupTotal } from "../metrics.ts";

/**
 * Our names only: the sweeper never touches a file it did not create, even in a shared dir. The
 * name carries the writer's host and pid, so that after a crash the restarted process removes the
 * dead writer's files at once instead of leaving attachment bytes on disk until they age out.
 */
const TEMP_NAME = /^att-([0-9a-f]{8})-(\d+)-[0-9a-f]{32}\.bin$/;
const HOST = createHash("sha256").update(os.hostname()).digest("hex").slice(0, 8);

/** Whether a file's writer is a process on this host that no longer exists. */
function writerIsDead(host: string, pid: number): boolean {
  if (host !== HOST || pid === process.pid) return false;
  try {
    process.kill(pid, 0);
    return false; // alive (or a reused pid: then the age rule decides)
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === "ESRCH";
  }
}

/** Creates the directory (0700) or tightens an existing one; refuses a symlink or a non-directory. */
export async function ensureTempDir(dir: string): Promise<string> {
  await mkdir(dir, { recursive: true, mode: 0o700 });
  const st = await lstat(dir);
  if (!st.isDirectory()) throw new Error(`ATTACHMENT_TEMP_DIR is not a directory: ${dir}`);
  if (typeof process.getuid === "function" && st.uid !== process.getuid())
    throw new Error(`ATTACHMENT_TEMP_DIR is owned by another user: ${dir}`);
  if ((st.mode & 0o777) !== 0o700) await chmod(dir, 0o700);
  return dir;
}

/** Writes bytes to a new 0600 file with a random name (O_EXCL: never follows or reuses a path). */
export async function writeTempFile(dir: string, bytes: Uint8Array): Promise<string> {
  const file = path.join(dir, `att-${HOST}-${process.pid}-${randomBytes(16).toString("hex")}.bin`);
  const handle = await open(file, "wx", 0o600);
  attachmentTempFiles.inc();
  try {
    await handle.writeFile(bytes);
  } catch (err) {
    await handle.close().catch(() => {});
    await removeTempFile(file);
    throw err;
  }
  await handle.close();
  return file;
}

/** Deletes a temp file; counts the outcome. Never throws. */
export async function removeTempFile(file: string, log?: Logger): Promise<void> {
  try {
    await unlink(file);
    tempFileCleanupTotal.inc({ outcome: "deleted" });
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    tempFileCleanupTotal.inc({ outcome: code === "ENOENT" ? "already_gone" : "failed" });
    if (code !== "ENOENT") log?.error({ code }, "could not delete an attachment temp file");
  } finally {
    attachmentTempFiles.dec();
  }
}

/**
 * Deletes our temp files whose writer on this host is dead, and any older than `olderThanMinutes`
 * (left by a process that died mid-extraction, here or on a host sharing the directory).
 * Sets orphaned_temp_files_gauge to how many it found; counts each removal as outcome=orphan.
 */
export async function sweepOrphanTempFiles(
  dir: string,
  olderThanMinutes: number,
  log: Logger,
): Promise<{ found: number; removed: number }> {
  let names: string[];
  try {
    names = await readdir(dir);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === "ENOENT") {
      orphanedTempFilesGauge.set(0);
      return { found: 0, removed: 0 };
    }
    throw err;
  }
  const cutoff = Date.now() - olderThanMinutes * 60_000;
  let found = 0;
  let removed = 0;
  for (const name of names) {
    const m = TEMP_NAME.exec(name);
    if (m === null) continue;
    const file = path.join(dir, name);
    try {
      const st = await stat(file);
      if (st.mtimeMs > cutoff && !writerIsDead(m[1] as string, Number(m[2]))) continue;
      found++;
      await unlink(file);
      removed++;
      tempFileCleanupTotal.inc({ outcome: "orphan" });
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === "ENOENT") continue; // deleted by its owner in between
      tempFileCleanupTotal.inc({ outcome: "failed" });
      log.error({ code }, "could not delete an orphaned attachment temp file");
    }
  }
  orphanedTempFilesGauge.set(found);
  if (found > 0) log.warn({ found, removed }, "removed orphaned attachment temp files");
  return { found, removed };
}
