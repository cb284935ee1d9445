// How an extraction child is started: its Node flags and its environment. Kept apart from pool.ts
// so that test/security/extract-sandbox.test.ts starts its probe exactly the way production starts
// a parser. A parser exploit (pdf.js has had arbitrary-JS CVEs) runs with what this grants.
//
// What Node 24's permission model (`--permission`) does for us here:
// - file system: reads only below the directories listed by `--allow-fs-read` (this folder's code,
//   the node_modules the parsers load, the attachment temp dir); every other path, /proc/<parent>/
//   environ, the key files and the project root with its .env included, is ERR_ACCESS_DENIED. No
//   `--allow-fs-write`: the child writes nothing anywhere.
// - no `--allow-child-process`, `--allow-worker`, `--allow-addons`, `--allow-wasi`,
//   `--allow-inspector`: spawning, worker threads, native addons, WASI and the inspector are refused
//   (pdf.js runs its "fake worker" on the main thread, tesseract.js's worker script runs in the
//   child's own thread: ocr.ts). Plain WebAssembly (PDFium, tesseract) is not restricted by the
//   model, compiles under --disallow-code-generation-from-strings, reads its .wasm from the
//   packages' folders below and needs no WASI (test/security/extract-sandbox-wasm.test.ts).
//   `process.binding()` is refused too.
// - network: NOT restricted by the model. Node 24 has no network permission (`--allow-net` arrived
//   in Node 25, where `--permission` alone then denies the network), and a socket path is not
//   checked against `--allow-fs-read` (measured). So no-network.ts is preloaded (`--import`): it
//   replaces and locks every JavaScript way to a socket before any parser loads. Behind that, the
//   child still holds no credentials: the environment below carries none and the secrets' files are
//   outside what it may read — so Postgres should not trust local connections ("trust"/"peer") and
//   Redis should require a password, whatever this layer does.
// - Not covered by the model at all (Node's docs: it "does not protect against malicious code"):
//   file descriptors already open are usable, symbolic links inside an allowed directory are
//   followed. The child inherits none but stdio (ignored) and the IPC channel, and cannot create
//   links (no write permission).
import { type ChildProcess, fork } from "node:child_process";
import { realpathSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

/** The child's entry point in production. */
export const childEntry = fileURLToPath(new URL("./child.ts", import.meta.url));
const noNetworkModule = fileURLToPath(new URL("./no-network.ts", import.meta.url));

// Packages the child imports (directly, from this folder's extractors). Their node_modules folders
// are what it may read: code only, nothing an attacker can use.
// PDFium and tesseract are WebAssembly: their .wasm files are read from these folders too (plain
// WebAssembly needs no permission flag; `--allow-wasi` is for node:wasi, which neither uses).
const PARSER_PACKAGES = [
  "pdf-parse",
  "@hyzyla/pdfium",
  "mammoth",
  "html-to-text",
  "chardet",
  "iconv-lite",
  "yauzl",
  "postal-mime",
  "tesseract.js",
  "tesseract.js-core",
];

// Parent variables the child keeps, by name. Everything else (DATABASE_URL, REDIS_URL,
// TOKEN_ENCRYPTION_KEY, GOOGLE_CLIENT_SECRET, *_FILE paths, NODE_OPTIONS which could re-grant
// permissions) stays behind.
const INHERITED_ENV = ["PATH", "TMPDIR", "NODE_ENV", "TZ"] as const;

export interface ChildSpawnOptions {
  /** V8 heap cap in MB (below the parent's RSS watchdog). */
  rssLimitMb: number;
  /** ATTACHMENT_TEMP_DIR: the only data directory the child may read (temp-file route). */
  tempDir?: string;
  /** Further read-only directories (OCR children: the tesseract language data folders). */
  readDirs?: string[];
  /** The Node binary; the parent's own by default. */
  execPath?: string;
  /** Entry file; child.ts by default. Tests pass a probe (always readable: Node allows the entry). */
  entry?: string;
}

export interface ChildSpawnSpec {
  execPath: string;
  entry: string;
  execArgv: string[];
  env: NodeJS.ProcessEnv;
}

/** The node_modules folder holding a package, as a real path. */
function nodeModulesOf(pkg: string): string {
  const file = fileURLToPath(import.meta.resolve(pkg));
  const at = file.lastIndexOf(`${path.sep}node_modules${path.sep}`);
  if (at < 0) throw new Error(`cannot locate node_modules for ${pkg}: ${file}`);
  return realpathSync(file.slice(0, at + `${path.sep}node_modules`.length));
}

let parserDirs: string[] | undefined;

/** Directories the child may read besides the temp dir: this folder's code and the parsers'. */
export function codeDirs(): string[] {
  parserDirs ??= [...new Set([realpathSync(path.dirname(childEntry)), ...PARSER_PACKAGES.map(nodeModulesOf)])];
  return parserDirs;
}

export function childEnv(parent: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = { LANG: "C.UTF-8" };
  for (const name of INHERITED_ENV) if (parent[name] !== undefined) env[name] = parent[name];
  return env;
}

export function childSpawnSpec(opts: ChildSpawnOptions): ChildSpawnSpec {
  // Real paths: the permission model compares resolved paths, and the module loader reads through them.
  const readable = [
    ...codeDirs(),
    ...(opts.readDirs ?? []).map((dir) => realpathSync(dir)),
    ...(opts.tempDir ? [realpathSync(opts.tempDir)] : []),
  ];
  return {
    execPath: opts.execPath ?? process.execPath,
    entry: opts.entry ?? childEntry,
    execArgv: [
      "--permission",
      ...readable.map((dir) => `--allow-fs-read=${dir}`),
      // No eval/new Function: the pdf.js arbitrary-JS bugs (CVE-2024-4367) inject into code it
      // generates from strings. pdf.ts already turns that off (isEvalSupported: false); this makes it
      // hold for any parser path that forgets. pdf.js probes eval in a try/catch and copes.
      "--disallow-code-generation-from-strings",
      // Sockets refused before any parser loads (Node 24's permission model has no network rule).
      `--import=${noNetworkModule}`,
      // V8's own cap, below the RSS watchdog: a heap blow-up ends as a crash, not swap.
      `--max-old-space-size=${opts.rssLimitMb}`,
      "--disable-warning=ExperimentalWarning",
    ],
    env: childEnv(),
  };
}

/** Starts a child from a spec: IPC for requests and results, nothing else shared with the parent. */
export function forkExtractChild(spec: ChildSpawnSpec): ChildProcess {
  return fork(spec.entry, [], {
    execPath: spec.execPath,
    execArgv: spec.execArgv,
    // Structured clone: attachment bytes travel as a Uint8Array copy, not as JSON.
    serialization: "advanced",
    // Parser chatter may quote document content: never let it reach our logs.
    stdio: ["ignore", "ignore", "ignore", "ipc"],
    env: spec.env,
  });
}
