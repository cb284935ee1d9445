import { describe, expect, it } from "vitest";
import { loadConfig } from "../../src/config.ts";
import { ConfigError } from "../../src/errors.ts";

describe("config", () => {
  it("has working defaults for a developer machine", () => {
    const c = loadConfig({});
    expect(c.DATABASE_URL).toBe("postgres://postgres@127.0.0.1:5432/gmail_sync");
    expect(c.REDIS_URL).toBe("redis://127.0.0.1:6379");
    expect(c.GMAIL_QUOTA_UNITS_PER_SECOND).toBe(250);
    expect(c.ATTACHMENT_MEMORY_MAX_BYTES).toBe(10 * 1024 * 1024);
    expect(Object.isFrozen(c)).toBe(true);
  });

  it("names every bad variable in one error", () => {
    let err: unknown;
    try {
      loadConfig({ DATABASE_URL: "mysql://x/y", REDIS_URL: "nope", HTTP_PORT: "70000" });
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/DATABASE_URL/);
    expect(msg).toMatch(/REDIS_URL/);
    expect(msg).toMatch(/HTTP_PORT/);
    expect(msg.split("\n")).toHaveLength(1);
  });

  it("parses numbers, booleans and lists", () => {
    const c = loadConfig({
      GMAIL_QUOTA_UNITS_PER_SECOND: "50",
      INCLUDE_SPAM_TRASH: "true",
      WATCH_LABEL_IDS: "INBOX, UNREAD,",
    });
    expect(c.GMAIL_QUOTA_UNITS_PER_SECOND).toBe(50);
    expect(c.INCLUDE_SPAM_TRASH).toBe(true);
    expect(c.WATCH_LABEL_IDS).toEqual(["INBOX", "UNREAD"]);
  });

  it("rejects a queue prefix with a colon (BullMQ job keys would break)", () => {
    expect(() => loadConfig({ QUEUE_PREFIX: "a:b" })).toThrow(/QUEUE_PREFIX/);
  });
});
