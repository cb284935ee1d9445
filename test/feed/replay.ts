// The feed's consistency check, shared by the feed tests: replaying an account's changes from the
// start (added → a live message with its labels, labels_changed → apply the delta, deleted → gone,
// attachment.extracted → a part with text) must give back exactly the live messages, their labels
// and their attachments with text in the database — no change without its row, no row without its
// change — and every change must really change something (no add of a live message, no delta that
// is already applied, no deletion of what is not live).
import { expect } from "vitest";
import type { Db } from "../../src/db/database.ts";
import { readFeedPage } from "../../src/feed/read.ts";

export async function expectFeedMatchesDatabase(db: Db, accountId: number): Promise<{ changes: number; live: number }> {
  const { changes } = await readFeedPage(db, { after: 0, limit: 10_000_000, accountId });
  const live = new Map<string, Set<string>>();
  const texts = new Map<string, Set<string>>();
  for (const c of changes) {
    const id = c.gmailId ?? "";
    const where = `seq ${c.seq} ${c.kind} ${id}`;
    switch (c.kind) {
      case "message.added":
        expect(live.has(id), `${where}: added while live`).toBe(false);
        live.set(id, new Set(c.labelsAdded ?? []));
        texts.set(id, new Set());
        break;
      case "message.deleted":
        expect(live.has(id), `${where}: deleted while not live`).toBe(true);
        live.delete(id);
        texts.delete(id);
        break;
      case "message.labels_changed": {
        const labels = live.get(id);
        expect(labels, `${where}: relabelled while not live`).toBeDefined();
        expect((c.labelsAdded?.length ?? 0) + (c.labelsRemoved?.length ?? 0), `${where}: empty delta`).toBeGreaterThan(
          0,
        );
        for (const l of c.labelsAdded ?? []) {
          expect(labels?.has(l), `${where}: +${l} already there`).toBe(false);
          labels?.add(l);
        }
        for (const l of c.labelsRemoved ?? []) {
          expect(labels?.has(l), `${where}: -${l} not there`).toBe(true);
          labels?.delete(l);
        }
        break;
      }
      case "attachment.extracted":
        expect(live.has(id), `${where}: extracted for a message not live`).toBe(true);
        texts.get(id)?.add(c.partId ?? "");
        break;
      default:
        break;
    }
  }
  const rows = await db
    .selectFrom("messages")
    .select(["id", "gmail_id", "label_ids"])
    .where("account_id", "=", accountId)
    .where("deleted_at", "is", null)
    .execute();
  const sorted = (m: Map<string, Set<string>>) =>
    Object.fromEntries(
      [...m].map(([k, v]) => [k, [...v].sort()]).sort(([a], [b]) => String(a).localeCompare(String(b))),
    );
  expect(sorted(live), "replayed labels vs database").toEqual(
    sorted(new Map(rows.map((r) => [r.gmail_id, new Set(r.label_ids)]))),
  );
  const attachments = await db
    .selectFrom("attachments")
    .innerJoin("messages", "messages.id", "attachments.message_id")
    .select(["messages.gmail_id", "attachments.part_id"])
    .where("messages.account_id", "=", accountId)
    .where("messages.deleted_at", "is", null)
    .where("attachments.extracted_text", "is not", null)
    .execute();
  const withText = new Map<string, Set<string>>();
  for (const a of attachments) withText.set(a.gmail_id, (withText.get(a.gmail_id) ?? new Set()).add(a.part_id));
  const replayedText = new Map([...texts].filter(([, parts]) => parts.size > 0));
  expect(sorted(replayedText), "replayed attachment texts vs database").toEqual(sorted(withText));
  return { changes: changes.length, live: live.size };
}
