// findReusableText against real Postgres: text rows and content-based skips are reused, limit-bound
// outcomes are not.
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { findReusableText } from "../../src/db/attachments.ts";
import { createTestDatabase, type TestDatabase } from "../helpers/database.ts";

let t: TestDatabase;
let messageId: number;
let part = 0;
const sum = (c: string) => c.repeat(64);

async function insert(
  checksum: string,
  fields: {
    extracted_text?: string | null;
    skipped_reason?: string | null;
    metadata?: Record<string, unknown>;
    detected_type?: string;
  },
) {
  await t.db
    .insertInto("attachments")
    .values({
      message_id: messageId,
      part_id: String(++part),
      checksum,
      extracted_text: fields.extracted_text ?? null,
      skipped_reason: fields.skipped_reason ?? null,
      detected_type: fields.detected_type ?? "application/pdf",
      metadata: JSON.stringify(fields.metadata ?? {}) as unknown as Record<string, unknown>,
    })
    .execute();
}

beforeAll(async () => {
  t = await createTestDatabase();
  const account = await t.db
    .insertInto("accounts")
    .values({ email: "reuse@example.com" })
    .returning("id")
    .executeTakeFirstOrThrow();
  const message = await t.db
    .insertInto("messages")
    .values({ account_id: account.id, gmail_id: "m1", thread_id: "t1" })
    .returning("id")
    .executeTakeFirstOrThrow();
  messageId = message.id;
});
afterAll(async () => {
  await t?.drop();
});

describe("findReusableText", () => {
  it("returns null for an unknown checksum", async () => {
    expect(await findReusableText(t.db, sum("0"))).toBeNull();
  });

  it("prefers a row with text over a later skip", async () => {
    await insert(sum("a"), { extracted_text: "quarterly text", metadata: { pages: 3 } });
    await insert(sum("a"), { skipped_reason: "corrupt" });
    expect(await findReusableText(t.db, sum("a"))).toEqual({
      text: "quarterly text",
      textTruncated: false,
      detectedType: "application/pdf",
      metadata: { pages: 3 },
      skippedReason: null,
    });
  });

  it("reuses content-based skips, never limit-bound ones", async () => {
    await insert(sum("b"), { skipped_reason: "encrypted" });
    expect(await findReusableText(t.db, sum("b"))).toMatchObject({ text: null, skippedReason: "encrypted" });
    await insert(sum("c"), { skipped_reason: "timeout" });
    await insert(sum("c"), { skipped_reason: "too_complex" });
    expect(await findReusableText(t.db, sum("c"))).toBeNull();
  });
});
