// `gmail-sync extract` as a user runs it (the real CLI in a child process): one JSON line per file,
// exit 0 with skipped files, nothing left in the temp directory. Then, when ../shared/corpus/
// exists on this machine, every file in it goes through the command (skipped otherwise).
import { existsSync } from "node:fs";
import { mkdir, mkdtemp, readdir, rm, writeFile } from "node:fs/promises";
import os from "node:os";
import path from "node:path";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { makeCorruptPdf, makeCsv, makePdf, makePng } from "@gmail-sync/emulator/generate";
import { repoRoot, runCli } from "../helpers/cli.ts";

const corpus = path.resolve(repoRoot, "../shared/corpus");
let root: string;
let tempDir: string;

async function listFiles(dir: string): Promise<string[]> {
  const out: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name);
    if (entry.isDirectory()) out.push(...(await listFiles(p)));
    else if (entry.isFile()) out.push(p);
  }
  return out.sort();
}

beforeAll(async () => {
  root = await mkdtemp(path.join(os.tmpdir(), "gs-extract-cli-"));
  tempDir = path.join(root, "attachments");
});
afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("gmail-sync extract", () => {
  it("prints one JSON object per file and exits 0 even when files are skipped", async () => {
    const files = path.join(root, "files");
    await mkdir(path.join(files, "etc"), { recursive: true });
    await writeFile(path.join(files, "report.pdf"), await makePdf({ pages: 2 }));
    await writeFile(path.join(files, "broken.pdf"), await makeCorruptPdf());
    await writeFile(path.join(files, "photo.png"), makePng());
    await writeFile(path.join(files, "empty.txt"), "");
    await writeFile(path.join(files, "data.csv"), makeCsv([["a", "b"]], { encoding: "utf16le" }));
    await writeFile(path.join(files, "etc", "passwd"), "root:x:0:0\n");
    const args = ["report.pdf", "broken.pdf", "photo.png", "empty.txt", "data.csv", "etc/../etc/passwd"].map((f) =>
      path.join(files, f),
    );
    // The path as given is echoed back, even one with ".." in it.
    args[5] = `${files}/etc/../etc/passwd`;
    const r = await runCli(["extract", "--json", ...args], { ATTACHMENT_TEMP_DIR: tempDir, EXTRACT_POOL_SIZE: "2" });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const lines = r.stdout
      .trim()
      .split("\n")
      .map((l) => JSON.parse(l) as Record<string, unknown>);
    expect(lines.map((l) => l.file)).toEqual(args);
    for (const l of lines)
      expect(Object.keys(l)).toEqual(
        expect.arrayContaining([
          "file",
          "size",
          "checksum",
          "detected_type",
          "route",
          "skipped_reason",
          "text",
          "metadata",
        ]),
      );
    expect(lines[0]).toMatchObject({ detected_type: "application/pdf", route: "memory", skipped_reason: null });
    expect(lines[0]!.checksum).toMatch(/^[0-9a-f]{64}$/);
    expect(lines[0]!.text).toContain("marmalade2");
    expect(lines[1]).toMatchObject({ skipped_reason: "corrupt", text: null });
    expect(lines[2]).toMatchObject({ skipped_reason: "unsupported_type", detected_type: "image/png" });
    expect(lines[3]).toMatchObject({ skipped_reason: "empty", size: 0 });
    expect(lines[4]).toMatchObject({ skipped_reason: null, text: "a,b" });
    expect(lines[5]).toMatchObject({ skipped_reason: null, text: "root:x:0:0" });
    expect(await readdir(tempDir)).toEqual([]);
  });

  it("fails (exit 1) on a path that is not a readable file, after printing the others", async () => {
    const ok = path.join(root, "ok.txt");
    await writeFile(ok, "fine");
    const r = await runCli(["extract", "--json", ok, path.join(root, "missing.pdf")], { ATTACHMENT_TEMP_DIR: tempDir });
    expect(r.code).toBe(1);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({ file: ok, text: "fine" });
    expect(r.stderr).toMatch(/missing\.pdf/);
  });

  it.skipIf(!existsSync(corpus))(
    "runs every file of the shared corpus without crashing or leaving files behind",
    async () => {
      const files = await listFiles(corpus);
      const r = await runCli(
        ["extract", "--json", ...files],
        { ATTACHMENT_TEMP_DIR: tempDir, EXTRACT_POOL_SIZE: "2" },
        110_000,
      );
      expect(r.code).toBe(0);
      const lines = r.stdout
        .trim()
        .split("\n")
        .map(
          (l) =>
            JSON.parse(l) as {
              file: string;
              skipped_reason: string | null;
              text: string | null;
              checksum: string | null;
            },
        );
      expect(lines.map((l) => l.file)).toEqual(files);
      for (const l of lines) {
        expect(l.checksum).toMatch(/^[0-9a-f]{64}$/);
        if (l.text !== null) expect(l.text).not.toMatch(/\u0000/);
      }
      // Most real files extract; the hostile ones end as skips.
      expect(lines.filter((l) => l.skipped_reason === null).length).toBeGreaterThan(files.length / 2);
      expect(await readdir(tempDir)).toEqual([]);
    },
    120_000,
  );
});
