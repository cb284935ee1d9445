// Live backfill progress for the demo: one bar per account on a TTY (cli-progress), plain lines at
// most every few seconds otherwise (CI logs, pipes), so the output stays readable either way.
import cliProgress from "cli-progress";

export interface AccountProgress {
  email: string;
  stored: number;
  total: number;
  attachments: number;
}

export interface ProgressSnapshot {
  accounts: AccountProgress[];
  /** Quota units spent per second over the last interval (from the emulator's stats). */
  quotaUnitsPerSecond: number;
}

export interface ProgressView {
  update(s: ProgressSnapshot): void;
  stop(): void;
}

function eta(stored: number, total: number, startedAt: number): string {
  if (stored === 0 || stored >= total) return stored >= total ? "done" : "…";
  const elapsed = (Date.now() - startedAt) / 1000;
  const seconds = Math.round(((total - stored) * elapsed) / stored);
  return seconds >= 60 ? `${Math.floor(seconds / 60)}m${String(seconds % 60).padStart(2, "0")}s` : `${seconds}s`;
}

export function createProgressView(opts: {
  tty: boolean;
  write?: (line: string) => void;
  plainIntervalMs?: number;
}): ProgressView {
  const startedAt = Date.now();
  const write = opts.write ?? ((line: string) => process.stdout.write(`${line}\n`));
  if (!opts.tty) {
    let last = 0;
    let lastLine = "";
    const interval = opts.plainIntervalMs ?? 2000;
    return {
      update(s) {
        const now = Date.now();
        const line = s.accounts
          .map(
            (a) =>
              `${a.email} ${a.stored}/${a.total} messages, ${a.attachments} attachments, eta ${eta(a.stored, a.total, startedAt)}`,
          )
          .join("; ");
        const done = s.accounts.every((a) => a.stored >= a.total);
        if (line === lastLine || (now - last < interval && !done)) return;
        last = now;
        lastLine = line;
        write(`backfill: ${line}; ${Math.round(s.quotaUnitsPerSecond)} quota units/s`);
      },
      stop() {},
    };
  }
  const multi = new cliProgress.MultiBar(
    {
      format: " {email} |{bar}| {value}/{total} messages | {attachments} attachments | {units} units/s | eta {etaText}",
      hideCursor: true,
      clearOnComplete: false,
      stopOnComplete: false,
      barsize: 30,
    },
    cliProgress.Presets.shades_classic,
  );
  const bars = new Map<string, cliProgress.SingleBar>();
  return {
    update(s) {
      for (const a of s.accounts) {
        const payload = {
          email: a.email.padEnd(22),
          attachments: a.attachments,
          units: Math.round(s.quotaUnitsPerSecond),
          etaText: eta(a.stored, a.total, startedAt),
        };
        let bar = bars.get(a.email);
        if (bar === undefined) {
          bar = multi.create(Math.max(a.total, 1), a.stored, payload);
          bars.set(a.email, bar);
        }
        bar.setTotal(Math.max(a.total, 1));
        bar.update(a.stored, payload);
      }
    },
    stop() {
      multi.stop();
    },
  };
}
