// users.watch / users.stop for one account. Gmail stops pushing silently when a watch lapses (a top
// complaint in other engines), so the expiry is stored per account, renewed daily by a tick job,
// exported as a metric, and backed by the polling safety net in src/maintenance.ts.
import type { Config } from "./config.ts";
import { getAccountEmailAndStatus } from "./db/accounts.ts";
import type { Db } from "./db/database.ts";
import { clearWatchExpiration, recordWatch } from "./db/sync-state.ts";
import { isGmailError } from "./errors.ts";
import type { GmailFactory } from "./gmail/port.ts";
import type { Logger } from "./log.ts";
import { watchRenewalsTotal } from "./metrics.ts";

export interface WatchDeps {
  db: Db;
  config: Config;
  log: Logger;
  gmailFactory: GmailFactory;
}

/** "throttled": the quota (ours or Gmail's) refused it for now — the caller retries it later. */
export type WatchOutcome = "renewed" | "not_configured" | "inactive" | "failed" | "throttled";

// Gmail allows one push client per user and developer project; another project's (or an old
// topic's) watch makes ours fail with this text. inbox-zero's answer, which we follow: stop, watch.
const ONE_CLIENT = /only one user push notification client/i;

/** Calls users.watch for the account and stores the expiration. Never throws for Gmail errors. */
export async function renewWatch(deps: WatchDeps, accountId: number): Promise<WatchOutcome> {
  const topicName = deps.config.PUBSUB_TOPIC;
  if (topicName === undefined) return "not_configured";
  const account = await getAccountEmailAndStatus(deps.db, accountId);
  // A reauth_required or disabled account's watch is left to lapse: the re-auth flow owns recovery.
  if (account === undefined || account.status !== "active") return "inactive";

  const request = {
    topicName,
    ...(deps.config.WATCH_LABEL_IDS.length > 0
      ? { labelIds: deps.config.WATCH_LABEL_IDS, labelFilterBehavior: "include" as const }
      : {}),
  };
  try {
    // Inside the try: building the port refreshes the token, and a revoked one must end here.
    const port = await deps.gmailFactory({ id: account.id, email: account.email });
    let answer;
    try {
      answer = await port.watch(request);
    } catch (err) {
      if (!(err instanceof Error) || !ONE_CLIENT.test(err.message)) throw err;
      deps.log.warn({ accountId }, "watch conflict (another push client); stopping and watching again");
      await port.stop();
      answer = await port.watch(request);
    }
    await recordWatch(deps.db, accountId, {
      expiration: new Date(Number(answer.expiration)),
      historyId: answer.historyId,
    });
    watchRenewalsTotal.inc({ outcome: "ok" });
    return "renewed";
  } catch (err) {
    watchRenewalsTotal.inc({ outcome: "failed" });
    const kind = isGmailError(err) ? err.kind : "unknown";
    deps.log.warn({ accountId, kind, err: err instanceof Error ? err.message : String(err) }, "watch renewal failed");
    // A fleet connecting at once spends 100 units a watch: under the project bucket some wait longer
    // than a call may. That is a "not yet", not a failure to forget until tomorrow's tick.
    return kind === "rate_limited" ? "throttled" : "failed";
  }
}

/** Best-effort users.stop (disconnect, reauth_required); clears the stored expiry either way. */
export async function stopWatch(deps: WatchDeps, accountId: number): Promise<void> {
  const account = await getAccountEmailAndStatus(deps.db, accountId);
  if (account === undefined) return;
  // Tried whatever the status: a reauth_required account may have lost a scope, not its token.
  if (deps.config.PUBSUB_TOPIC !== undefined) {
    try {
      const port = await deps.gmailFactory({ id: account.id, email: account.email });
      await port.stop();
    } catch (err) {
      // A revoked token cannot stop anything; Gmail lets the watch expire within 7 days.
      deps.log.warn(
        { accountId, err: err instanceof Error ? err.message : String(err) },
        "users.stop failed; the watch will lapse on its own",
      );
    }
  }
  await clearWatchExpiration(deps.db, accountId);
}
