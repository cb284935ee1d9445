// Gmail's post-push race: a message added moments ago (the push and the history record already
// out) can answer 404 to messages.get for a short while (byeokim/gmailpush#10; openclaw/gogcli#379,
// where gogcli added a 3 s delay before fetching). messages.list and history already show it.
// Which messages race is decided per message from the seed and its id, so a message that raced
// keeps answering 404 until its window ends and a run can be replayed; messages generated at start
// (addedAt 0) never race.
import type { StoredMessage } from "./mailbox.ts";
import type { Settings } from "./state.ts";

/** Whether `msg` still answers 404 at `now` (addedNotFoundRate, addedNotFoundWindowMs). */
export function answersNotFoundYet(
  settings: Pick<Settings, "addedNotFoundRate" | "addedNotFoundWindowMs">,
  seed: number,
  msg: Pick<StoredMessage, "id" | "addedAt">,
  now: number = Date.now(),
): boolean {
  const rate = settings.addedNotFoundRate;
  // Cheap checks first: nearly every request is for a message outside its window.
  if (rate <= 0 || msg.addedAt <= 0 || now >= msg.addedAt + settings.addedNotFoundWindowMs) return false;
  return unitHash(seed, msg.id) < rate;
}

/** A stable number in [0, 1) for (seed, id): FNV-1a over the id, then a murmur-style finaliser. */
export function unitHash(seed: number, id: string): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (let i = 0; i < id.length; i++) h = Math.imul(h ^ id.charCodeAt(i), 0x01000193) >>> 0;
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b) >>> 0;
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35) >>> 0;
  h ^= h >>> 16;
  return (h >>> 0) / 4294967296;
}
