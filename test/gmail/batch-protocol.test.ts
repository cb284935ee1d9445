// The batch format on its own (client.test.ts sends it to the emulator over HTTP): the request body
// we build, and the parser's edge cases — answers matched by Content-ID, CRLF and LF, quoted
// boundaries, parts that failed on their own, and responses that are not a batch answer at all.
import { describe, expect, it } from "vitest";
import { GmailError } from "../../src/errors.ts";
import { buildBatchRequest, parseBatchResponse } from "../../src/gmail/batch-protocol.ts";

/** One part of a batch answer, framed as Google frames it. */
function part(boundary: string, contentId: string, inner: string, eol = "\r\n"): string {
  return [`--${boundary}`, "Content-Type: application/http", `Content-ID: ${contentId}`, "", inner, ""].join(eol);
}

function inner(status: string, headers: string[], body: string, eol = "\r\n"): string {
  return [`HTTP/1.1 ${status}`, ...headers, "", body].join(eol);
}

const JSON_CT = "Content-Type: application/json; charset=UTF-8";
const NOT_FOUND = JSON.stringify({
  error: {
    code: 404,
    message: "Requested entity was not found.",
    errors: [{ reason: "notFound" }],
    status: "NOT_FOUND",
  },
});
const TOO_MANY = JSON.stringify({
  error: { code: 429, message: "Too many concurrent requests for user", errors: [{ reason: "rateLimitExceeded" }] },
});

/**
 * What a batch endpoint does with our request, reduced to the framing: reads each part's
 * Content-ID and request line and answers them in reverse order, echoing the path.
 */
function answerInReverse(req: { contentType: string; body: string }, boundary: string): string {
  const inBoundary = /boundary=([^;\s]+)/.exec(req.contentType)?.[1] ?? "";
  const parts = req.body
    .split(`--${inBoundary}`)
    .slice(1, -1)
    .map((p) => ({ id: /Content-ID: <([^>]+)>/.exec(p)?.[1] ?? "", path: /\r\n\r\nGET (\S+)\r\n/.exec(p)?.[1] ?? "" }));
  return `${parts
    .reverse()
    .map((p) => part(boundary, `<response-${p.id}>`, inner("200 OK", [JSON_CT], JSON.stringify({ path: p.path }))))
    .join("\r\n")}\r\n--${boundary}--\r\n`;
}

describe("buildBatchRequest", () => {
  it("one application/http GET per path, Content-ID <item-i>, CRLF line ends, the closing delimiter", () => {
    const paths = ["/gmail/v1/users/me/messages/a?format=full", "/gmail/v1/users/me/messages/b"];
    const req = buildBatchRequest(paths, "bnd");
    expect(req.contentType).toBe("multipart/mixed; boundary=bnd");
    expect(req.body).toBe(
      "--bnd\r\nContent-Type: application/http\r\nContent-ID: <item-0>\r\n\r\n" +
        "GET /gmail/v1/users/me/messages/a?format=full\r\nAccept: application/json\r\n\r\n" +
        "--bnd\r\nContent-Type: application/http\r\nContent-ID: <item-1>\r\n\r\n" +
        "GET /gmail/v1/users/me/messages/b\r\nAccept: application/json\r\n\r\n" +
        "--bnd--\r\n",
    );
  });

  it("a fresh random boundary per request, absent from the body's content", () => {
    const a = buildBatchRequest(["/x"]);
    const b = buildBatchRequest(["/x"]);
    expect(a.contentType).not.toBe(b.contentType);
    expect(a.contentType).toMatch(/^multipart\/mixed; boundary=batch_[0-9a-f]{24}$/);
  });

  it("round trip: answers in any order come back in request order", () => {
    const ids = Array.from({ length: 30 }, (_, i) => i.toString(16).padStart(16, "0"));
    const paths = ids.map((id) => `/gmail/v1/users/me/messages/${id}?format=full`);
    const req = buildBatchRequest(paths);
    const subs = parseBatchResponse(answerInReverse(req, "resp_1"), "multipart/mixed; boundary=resp_1", paths.length);
    expect(subs.map((s) => s.status)).toEqual(paths.map(() => 200));
    expect(subs.map((s) => (s.data as { path: string }).path)).toEqual(paths);
  });
});

