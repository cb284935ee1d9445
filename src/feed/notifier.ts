// What wakes a change-feed follower: Postgres NOTIFY on every commit that wrote changes, heard on
// a dedicated LISTEN connection (src/db/changes.ts). When that connection fails, followers fall
// back to polling every `pollMs` while it reconnects, and are woken once it is back (they re-read,
// so nothing committed meanwhile is missed: the cursor, not the notification, says what is new).
import { listenForChanges, type ChangeListener } from "../db/changes.ts";
import type { Logger } from "../log.ts";

export interface ChangeNotifier {
  /** Increases on every notification (and on every reconnect or loss, which also call for a read). */
  readonly version: number;
  /** Whether LISTEN is connected (false: followers poll). */
  readonly listening: boolean;
  readonly closed: boolean;
  /**
   * Resolves once `version` is past `since` (read it before reading the feed, so that a commit in
   * between is not missed), after `maxMs` (capped at the polling interval while LISTEN is down),
   * or when the notifier closes or `signal` aborts.
   */
  wait(since: number, maxMs: number, signal?: AbortSignal): Promise<void>;
  close(): Promise<void>;
}

export function createChangeNotifier(
  databaseUrl: string,
  opts: { log?: Pick<Logger, "warn" | "info">; pollMs?: number; reconnectMs?: number } = {},
): ChangeNotifier {
  const pollMs = opts.pollMs ?? 1_000;
  const reconnectMs = opts.reconnectMs ?? 2_000;
  const waiters = new Set<() => void>();
  let version = 0;
  let listener: ChangeListener | undefined;
  let listening = false;
  let closed = false;
  let reconnect: NodeJS.Timeout | undefined;
  let lostLogged = false;

  const bump = () => {
    version++;
    for (const w of [...waiters]) w();
  };

  const connect = async () => {
    reconnect = undefined;
    if (closed) return;
    try {
      let lostAlready = false;
      const l = await listenForChanges(databaseUrl, {
        onNotify: bump,
        onLost: (err) => {
          lostAlready = true;
          listening = false;
          void listener?.close();
          listener = undefined;
          if (!lostLogged) opts.log?.warn({ err: err.message }, "change feed LISTEN lost: polling until it is back");
          lostLogged = true;
          bump();
          schedule();
        },
      });
      if (closed || lostAlready) {
        await l.close();
        return;
      }
      listener = l;
      listening = true;
      if (lostLogged) opts.log?.info({}, "change feed LISTEN connected again");
      lostLogged = false;
      bump(); // whatever committed while not listening is read now
    } catch (err) {
      if (!lostLogged) opts.log?.warn({ err: (err as Error).message }, "change feed LISTEN failed: polling meanwhile");
      lostLogged = true;
      schedule();
    }
  };
  const schedule = () => {
    if (!closed && reconnect === undefined) reconnect = setTimeout(() => void connect(), reconnectMs);
  };
  const started = connect();

  return {
    get version() {
      return version;
    },
    get listening() {
      return listening;
    },
    get closed() {
      return closed;
    },
    wait(since, maxMs, signal) {
      if (closed || version > since || signal?.aborted) return Promise.resolve();
      return new Promise<void>((resolve) => {
        const done = () => {
          clearTimeout(timer);
          waiters.delete(done);
          signal?.removeEventListener("abort", done);
          resolve();
        };
        const timer = setTimeout(done, listening ? maxMs : Math.min(maxMs, pollMs));
        waiters.add(done);
        signal?.addEventListener("abort", done, { once: true });
      });
    },
    async close() {
      if (closed) return;
      closed = true;
      clearTimeout(reconnect);
      await started;
      for (const w of [...waiters]) w();
      await listener?.close();
      listener = undefined;
      listening = false;
    },
  };
}
