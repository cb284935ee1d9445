// Gmail's HTTP batch endpoint (/batch, as the discovery document says, and /batch/gmail/v1, as the
// batch guide says): multipart/mixed of application/http parts with path-only request lines, LF or
// CRLF line ends, quoted or bare boundaries, at most 100 parts. Each part is dispatched into the
// ordinary Gmail routes, so it is authenticated, charged and answered (or failed) on its own;
// answers come back in request order with Content-ID: <response-X>.
import { randomBytes } from "node:crypto";
import { STATUS_CODES } from "node:http";
import type { FastifyInstance, FastifyReply, FastifyRequest } from "fastify";
import { ApiError, errors } from "./errors.ts";
import { INNER_HEADER, sendApiError } from "./gmail-api.ts";
import { parseHeaderBlock, parseStructuredHeader, splitMultipart } from "./mime.ts";
import type { EmulatorState } from "./state.ts";

const MAX_PARTS = 100;
/** Parts executed at once; Gmail runs them in parallel, and each counts toward the user's concurrency cap. */
const PART_PARALLELISM = 5;

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
  if (ct.value !== "multipart/mixed" || !ct.params.boundary) throw errors.badRequest("Batch requests must be multipart/mixed with a boundary");
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
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    if (state.settings.latencyMs > 0) await new Promise((r) => setTimeout(r, state.settings.latencyMs));
    let parts: PartRequest[];
    try {
      parts = parseBatch(Buffer.isBuffer(req.body) ? req.body : Buffer.from(String(req.body ?? "")), req.headers["content-type"]);
    } catch (err) {
      if (err instanceof ApiError) return sendApiError(reply, err);
      throw err;
    }
    if (parts.length === 0) return sendApiError(reply, errors.badRequest("Batch request contains no parts"));
    if (parts.length > MAX_PARTS) return sendApiError(reply, errors.badRequest(`Inner request count exceeds the limit. Received: ${parts.length}, Limit: ${MAX_PARTS}`));
    // Outer headers other than Content-* apply to every part; a part's own header wins.
    const shared: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) if (!k.startsWith("content-") && k !== "host" && k !== "connection" && typeof v === "string") shared[k] = v;
    const answers: string[] = new Array(parts.length);
    let next = 0;
    const worker = async () => {
      while (next < parts.length) {
        const i = next++;
        const p = parts[i] as PartRequest;
        answers[i] = await answerPart(app, state, p, shared);
      }
    };
    await Promise.all(Array.from({ length: Math.min(PART_PARALLELISM, parts.length) }, worker));
    const boundary = `batch_${randomBytes(9).toString("base64url")}`;
    const chunks = parts.map((p, i) => `--${boundary}\r\nContent-Type: application/http\r\n${p.contentId !== undefined ? `Content-ID: <response-${p.contentId.replace(/^<|>$/g, "")}>\r\n` : ""}\r\n${answers[i]}\r\n`);
    return reply.code(200).type(`multipart/mixed; boundary=${boundary}`).send(chunks.join("") + `--${boundary}--\r\n`);
  };
  app.post("/batch", { config: { name: "batch" } }, handler);
  app.post("/batch/gmail/v1", { config: { name: "batch" } }, handler);
}

async function answerPart(app: FastifyInstance, state: EmulatorState, p: PartRequest, shared: Record<string, string>): Promise<string> {
  let status: number;
  let headers: Record<string, string> = {};
  let body: string;
  // Parts are Gmail API calls by path; full URLs and nested batches are refused part by part.
  if (!p.path.startsWith("/gmail/v1/") || !["GET", "POST", "PUT", "DELETE", "PATCH"].includes(p.method)) {
    const err = errors.badRequest(p.path.startsWith("/gmail/v1/") ? `Unsupported method: ${p.method}` : "Batch part URLs must be Gmail API paths (/gmail/v1/…)");
    status = err.status;
    headers = { "content-type": "application/json; charset=UTF-8" };
    body = JSON.stringify(err.toJSON());
  } else {
    const res = await app.inject({
      method: p.method as "GET",
      url: p.path,
      headers: { ...shared, ...p.headers, [INNER_HEADER]: state.innerSecret },
      ...(p.body !== "" ? { payload: p.body } : {}),
    });
    status = res.statusCode;
    for (const [k, v] of Object.entries(res.headers)) if (typeof v === "string" && (k === "content-type" || k === "retry-after" || k === "www-authenticate")) headers[k] = v;
    body = res.body;
  }
  const head = [`HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ""}`];
  for (const [k, v] of Object.entries(headers)) head.push(`${k.replace(/(^|-)([a-z])/g, (_m, d: string, c: string) => d + c.toUpperCase())}: ${v}`);
  head.push("Vary: Origin", "Vary: X-Origin", "Vary: Referer");
  return `${head.join("\r\n")}\r\n\r\n${body}`;
}