describe("parseBatchResponse", () => {
  it("reads CRLF parts, maps Content-ID response-item-N to request order", () => {
    const b = "batch_abc";
    const text = [
      part(b, "<response-item-1>", inner("404 Not Found", [JSON_CT], NOT_FOUND)),
      part(b, "<response-item-0>", inner("200 OK", [JSON_CT], `{"id":"a","threadId":"a"}`)),
      part(b, "<response-item-2>", inner("429 Too Many Requests", ["Retry-After: 2", JSON_CT], TOO_MANY)),
      `--${b}--\r\n`,
    ].join("");
    const subs = parseBatchResponse(text, `multipart/mixed; boundary=${b}`, 3);
    expect(subs.map((s) => s.status)).toEqual([200, 404, 429]);
    expect(subs[0]?.data).toEqual({ id: "a", threadId: "a" });
    expect(subs[2]?.headers["retry-after"]).toBe("2");
  });

  it("accepts LF line ends and a quoted boundary; a missing part is reported as status 0", () => {
    const text = `${part("x", "<response-0>", inner("200 OK", [JSON_CT], `{"id":"z"}`, "\n"), "\n")}--x--\n`;
    const subs = parseBatchResponse(text, 'multipart/mixed; boundary="x"', 2);
    expect(subs[0]?.status).toBe(200);
    expect(subs[0]?.data).toEqual({ id: "z" });
    expect(subs[1]?.status).toBe(0);
  });

  it("a part's own error status comes with its headers and Gmail's error body, a non-JSON body as text", () => {
    const b = "b";
    const html = "<html><body>Bad Gateway</body></html>";
    const text = [
      part(b, "<response-item-0>", inner("404 Not Found", [JSON_CT], NOT_FOUND)),
      part(b, "<response-item-1>", inner("502 Bad Gateway", ["Content-Type: text/html"], html)),
      part(b, "<response-item-2>", inner("429 Too Many Requests", ["Retry-After: 7", JSON_CT], TOO_MANY)),
      `--${b}--\r\n`,
    ].join("");
    const [notFound, badGateway, limited] = parseBatchResponse(text, `multipart/mixed; boundary=${b}`, 3);
    expect(notFound).toMatchObject({ status: 404, data: JSON.parse(NOT_FOUND) });
    expect(badGateway).toMatchObject({ status: 502, data: html, headers: { "content-type": "text/html" } });
    expect(limited).toMatchObject({ status: 429, headers: { "retry-after": "7" }, data: JSON.parse(TOO_MANY) });
  });

  it("parts without Content-IDs are read in order", () => {
    const parts = [`{"n":0}`, `{"n":1}`].map((body) => part("b", "", inner("200 OK", [JSON_CT], body)));
    const text = `${parts.join("")}--b--`;
    const subs = parseBatchResponse(text, "multipart/mixed; boundary=b", 2);
    expect(subs.map((s) => s.data)).toEqual([{ n: 0 }, { n: 1 }]);
  });

  it("a response that is not a batch answer: no boundary throws transient; parts it lacks are status 0", () => {
    const page = "<!DOCTYPE html><html><body>Error 404 (Not Found)!!1</body></html>";
    const thrown = (() => {
      try {
        parseBatchResponse(page, "text/html; charset=UTF-8", 2);
      } catch (err) {
        return err;
      }
    })();
    expect(thrown).toBeInstanceOf(GmailError);
    expect(thrown).toMatchObject({ kind: "transient" });
    // Claims multipart but carries no parts.
    expect(parseBatchResponse(page, "multipart/mixed; boundary=b", 2).map((s) => s.status)).toEqual([0, 0]);
    // A part with no inner status line, and a response cut off in the middle of the next part.
    const cut =
      part("b", "<response-item-0>", "not an HTTP answer\r\n\r\n{}") +
      part("b", "<response-item-1>", inner("200 OK", [JSON_CT], `{"id":"ok"}`)) +
      "--b\r\nContent-Type: application/http\r\nContent-ID: <respo";
    const subs = parseBatchResponse(cut, "multipart/mixed; boundary=b", 3);
    expect(subs.map((s) => s.status)).toEqual([0, 200, 0]);
    expect(subs[1]?.data).toEqual({ id: "ok" });
  });
});
