import fc from "fast-check";
import { describe, expect, it } from "vitest";
import { MalformedPushError } from "../../src/errors.ts";
import { decodePushEnvelope } from "../../src/pubsub.ts";

const envelope = (data: unknown, extra: Record<string, unknown> = {}) => ({
  message: {
    data: typeof data === "string" ? data : Buffer.from(JSON.stringify(data)).toString("base64"),
    messageId: "2070443601311540",
    message_id: "2070443601311540",
    publishTime: "2021-02-26T19:13:55.749Z",
    ...extra,
  },
  subscription: "projects/p/subscriptions/s",
});

describe("decodePushEnvelope", () => {
  it("decodes Gmail's notification with a numeric or string historyId", () => {
    expect(decodePushEnvelope(envelope({ emailAddress: "Alice@Example.com", historyId: 1710 }))).toEqual({
      messageId: "2070443601311540",
      emailAddress: "alice@example.com",
      historyId: "1710",
      publishTime: "2021-02-26T19:13:55.749Z",
    });
    expect(decodePushEnvelope(envelope({ emailAddress: "a@b.c", historyId: "18446744073709551615" })).historyId).toBe(
      "18446744073709551615",
    );
  });

  it.each([
    ["no message", { subscription: "x" }, /bad envelope/],
    ["base64 garbage", envelope("!!!not base64***"), /not base64/],
    ["base64 of non-JSON", envelope(Buffer.from("hello").toString("base64")), /not JSON/],
    ["JSON without historyId", envelope({ emailAddress: "a@b.c" }), /historyId/],
    ["negative historyId", envelope({ emailAddress: "a@b.c", historyId: -1 }), /historyId/],
    ["historyId beyond uint64", envelope({ emailAddress: "a@b.c", historyId: "18446744073709551616" }), /uint64/],
    ["historyId as float", envelope({ emailAddress: "a@b.c", historyId: 1.5 }), /historyId/],
    ["not an email", envelope({ emailAddress: "nobody", historyId: 1 }), /emailAddress/],
    [
      "no messageId",
      { message: { data: Buffer.from('{"emailAddress":"a@b.c","historyId":1}').toString("base64") } },
      /messageId/,
    ],
  ])("rejects %s as malformed", (_name, body, pattern) => {
    expect(() => decodePushEnvelope(body)).toThrow(MalformedPushError);
    expect(() => decodePushEnvelope(body)).toThrow(pattern);
  });

  it("never throws anything but MalformedPushError, whatever the body (property)", () => {
    const data = fc.oneof(
      fc.string(),
      fc.base64String(),
      fc.jsonValue().map((v) => Buffer.from(JSON.stringify(v)).toString("base64")),
      fc
        .record({
          emailAddress: fc.oneof(fc.emailAddress(), fc.string()),
          historyId: fc.oneof(
            fc.bigInt({ min: -5n, max: 2n ** 65n }).map(String),
            fc.integer(),
            fc.double(),
            fc.string(),
          ),
        })
        .map((v) => Buffer.from(JSON.stringify(v)).toString("base64")),
    );
    const body = fc.oneof(
      fc.anything(),
      fc.record({
        message: fc.record({ data, messageId: fc.oneof(fc.string(), fc.constant(undefined)) }, { requiredKeys: [] }),
      }),
    );
    fc.assert(
      fc.property(body, (b) => {
        try {
          const n = decodePushEnvelope(b);
          // Whatever decodes is well-formed.
          expect(n.historyId).toMatch(/^\d+$/);
          expect(BigInt(n.historyId) < 2n ** 64n).toBe(true);
          expect(n.emailAddress).toBe(n.emailAddress.toLowerCase());
        } catch (err) {
          expect(err).toBeInstanceOf(MalformedPushError);
        }
      }),
      { numRuns: 2000, seed: 42 },
    );
  });
});
