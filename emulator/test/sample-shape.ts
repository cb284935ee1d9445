// Structural comparison of an emulator answer with a response recorded from the real Gmail API
// (../shared/gmail-real-samples/, read in place, never copied into the project): keys, value types
// and nesting, not values. Samples wrap Gmail's body as {request, status, response_headers_subset,
// response} or {method, endpoint, response}; a few are Gmail's body alone. When the samples folder is absent (a clone without
// ../shared), loadSample returns undefined and the caller skips the comparison.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const samplesDir = process.env.GMAIL_SAMPLES_DIR ?? path.resolve(repoRoot, "../shared/gmail-real-samples");
export const samplesPresent = existsSync(samplesDir);

export interface RecordedSample {
  status: number | undefined;
  headers: Record<string, string>;
  /** Gmail's JSON body. */
  body: unknown;
  /** The file's text as recorded (for byte-level facts such as pretty-printing). */
  text: string;
}

export function loadSample(name: string): RecordedSample | undefined {
  const file = path.join(samplesDir, name);
  if (!existsSync(file)) return undefined;
  const text = readFileSync(file, "utf8");
  const parsed = JSON.parse(text) as Record<string, unknown>;
  // Recorder envelopes: {request, status, response_headers_subset, response} or {method, endpoint, response}.
  if ("response" in parsed && ("request" in parsed || "endpoint" in parsed)) {
    return {
      status: parsed.status as number | undefined,
      headers: (parsed.response_headers_subset ?? {}) as Record<string, string>,
      body: parsed.response,
      text,
    };
  }
  return { status: undefined, headers: {}, body: parsed, text };
}

type Kind = "string" | "number" | "boolean" | "null" | "array" | "object";

interface Shape {
  kinds: Set<Kind>;
  /** Object samples merged: key → shape and how many of the merged objects had it. */
  keys: Map<string, { shape: Shape; count: number }>;
  objects: number;
  /** Array samples merged: every element's shape. */
  element: Shape | undefined;
}

function kindOf(v: unknown): Kind {
  if (v === null) return "null";
  if (Array.isArray(v)) return "array";
  return typeof v as Kind;
}

function emptyShape(): Shape {
  return { kinds: new Set(), keys: new Map(), objects: 0, element: undefined };
}

/** Adds one value to a merged shape (every element of an array merges into one element shape). */
function mergeInto(shape: Shape, v: unknown): Shape {
  const kind = kindOf(v);
  shape.kinds.add(kind);
  if (kind === "object") {
    shape.objects++;
    for (const [k, child] of Object.entries(v as Record<string, unknown>)) {
      const entry = shape.keys.get(k) ?? { shape: emptyShape(), count: 0 };
      entry.count++;
      mergeInto(entry.shape, child);
      shape.keys.set(k, entry);
    }
  } else if (kind === "array") {
    shape.element ??= emptyShape();
    for (const el of v as unknown[]) mergeInto(shape.element, el);
  }
  return shape;
}

export function shapeOf(...values: unknown[]): Shape {
  const s = emptyShape();
  for (const v of values) mergeInto(s, v);
  return s;
}

export interface ShapeOptions {
  /** Paths (dotted, arrays as []) of keys the served value may lack although every sample has them. */
  optional?: string[];
  /** Paths of keys the served value may carry although no sample has them (say why at the call). */
  extra?: string[];
}

/**
 * Differences between a served value and the merged shape of recorded samples: a served key no
 * sample has, a key every sample has that the served value lacks, or a different type.
 */
export function shapeDiff(served: unknown, sample: Shape, opts: ShapeOptions = {}, at = "$"): string[] {
  const out: string[] = [];
  const kind = kindOf(served);
  if (sample.kinds.size === 0) return out; // nothing recorded here (an empty array): no constraint
  if (!sample.kinds.has(kind)) return [`${at}: ${kind}, recorded ${[...sample.kinds].join("|")}`];
  if (kind === "object") {
    const obj = served as Record<string, unknown>;
    for (const [k, v] of Object.entries(obj)) {
      const p = `${at}.${k}`;
      const entry = sample.keys.get(k);
      if (!entry) {
        if (!opts.extra?.includes(p)) out.push(`${p}: not in the recording`);
        continue;
      }
      out.push(...shapeDiff(v, entry.shape, opts, p));
    }
    for (const [k, entry] of sample.keys) {
      const p = `${at}.${k}`;
      if (entry.count === sample.objects && !(k in obj) && !opts.optional?.includes(p))
        out.push(`${p}: missing (every recording has it)`);
    }
  } else if (kind === "array" && sample.element) {
    for (const el of served as unknown[]) out.push(...shapeDiff(el, sample.element, opts, `${at}[]`));
  }
  // Report each path once.
  return [...new Set(out)];
}

/** Convenience: the shape of named samples' bodies (the ones present). */
export function sampleShape(...names: string[]): Shape | undefined {
  const bodies = names
    .map(loadSample)
    .filter((s): s is RecordedSample => s !== undefined)
    .map((s) => s.body);
  return bodies.length > 0 ? shapeOf(...bodies) : undefined;
}
