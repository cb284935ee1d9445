// All SQL lives in src/db: every other file under src/ and bench/ calls repository functions, so a
// query's text, locking and transaction shape are read (and changed) in one place. This reads the
// source text and names each file:line that builds a query itself, and checks that the Executor
// type repository functions take is declared once, in src/db.
import { readdirSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";
import { describe, expect, it } from "vitest";

const root = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
const DB_DIR = "src/db/";

/** Every .ts file under `dir` (relative to the repository, with forward slashes). */
function tsFiles(dir: string): string[] {
  const out: string[] = [];
  for (const entry of readdirSync(path.join(root, dir), { withFileTypes: true })) {
    const rel = `${dir}/${entry.name}`;
    if (entry.isDirectory()) out.push(...tsFiles(rel));
    else if (entry.name.endsWith(".ts")) out.push(rel);
  }
  return out;
}

// A query is being built: a kysely builder entry point, or the sql tag and its helpers.
const QUERY_BUILDER = [
  /\.selectFrom\(/,
  /\.insertInto\(/,
  /\.updateTable\(/,
  /\.deleteFrom\(/,
  /\.with\(/,
  /\bsql`/,
  /\bsql</,
  /\bsql\.(raw|ref|lit|join)\b/,
];

// `import { sql } from "kysely"` (also `{ type X, sql as q }`, over several lines), and namespace
// imports, which bring sql along; type-only imports (Transaction, Selectable…) are fine.
const KYSELY_IMPORT = /import\s+(type\s+)?(\{[^}]*\}|\*\s+as\s+\w+)\s*from\s*["']kysely["']/g;

function isComment(line: string): boolean {
  const t = line.trimStart();
  return t.startsWith("//") || t.startsWith("/*") || t.startsWith("*");
}

/** `file:line: code` for each query built in `file`'s text. */
function queriesIn(file: string, text: string): string[] {
  const found: string[] = [];
  const lines = text.split("\n");
  lines.forEach((line, i) => {
    if (!isComment(line) && QUERY_BUILDER.some((re) => re.test(line))) found.push(`${file}:${i + 1}: ${line.trim()}`);
  });
  for (const m of text.matchAll(KYSELY_IMPORT)) {
    const [statement, typeOnly, clause] = m as unknown as [string, string | undefined, string];
    if (typeOnly !== undefined) continue;
    const importsSql =
      clause.startsWith("*") ||
      clause
        .slice(1, -1)
        .split(",")
        .some((s) => /^sql(\s+as\s+\w+)?$/.test(s.trim()));
    if (importsSql)
      found.push(`${file}:${text.slice(0, m.index).split("\n").length}: ${statement.replace(/\s+/g, " ")}`);
  }
  return found;
}

function scan(files: string[]): string[] {
  return files.flatMap((f) => queriesIn(f, readFileSync(path.join(root, f), "utf8")));
}

describe("SQL lives in src/db", () => {
  const all = [...tsFiles("src"), ...tsFiles("bench")];
  const outside = all.filter((f) => !f.startsWith(DB_DIR));

  it("no file outside src/db builds a query (file:line listed)", () => {
    expect(outside.length).toBeGreaterThan(40);
    expect(scan(outside)).toEqual([]);
  });

  it("the check sees queries where they are (src/db, and each pattern), so its passing above means something", () => {
    expect(scan(all.filter((f) => f.startsWith(DB_DIR))).length).toBeGreaterThan(20);
    const built = [
      'db.selectFrom("a")',
      "trx.insertInto('a')",
      "db.updateTable(`a`)",
      'db.deleteFrom("a")',
      'db.with("a", (qb) => qb)',
      "sql`now()`",
      "sql<number>`1`",
      'sql.raw("1")',
      'sql.ref("a.b")',
      "sql.lit(1)",
      "sql.join(xs)",
    ];
    for (const line of built) expect(queriesIn("x.ts", `  const q = ${line};`), line).toHaveLength(1);
    expect(
      queriesIn("x.ts", 'import {\n  type Kysely,\n  sql,\n} from "kysely";\nimport * as k from "kysely";'),
    ).toEqual(['x.ts:1: import { type Kysely, sql, } from "kysely"', 'x.ts:5: import * as k from "kysely"']);
    expect(
      queriesIn(
        "x.ts",
        'import type { Transaction } from "kysely";\nimport { type Selectable } from "kysely";\n// db.selectFrom("x") in a comment\n',
      ),
    ).toEqual([]);
  });

  it("declares the Executor type once, in src/db", () => {
    const declared = all.flatMap((f) =>
      readFileSync(path.join(root, f), "utf8")
        .split("\n")
        .flatMap((line, i) =>
          /^\s*(export\s+)?(declare\s+)?(type|interface)\s+Executor\b/.test(line) ? [`${f}:${i + 1}`] : [],
        ),
    );
    expect(declared.length, `declared at ${declared.join(", ")}`).toBe(1);
    expect(declared[0]?.startsWith(DB_DIR), declared.join(", ")).toBe(true);
  });
});
