// What `serve` and `worker` load: every import, static or dynamic, followed from src/server.ts and
// src/worker.ts through the project's own files. The emulator and the demo must not be reachable —
// the production image does not contain them, and a long-running process should not carry them.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import ts from "typescript";
import { describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");

/** Every file reachable from `entry`, and every package specifier met on the way. */
function reach(entry: string): { files: Set<string>; packages: Set<string> } {
  const files = new Set<string>();
  const packages = new Set<string>();
  const queue = [path.join(root, entry)];
  while (queue.length > 0) {
    const file = queue.pop() as string;
    if (files.has(file)) continue;
    files.add(file);
    const info = ts.preProcessFile(readFileSync(file, "utf8"), true, true);
    for (const ref of info.importedFiles) {
      const spec = ref.fileName;
      if (spec.startsWith(".")) {
        const target = path.resolve(path.dirname(file), spec);
        expect(existsSync(target), `${path.relative(root, file)} imports ${spec}`).toBe(true);
        if (/\.(ts|js)$/.test(target)) queue.push(target);
      } else packages.add(spec);
    }
  }
  return { files, packages };
}

describe.each(["src/server.ts", "src/worker.ts"])("the import graph of %s", (entry) => {
  const { files, packages } = reach(entry);
  const rel = [...files].map((f) => path.relative(root, f));

  it("is the product's own code only: no emulator and no demo file", () => {
    expect(rel.length).toBeGreaterThan(20);
    expect(rel.filter((f) => !f.startsWith("src/"))).toEqual([]);
    expect(rel.filter((f) => f.startsWith("src/demo/") || f.includes("emulator"))).toEqual([]);
  });

  it("loads no package the production image leaves out", () => {
    const pkg = JSON.parse(readFileSync(path.join(root, "package.json"), "utf8")) as {
      dependencies: Record<string, string>;
    };
    const outside = [...packages]
      .filter((s) => !s.startsWith("node:"))
      .map((s) => (s.startsWith("@") ? s.split("/").slice(0, 2).join("/") : (s.split("/")[0] as string)))
      .filter((name) => !(name in pkg.dependencies));
    expect(outside).toEqual([]);
  });
});
