// A small pool of long-lived extraction child processes. Worker threads are not enough: pdf.js and
// zip buffers live outside the V8 heap that resourceLimits caps (measured: 2.9 GB for a PDF image
// bomb). Each child runs one extraction at a time under a parent-side RSS watchdog (kill →
// too_complex) and a wall-clock kill (→ timeout); a killed child is replaced, and every child is
// recycled after N files so slow leaks in the parsers never accumulate. Children run sandboxed
// (scrubbed environment, Node's permission model): see child-spawn.ts.
import type { ChildProcess } from "node:child_process";
import { readFile } from "node:fs/promises";
import os from "node:os";
import type { Logger } from "../log.ts";
import { extractChildrenKilledTotal, syncErrorsTotal } from "../metrics.ts";
import { childSpawnSpec, forkExtractChild } from "./child-spawn.ts";
import type { ChildMessage, ExtractOutcome, ExtractRequest, ParentMessage } from "./protocol.ts";

export interface PoolOptions {
  size: number;
  rssLimitMb: number;
  timeoutMs: number;
  recycleAfter: number;
  log: Logger;
  /** How often busy children's RSS is sampled. */
  watchIntervalMs?: number;
  /** The Node binary for the children; the parent's own by default (tests point it elsewhere). */
  execPath?: string;
  /** ATTACHMENT_TEMP_DIR: the one data directory children may read (temp-file route). */
  tempDir?: string;
  /** More read-only directories for these children (the OCR language data). */
  readDirs?: string[];
  /**
   * A child whose RSS after a job is above this is replaced (half the RSS cap by default):
   * WebAssembly memory (PDFium, tesseract) grows with the largest document and never shrinks.
   */
  recycleAboveMb?: number;
  /** Scheduling niceness of the children (0 = the worker's own; OCR children run at 10). */
  nice?: number;
}

export type PoolOutcome = Omit<ExtractOutcome, "skippedReason"> & {
  skippedReason: ExtractOutcome["skippedReason"] | "timeout";
};

export interface ExtractPool {
  run(request: ExtractRequest): Promise<PoolOutcome>;
  close(): Promise<void>;
  /** Pids of the live children (tests and the benchmark sample them). */
  pids(): number[];
}

interface Job {
  id: number;
  kind: ExtractRequest["kind"];
  detectedType: string;
  /** Dropped once handed to the child, so the parent does not hold the bytes during extraction. */
  request: ExtractRequest | null;
  resolve: (outcome: PoolOutcome) => void;
  reject: (err: Error) => void;
  timer?: NodeJS.Timeout;
}

interface Slot {
  child: ChildProcess;
  ready: boolean;
  job: Job | null;
  served: number;
  retiring: boolean;
  kill: { reason: "timeout" | "memory"; detail: string } | null;
  peakRssMb: number;
}

const MAX_START_FAILURES = 5;
const START_TIMEOUT_MS = 30_000;

/** Resident set size of a process in MB from /proc (Linux); null when unavailable. */
export async function rssMb(pid: number): Promise<number | null> {
  try {
    const status = await readFile(`/proc/${pid}/status`, "utf8");
    const m = /^VmRSS:\s+(\d+)\s+kB/m.exec(status);
    return m ? Number(m[1]) / 1024 : null;
  } catch {
    return null;
  }
}

