// Search over stored messages and attachment text: ranking, account filter, deleted mail hidden,
// highlighted snippets, and the CLI's JSON and error paths.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { searchMessages } from "../../src/db/search.ts";
import { runCli } from "../helpers/cli.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";

let t: TestDatabase;
let alice: number;
let bob: number;

async function message(
  accountId: number,
  gmailId: string,
  fields: {
    subject?: string;
    body?: string;
    deleted?: boolean;
    labels?: string[];
    attachment?: { filename: string; text: string };
  },
) {
  const { id } = await t.db
    .insertInto("messages")
    .values({
      account_id: accountId,
      gmail_id: gmailId,
      thread_id: `t${gmailId}`,
      subject: fields.subject ?? null,
      body_text: fields.body ?? null,
      from_address: "sender@example.com",
      internal_date: new Date("2026-01-02T03:04:05Z"),
      deleted_at: fields.deleted ? new Date() : null,
      ...(fields.labels ? { label_ids: fields.labels } : {}),
    })
    .returning("id")
    .executeTakeFirstOrThrow();
  if (fields.attachment) {
    await t.db
      .insertInto("attachments")
      .values({
        message_id: id,
        part_id: "1",
        filename: fields.attachment.filename,
        extracted_text: fields.attachment.text,
        mime_type: "application/pdf",
      })
      .execute();
  }
}

beforeAll(async () => {
  t = await createTestDatabase();
  alice = (
    await t.db.insertInto("accounts").values({ email: "alice@example.com" }).returning("id").executeTakeFirstOrThrow()
  ).id;
  bob = (
    await t.db.insertInto("accounts").values({ email: "bob@example.com" }).returning("id").executeTakeFirstOrThrow()
  ).id;
  await message(alice, "m1", {
    subject: "Quarterly zebrafish report",
    body: "The zebrafish numbers are up. zebrafish zebrafish",
  });
  await message(alice, "m2", {
    subject: "Lunch",
    body: "see attached",
    attachment: {
      filename: "minutes.pdf",
      text: "Board minutes: the zebrafish budget was approved after a long debate about aquariums.",
    },
  });
  await message(alice, "m3", { subject: "zebrafish (deleted)", body: "zebrafish", deleted: true });
  await message(bob, "m4", { subject: "Other zebrafish", body: "one mention" });
  await message(alice, "m5", { subject: "Unrelated", body: "nothing to see" });
  await message(alice, "m6", { subject: "Trashed quokka", body: "quokka", labels: ["TRASH"] });
  await message(alice, "m7", { subject: "Spam quokka", body: "quokka", labels: ["SPAM", "UNREAD"] });
  await message(alice, "m8", { subject: "Inbox quokka", body: "quokka", labels: ["INBOX"] });
});
afterAll(() => t?.drop());

describe("searchMessages", () => {
  it("finds matches in bodies and attachment text, ranked, without deleted mail", async () => {
    const hits = await searchMessages(t.db, "zebrafish", { limit: 10 });
    expect(hits.map((h) => h.gmailId).sort()).toEqual(["m1", "m2", "m4"]);
    expect(hits[0]?.gmailId).toBe("m1"); // most occurrences, and in the subject
    const viaAttachment = hits.find((h) => h.gmailId === "m2");
    expect(viaAttachment?.attachment).toBe("minutes.pdf");
    expect(viaAttachment?.snippet).toContain("**zebrafish**");
    expect(viaAttachment?.date).toBe("2026-01-02T03:04:05.000Z");
  });

  it("leaves Spam and Trash out unless asked, as Gmail's search does", async () => {
    expect((await searchMessages(t.db, "quokka", { limit: 10 })).map((h) => h.gmailId)).toEqual(["m8"]);
    expect(
      (await searchMessages(t.db, "quokka", { limit: 10, includeSpamTrash: true })).map((h) => h.gmailId).sort(),
    ).toEqual(["m6", "m7", "m8"]);
  });

  it("filters by account, honours the limit, and supports web-search syntax", async () => {
    expect((await searchMessages(t.db, "zebrafish", { limit: 10, accountId: bob })).map((h) => h.gmailId)).toEqual([
      "m4",
    ]);
    expect(await searchMessages(t.db, "zebrafish", { limit: 1 })).toHaveLength(1);
    expect(
      (await searchMessages(t.db, "zebrafish -budget", { limit: 10, accountId: alice })).map((h) => h.gmailId),
    ).toEqual(["m1"]);
    expect(await searchMessages(t.db, '"budget approved" OR nonexistentword', { limit: 10 })).toEqual([]);
  });
});

describe("gmail-sync search", () => {
  it("prints JSON hits", async () => {
    const r = await runCli(["search", "aquariums", "--json"], { DATABASE_URL: t.url });
    expect(r.stderr).toBe("");
    expect(r.code).toBe(0);
    const hits = JSON.parse(r.stdout) as Array<{ gmailId: string; account: string; attachment: string }>;
    expect(hits).toEqual([
      expect.objectContaining({ gmailId: "m2", account: "alice@example.com", attachment: "minutes.pdf" }),
    ]);
  });

  it("prints readable lines", async () => {
    const r = await runCli(["search", "zebrafish", "--account", "BOB@example.com"], { DATABASE_URL: t.url });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("2026-01-02  sender@example.com  Other zebrafish");
    expect(r.stdout).toContain("one mention");
  });

  it("never prints terminal control sequences from mail", async () => {
    await message(bob, "m6", {
      subject: "evil \u001b]0;pwned\u0007 \u001b[31mred",
      body: "escapist payload \u001b[2J",
    });
    const r = await runCli(["search", "escapist"], { DATABASE_URL: t.url });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain("evil");
    expect(r.stdout).not.toMatch(/[\u0000-\u0008\u000b-\u001f\u007f]/);
  });

  it.each([
    [["search", "x", "--account", "nobody@example.com"], /^gmail-sync: unknown account nobody@example.com$/],
    [["search", "x", "--limit", "zero"], /--limit.*must be an integer/],
  ])("fails with one line and exit 1: %j", async (args, pattern) => {
    const r = await runCli(args, { DATABASE_URL: t.url });
    expect(r.code).toBe(1);
    expect(r.stderr.trim()).toMatch(pattern);
  });
});
