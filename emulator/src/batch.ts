// Gmail's HTTP batch endpoint (/batch, as the discovery document says, and /batch/gmail/v1, as the
// batch guide says): multipart/mixed of application/http parts with path-only request lines, LF or
// CRLF line ends, quoted or bare boundaries, at most 100 parts. Each part is dispatched into the
// ordinary Gmail routes, so it is authenticated, charged, counted toward the user's concurrency
// cap and answered (or failed) on its own. Gmail fans a batch's parts out at once
// (batchPartParallelism, default 100), so a batch of more than ~10 parts to one user gets some
// parts refused "Too many concurrent requests for user" (error_429_too_many_concurrent_batch_part.txt)
// while the batch answers 200. Answers come back in request order, framed as Google frames them
// (batch_response_framing_google_frontend.txt): `Content-ID: response-<id>` (in angle brackets only
// when the request's was), an inner `HTTP/1.1` status line, a blank line before the next boundary.
// batchFailureRate answers a share of batch POSTs as a whole with Google's HTML error page instead.
import { randomBytes } from "node:crypto";
import { STATUS_CODES } from "node:http";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ApiError, errors } from "./errors.ts";
import { INNER_HEADER, sendApiError } from "./gmail-api.ts";
import { badGatewayPage, HTML_CONTENT_TYPE, notFoundPage } from "./html-errors.ts";
import { gmailJson, wantsPretty } from "./json.ts";
import { parseHeaderBlock, parseStructuredHeader, splitMultipart } from "./mime.ts";
import type { EmulatorState } from "./state.ts";

const MAX_PARTS = 100;

interface PartRequest {
  contentId: string | undefined;
  method: string;
  path: string;
  headers: Record<string, string>;
  body: string;
}

function splitHead(text: string): [string, string] {
  const m = /\r?\n\r?\n/.exec(text);
  if (!m) return [text, ""];
  return [text.slice(0, m.index), text.slice(m.index + m[0].length)];
}

export function parseBatch(body: Buffer, contentType: string | undefined): PartRequest[] {
  const ct = parseStructuredHeader(contentType ?? "");
  if (ct.value !== "multipart/mixed" || !ct.params.boundary)
    throw errors.badRequest("Batch requests must be multipart/mixed with a boundary");
  return splitMultipart(body, ct.params.boundary).map((part) => {
    const [outerHead, inner] = splitHead(part.toString("utf8"));
    const outer = parseHeaderBlock(outerHead);
    const contentId = outer.find((h) => h.name.toLowerCase() === "content-id")?.value;
    const [innerHead, innerBody] = splitHead(inner.replace(/^(\r?\n)+/, ""));
    const [requestLine = "", ...headerLines] = innerHead.split(/\r?\n/);
    const [method = "", path = ""] = requestLine.trim().split(/\s+/);
    const headers: Record<string, string> = {};
    for (const h of parseHeaderBlock(headerLines.join("\r\n"))) headers[h.name.toLowerCase()] = h.value;
    return { contentId, method: method.toUpperCase(), path, headers, body: innerBody.replace(/\r?\n$/, "") };
  });
}

