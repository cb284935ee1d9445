// What the sync runs need, passed in by the worker (built once in src/app.ts).
import type { Redis } from "ioredis";
import type { AttachmentPipeline } from "../attachments/types.ts";
import type { Config } from "../config.ts";
import { getAccountEmailAndStatus } from "../db/accounts.ts";
import type { Db } from "../db/database.ts";
import type { GmailFactory, GmailPort } from "../gmail/port.ts";
import type { Queues } from "../jobs.ts";
import type { Logger } from "../log.ts";

export interface SyncDeps {
  db: Db;
  redis: Redis;
  queues: Queues;
  gmailFactory: GmailFactory;
  pipeline: AttachmentPipeline;
  log: Logger;
  config: Pick<
    Config,
    | "BACKFILL_QUERY"
    | "BACKFILL_LABEL_IDS"
    | "INCLUDE_SPAM_TRASH"
    | "BACKFILL_FETCH_THREADS"
    | "BACKFILL_ROUND_SECONDS"
    | "GMAIL_PROJECT_QUOTA_UNITS_PER_MINUTE"
    | "CHANGE_FEED"
  >;
}

export type SyncSkip = {
  skipped: "account_inactive" | "no_account" | "no_cursor" | "nothing_to_resume" | "run_restarted";
};

/** The account's Gmail port, or a skip when the account is gone or not active (no Gmail calls). */
export async function activeAccountPort(
  deps: SyncDeps,
  accountId: number,
): Promise<{ gmail: GmailPort; email: string } | SyncSkip> {
  const account = await getAccountEmailAndStatus(deps.db, accountId);
  if (account === undefined) return { skipped: "no_account" };
  if (account.status !== "active") return { skipped: "account_inactive" };
  return { gmail: await deps.gmailFactory({ id: account.id, email: account.email }), email: account.email };
}
