// Gmail's HTTP batch format: a multipart/mixed body of application/http GET sub-requests, and the
// multipart/mixed answer split back into one result per sub-request, in request order. Pure
// functions (no network, no classification): batch-get.ts sends the body and judges the parts.
import { randomBytes } from "node:crypto";
import { GmailError } from "../errors.ts";

/** One part of a batch answer; status 0: the answer has no part for this sub-request. */
export interface SubResponse {
  status: number;
  headers: Record<string, string>;
  data: unknown;
}

export interface BatchRequest {
  /** The POST's Content-Type, carrying the boundary. */
  contentType: string;
  body: string;
}

/** A batch of GETs, one part per path; part i has Content-ID <item-i>, which its answer echoes. */
export function buildBatchRequest(paths: string[], boundary = newBoundary()): BatchRequest {
  const parts = paths.map(
    (p, i) =>
      `--${boundary}\r\nContent-Type: application/http\r\nContent-ID: <item-${i}>\r\n\r\n` +
      `GET ${p}\r\nAccept: application/json\r\n\r\n`,
  );
  return { contentType: `multipart/mixed; boundary=${boundary}`, body: `${parts.join("")}--${boundary}--\r\n` };
}

function newBoundary(): string {
  return `batch_${randomBytes(12).toString("hex")}`;
}

/** Splits a multipart/mixed batch response into sub-responses, in request order. */
export function parseBatchResponse(text: string, contentType: string, count: number): SubResponse[] {
  const m = /boundary=(?:"([^"]+)"|([^;\s]+))/i.exec(contentType);
  const boundary = m?.[1] ?? m?.[2];
  if (!boundary) throw new GmailError("transient", `batch response without a multipart boundary (${contentType})`);
  const byIndex = new Map<number, SubResponse>();
  const inOrder: SubResponse[] = [];
  for (const chunk of text.split(`--${boundary}`)) {
    const part = chunk.replace(/^\r?\n/, "");
    if (part.trim() === "" || part.startsWith("--")) continue;
    const [outerHead, inner] = splitHead(part);
    if (inner === undefined) continue;
    const outer = parseHeaders(outerHead);
    const sub = parseInnerResponse(inner);
    if (!sub) continue;
    const cid = /(\d+)>?\s*$/.exec(outer["content-id"] ?? "");
    if (cid?.[1] !== undefined) byIndex.set(Number(cid[1]), sub);
    inOrder.push(sub);
  }
  // Parts are matched by the number in their Content-ID; only an answer with no numbered part at
  // all is read in order.
  return Array.from({ length: count }, (_, i) => byIndex.get(i) ?? (byIndex.size === 0 ? inOrder[i] : undefined)).map(
    (s) => s ?? { status: 0, headers: {}, data: undefined },
  );
}

/** The application/http answer inside a part: status line, headers, JSON body (text if not JSON). */
function parseInnerResponse(inner: string): SubResponse | undefined {
  const [innerHead, body] = splitHead(inner);
  const lines = innerHead.split(/\r?\n/);
  const statusLine = /^HTTP\/\d(?:\.\d)?\s+(\d{3})/.exec(lines[0] ?? "");
  if (!statusLine) return undefined;
  const headers = parseHeaders(lines.slice(1).join("\n"));
  const raw = (body ?? "").trim();
  let data: unknown = raw;
  if (raw !== "") {
    try {
      data = JSON.parse(raw);
    } catch {
      data = raw;
    }
  }
  return { status: Number(statusLine[1]), headers, data };
}

function splitHead(s: string): [string, string | undefined] {
  const m = /\r?\n\r?\n/.exec(s);
  if (!m) return [s, undefined];
  return [s.slice(0, m.index), s.slice(m.index + m[0].length)];
}

function parseHeaders(block: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of block.split(/\r?\n/)) {
    const i = line.indexOf(":");
    if (i > 0) out[line.slice(0, i).trim().toLowerCase()] = line.slice(i + 1).trim();
  }
  return out;
}