export function registerBatchRoutes(app: FastifyInstance, state: EmulatorState): void {
  const { settings } = state;
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const query = req.query as Record<string, unknown>;
    const pretty = wantsPretty(settings.prettyJson, query);
    if (settings.latencyMs > 0) await new Promise((r) => setTimeout(r, settings.latencyMs));
    // The front end fails the whole POST now and then: a 404 page (the request never reached
    // Gmail: nothing ran) or a 502 page (the parts ran, their answers are lost).
    const failure =
      settings.batchFailureRate > 0 && state.random.next() < settings.batchFailureRate
        ? settings.batchFailureStatus
        : undefined;
    if (failure === 404) return failPage(reply, state, 404, req.url);
    let parts: PartRequest[];
    try {
      parts = parseBatch(
        Buffer.isBuffer(req.body) ? req.body : Buffer.from(String(req.body ?? "")),
        req.headers["content-type"],
      );
    } catch (err) {
      if (err instanceof ApiError) return sendApiError(reply, err, pretty);
      throw err;
    }
    if (parts.length === 0) return sendApiError(reply, errors.badRequest("Batch request contains no parts"), pretty);
    if (parts.length > MAX_PARTS)
      return sendApiError(
        reply,
        errors.badRequest(`Inner request count exceeds the limit. Received: ${parts.length}, Limit: ${MAX_PARTS}`),
        pretty,
      );
    // Outer headers other than Content-* and outer query parameters apply to every part; a part's own win.
    const shared: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers))
      if (!k.startsWith("content-") && k !== "host" && k !== "connection" && typeof v === "string") shared[k] = v;
    const outerQuery = req.url.includes("?") ? new URLSearchParams(req.url.slice(req.url.indexOf("?") + 1)) : undefined;
    const answers: string[] = new Array(parts.length);
    let next = 0;
    const worker = async () => {
      while (next < parts.length) {
        const i = next++;
        answers[i] = await answerPart(app, state, parts[i] as PartRequest, shared, outerQuery, pretty);
      }
    };
    await Promise.all(
      Array.from({ length: Math.min(Math.max(1, settings.batchPartParallelism), parts.length) }, worker),
    );
    if (failure === 502) return failPage(reply, state, 502, req.url);
    const boundary = `batch_${randomBytes(9).toString("base64url")}`;
    const chunks = parts.map(
      (p, i) =>
        `--${boundary}\r\nContent-Type: application/http\r\nContent-ID: ${responseId(p.contentId)}\r\n\r\n${answers[i]}\r\n\r\n`,
    );
    return reply
      .code(200)
      .type(`multipart/mixed; boundary=${boundary}`)
      .send(`${chunks.join("")}--${boundary}--\r\n`);
  };
  app.post("/batch", { config: { name: "batch" } }, handler);
  app.post("/batch/gmail/v1", { config: { name: "batch" } }, handler);
}

/** `response-<id>`, in angle brackets only when the request's Content-ID had them; `response-` when it had none. */
export function responseId(contentId: string | undefined): string {
  if (contentId === undefined) return "response-";
  const bare = /^<(.*)>$/.exec(contentId.trim());
  return bare ? `<response-${bare[1]}>` : `response-${contentId.trim()}`;
}

function failPage(reply: FastifyReply, state: EmulatorState, status: 404 | 502, url: string): FastifyReply {
  state.stats.countBatchFailure();
  return reply
    .code(status)
    .type(HTML_CONTENT_TYPE)
    .send(status === 404 ? notFoundPage(url) : badGatewayPage());
}

/** The part's path with the outer request's query parameters it does not set itself. */
function withOuterQuery(path: string, outer: URLSearchParams | undefined): string {
  if (!outer) return path;
  const q = path.indexOf("?");
  const own = new URLSearchParams(q >= 0 ? path.slice(q + 1) : "");
  const extra = [...outer].filter(([k]) => !own.has(k));
  if (extra.length === 0) return path;
  return path + (q >= 0 ? "&" : "?") + new URLSearchParams(extra).toString();
}

async function answerPart(
  app: FastifyInstance,
  state: EmulatorState,
  p: PartRequest,
  shared: Record<string, string>,
  outerQuery: URLSearchParams | undefined,
  pretty: boolean,
): Promise<string> {
  let status: number;
  let headers: Record<string, string> = {};
  let body: string;
  // Parts are Gmail API calls by path; full URLs and nested batches are refused part by part.
  if (!p.path.startsWith("/gmail/v1/") || !["GET", "POST", "PUT", "DELETE", "PATCH"].includes(p.method)) {
    const err = errors.badRequest(
      p.path.startsWith("/gmail/v1/")
        ? `Unsupported method: ${p.method}`
        : "Batch part URLs must be Gmail API paths (/gmail/v1/…)",
    );
    status = err.status;
    headers = { "content-type": "application/json; charset=UTF-8" };
    body = gmailJson(err.toJSON(), pretty);
  } else {
    const res = await app.inject({
      method: p.method as "GET",
      url: withOuterQuery(p.path, outerQuery),
      headers: { ...shared, ...p.headers, [INNER_HEADER]: state.innerSecret },
      ...(p.body !== "" ? { payload: p.body } : {}),
    });
    status = res.statusCode;
    for (const [k, v] of Object.entries(res.headers))
      if (typeof v === "string" && (k === "content-type" || k === "retry-after" || k === "www-authenticate"))
        headers[k] = v;
    body = res.body;
  }
  const head = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}`];
  for (const [k, v] of Object.entries(headers))
    head.push(`${k.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase())}: ${v}`);
  head.push("Vary: Origin", "Vary: X-Origin", "Vary: Referer");
  return `${head.join("\r\n")}\r\n\r\n${body}`;
}
