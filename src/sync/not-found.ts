// What a 404 on fetch is taken for, before a PreparedBatch is stored: a message Gmail has only just
// announced is asked for again (recheckMissing), and a batch where most ids answer 404 at once is
// taken for a broken endpoint rather than a mass deletion (assertPlausibleGone).
import { GmailError } from "../errors.ts";
import { type FetchDeps, fetchMessages, type PreparedBatch } from "./fetch-messages.ts";

/**
 * Gmail announces a new message (history, push, a listing) a moment before messages.get serves it
 * (byeokim/gmailpush#10, openclaw/gogcli#379, which added a 3 s delay to every fetch). Ids of
 * `prepared.gone` that `which` selects are asked again after these delays — only they wait, so a
 * sync without a 404 is never slowed. What comes back moves to records/failed; returns the ids
 * still answering 404 (left in `prepared.gone` for the caller to decide).
 */
const NOT_FOUND_RECHECK_MS = [250, 750, 1500];

export async function recheckMissing(
  deps: FetchDeps,
  prepared: PreparedBatch,
  which: (id: string) => boolean,
): Promise<string[]> {
  const missing = () => prepared.gone.filter(which);
  for (const delay of NOT_FOUND_RECHECK_MS) {
    const ids = missing();
    if (ids.length === 0 || prepared.abort !== undefined) break;
    await new Promise((r) => setTimeout(r, delay));
    const again = await fetchMessages(deps, ids);
    const asked = new Set(ids);
    prepared.gone = [...prepared.gone.filter((id) => !asked.has(id)), ...again.gone];
    prepared.records.push(...again.records);
    prepared.failed.push(...again.failed);
    prepared.incomplete.push(...again.incomplete);
    prepared.abort ??= again.abort;
  }
  return missing();
}

/**
 * Tripwire: a page or slice where most of what was just listed or announced answers 404 is far
 * likelier a broken endpoint or proxy than a mass deletion between listing and fetch. Such a batch
 * must not be committed (its "gone" ids would be soft-deleted); it fails transiently instead.
 */
const IMPLAUSIBLE_GONE_MIN = 20;
const IMPLAUSIBLE_GONE_SHARE = 0.5;

export function assertPlausibleGone(
  prepared: PreparedBatch,
  asked: number,
  explained: (id: string) => boolean = () => false,
): void {
  const gone = prepared.gone.filter((id) => !explained(id)).length;
  if (gone >= IMPLAUSIBLE_GONE_MIN && gone > asked * IMPLAUSIBLE_GONE_SHARE) {
    throw new GmailError(
      "transient",
      `${gone} of ${asked} messages answered 404 at once: not taken as deleted; the batch will be retried`,
      { reason: "implausibleNotFound" },
    );
  }
}