export function createExtractPool(opts: PoolOptions): ExtractPool {
  const slots = new Set<Slot>();
  const queue: Job[] = [];
  let nextId = 1;
  let closing = false;
  let startFailures = 0;
  const exits = new Set<Promise<void>>();
  // Scrubbed environment and Node's permission model, built once (a missing temp dir fails here):
  // child-spawn.ts says what is and is not restricted.
  const spec = childSpawnSpec({
    rssLimitMb: opts.rssLimitMb,
    tempDir: opts.tempDir,
    execPath: opts.execPath,
    readDirs: opts.readDirs,
  });
  const recycleAboveMb = opts.recycleAboveMb ?? opts.rssLimitMb / 2;

  function outcomeFor(job: Job, skippedReason: PoolOutcome["skippedReason"], reason: string): PoolOutcome {
    return {
      text: null,
      textTruncated: false,
      detectedType: job.detectedType,
      extractor: job.kind,
      extractorVersion: null,
      skippedReason,
      details: { reason },
    };
  }

  function spawn(): void {
    const child = forkExtractChild(spec);
    if (opts.nice && child.pid !== undefined) {
      try {
        // Lower priority only: raising niceness needs no privilege.
        os.setPriority(child.pid, opts.nice);
      } catch (err) {
        opts.log.warn({ err: (err as Error).message }, "could not lower an extraction child's priority");
      }
    }
    const slot: Slot = { child, ready: false, job: null, served: 0, retiring: false, kill: null, peakRssMb: 0 };
    slots.add(slot);
    let resolveExit!: () => void;
    const exited = new Promise<void>((r) => (resolveExit = r));
    exits.add(exited);

    // A child that never reports ready (stuck loading) is killed and counted as a start failure.
    const startTimer = setTimeout(() => {
      if (!slot.ready) child.kill("SIGKILL");
    }, START_TIMEOUT_MS);
    startTimer.unref();
    child.on("message", (message: ChildMessage) => {
      if (message.type === "ready") {
        clearTimeout(startTimer);
        slot.ready = true;
        startFailures = 0;
        dispatch();
        return;
      }
      const job = slot.job;
      if (!job || job.id !== message.id || slot.kill) return;
      clearTimeout(job.timer);
      slot.job = null;
      slot.served++;
      job.resolve(message.outcome);
      if (slot.served >= opts.recycleAfter || message.recycle || (message.rssMb ?? 0) > recycleAboveMb) retire(slot);
      dispatch();
    });
    child.on("error", (err) => {
      opts.log.warn({ err: err.message }, "extraction child error");
      // A child that could not be spawned at all never emits "exit".
      if (child.pid === undefined) gone(null, null);
    });
    child.on("exit", (code, signal) => gone(code, signal));
    let isGone = false;
    function gone(code: number | null, signal: NodeJS.Signals | null): void {
      if (isGone) return;
      isGone = true;
      clearTimeout(startTimer);
      slots.delete(slot);
      exits.delete(exited);
      resolveExit();
      const job = slot.job;
      slot.job = null;
      if (job) {
        clearTimeout(job.timer);
        if (closing && !slot.kill) {
          job.reject(new Error("extraction pool is closed"));
        } else if (slot.kill) {
          extractChildrenKilledTotal.inc({ reason: slot.kill.reason });
          syncErrorsTotal.inc({ error_type: "extract" });
          job.resolve(outcomeFor(job, slot.kill.reason === "timeout" ? "timeout" : "too_complex", slot.kill.detail));
        } else {
          // Died on its own: V8 heap exhaustion (abort) or a native crash inside a parser.
          extractChildrenKilledTotal.inc({ reason: "crashed" });
          syncErrorsTotal.inc({ error_type: "extract" });
          job.resolve(outcomeFor(job, "too_complex", `extractor crashed (${signal ?? `exit ${code}`})`));
        }
        if (!slot.kill && !closing) opts.log.warn({ code, signal, kind: job.kind }, "extraction child crashed");
      }
      if (!slot.ready && !slot.retiring && !closing) {
        startFailures++;
        opts.log.error({ code, signal }, "extraction child failed to start");
      }
      if (closing) return;
      if (startFailures >= MAX_START_FAILURES) {
        for (const queued of queue.splice(0)) queued.reject(new Error("extraction children fail to start"));
        return;
      }
      if (slots.size < opts.size) spawn();
      dispatch();
    }
  }

  function retire(slot: Slot): void {
    slot.retiring = true;
    slots.delete(slot); // no new work; the exit handler spawns the replacement
    const message: ParentMessage = { type: "exit" };
    if (slot.child.connected) slot.child.send(message);
    else slot.child.kill("SIGKILL");
    if (!closing) spawn();
  }

  function kill(slot: Slot, reason: "timeout" | "memory", detail: string): void {
    if (slot.kill) return;
    slot.kill = { reason, detail };
    slot.child.kill("SIGKILL");
  }

  function dispatch(): void {
    for (const slot of slots) {
      if (queue.length === 0) return;
      if (!slot.ready || slot.job || slot.retiring || slot.kill || !slot.child.connected) continue;
      // Not empty: checked above.
      const job = queue.shift() as Job;
      slot.job = job;
      job.timer = setTimeout(() => kill(slot, "timeout", `no result within ${opts.timeoutMs} ms`), opts.timeoutMs);
      const message: ParentMessage = { type: "extract", id: job.id, request: job.request as ExtractRequest };
      job.request = null;
      slot.child.send(message, (err) => {
        // The channel broke (the child is dying): its exit handler answers the job as crashed.
        if (err) slot.child.kill("SIGKILL");
      });
    }
  }

  // The watchdog samples only busy children: an idle child's RSS does not grow.
  let sampling = false;
  const watchdog = setInterval(async () => {
    if (sampling) return;
    sampling = true;
    try {
      for (const slot of slots) {
        if (!slot.job || slot.kill || slot.child.pid === undefined) continue;
        const mb = await rssMb(slot.child.pid);
        if (mb === null) continue;
        slot.peakRssMb = Math.max(slot.peakRssMb, mb);
        if (mb > opts.rssLimitMb) kill(slot, "memory", `RSS ${Math.round(mb)} MB over the ${opts.rssLimitMb} MB cap`);
      }
    } finally {
      sampling = false;
    }
  }, opts.watchIntervalMs ?? 50);
  watchdog.unref();

  for (let i = 0; i < opts.size; i++) spawn();

  return {
    run(request) {
      if (closing) return Promise.reject(new Error("extraction pool is closed"));
      // The children stopped starting (fork failing under memory pressure, a broken install): each
      // new job gets one more attempt instead of the pool staying dead until the worker restarts.
      if (startFailures >= MAX_START_FAILURES) {
        startFailures = MAX_START_FAILURES - 1;
        while (slots.size < opts.size) spawn();
      }
      return new Promise<PoolOutcome>((resolve, reject) => {
        queue.push({ id: nextId++, kind: request.kind, detectedType: request.detectedType, request, resolve, reject });
        dispatch();
      });
    },
    pids() {
      return [...slots].map((s) => s.child.pid).filter((p): p is number => p !== undefined);
    },
    async close() {
      if (closing) return Promise.all([...exits]).then(() => {});
      closing = true;
      clearInterval(watchdog);
      for (const job of queue.splice(0)) job.reject(new Error("extraction pool is closed"));
      for (const slot of slots) {
        if (slot.job || !slot.child.connected) slot.child.kill("SIGKILL");
        else slot.child.send({ type: "exit" } satisfies ParentMessage);
      }
      const all = Promise.all([...exits]);
      const forced = setTimeout(() => {
        for (const slot of slots) slot.child.kill("SIGKILL");
      }, 2000);
      await all;
      clearTimeout(forced);
    },
  };
}
