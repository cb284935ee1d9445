// The subset of Gmail search (`q`) the emulator understands: after:, before:, newer_than:,
// older_than:, has:attachment, label:, in:, from:, to:, subject:, is:unread|read|starred, and bare
// words (matched against subject, from, to and snippet). A leading "-" negates a term.
// Dates written YYYY/MM/DD are midnight PST (UTC-8), as Gmail documents; epoch seconds are exact.
import { errors } from "./errors.ts";
import type { Mailbox, StoredMessage } from "./mailbox.ts";

export interface MessageFilter {
  (msg: StoredMessage): boolean;
  /** True when the query itself names SPAM/TRASH (in:spam, in:anywhere…), which lifts the default exclusion. */
  mentionsSpamTrash: boolean;
}

function tokenize(q: string): string[] {
  return q.match(/-?[^\s:"]+:"[^"]*"|-?"[^"]*"|\S+/g) ?? [];
}

function parseDate(v: string): number {
  if (/^\d{9,}$/.test(v)) return Number(v) * 1000;
  const m = /^(\d{4})[/-](\d{1,2})[/-](\d{1,2})$/.exec(v);
  if (!m) throw errors.badRequest(`Invalid query: ${v}`);
  return Date.UTC(Number(m[1]), Number(m[2]) - 1, Number(m[3]), 8);
}

function parseAge(v: string): number {
  const m = /^(\d+)([dmy])$/i.exec(v);
  if (!m) throw errors.badRequest(`Invalid query: ${v}`);
  const n = Number(m[1]);
  const unit = (m[2] as string).toLowerCase();
  return n * (unit === "d" ? 86_400_000 : unit === "m" ? 30 * 86_400_000 : 365 * 86_400_000);
}

export function compileQuery(
  mailbox: Mailbox,
  q: string | undefined,
  hasAttachment: (m: StoredMessage) => boolean,
  snippet: (m: StoredMessage) => string,
): MessageFilter {
  const tests: Array<(m: StoredMessage) => boolean> = [];
  let mentionsSpamTrash = false;
  const header = (m: StoredMessage, name: string) =>
    mailbox
      .headersOf(m)
      .filter((h) => h.name.toLowerCase() === name)
      .map((h) => h.value.toLowerCase())
      .join(" ");
  for (let token of tokenize(q ?? "")) {
    let negate = false;
    if (token.startsWith("-") && token.length > 1) {
      negate = true;
      token = token.slice(1);
    }
    const colon = token.indexOf(":");
    const key = colon > 0 ? token.slice(0, colon).toLowerCase() : "";
    const value = (colon > 0 ? token.slice(colon + 1) : token).replace(/^"|"$/g, "");
    let t: (m: StoredMessage) => boolean;
    const now = Date.now();
    switch (key) {
      case "after": {
        const at = parseDate(value);
        t = (m) => m.internalDate >= at;
        break;
      }
      case "before": {
        const at = parseDate(value);
        t = (m) => m.internalDate < at;
        break;
      }
      case "newer_than": {
        const age = parseAge(value);
        t = (m) => m.internalDate > now - age;
        break;
      }
      case "older_than": {
        const age = parseAge(value);
        t = (m) => m.internalDate < now - age;
        break;
      }
      case "has":
        if (value.toLowerCase() !== "attachment") throw errors.badRequest(`Invalid query: has:${value}`);
        t = hasAttachment;
        break;
      case "label":
      case "in": {
        const v = value.toLowerCase();
        if (key === "in" && v === "anywhere") {
          mentionsSpamTrash = true;
          t = () => true;
          break;
        }
        const label = mailbox.findLabel(v);
        if (label && (label.id === "SPAM" || label.id === "TRASH")) mentionsSpamTrash = true;
        t = label ? (m) => m.labelIds.has(label.id) : () => false;
        break;
      }
      case "is": {
        const v = value.toLowerCase();
        t = v === "read" ? (m) => !m.labelIds.has("UNREAD") : (m) => m.labelIds.has(v.toUpperCase());
        break;
      }
      case "from":
      case "to":
      case "subject": {
        const v = value.toLowerCase();
        t = (m) => header(m, key).includes(v);
        break;
      }
      default: {
        const v = token.replace(/^"|"$/g, "").toLowerCase();
        t = (m) =>
          header(m, "subject").includes(v) ||
          header(m, "from").includes(v) ||
          header(m, "to").includes(v) ||
          snippet(m).toLowerCase().includes(v);
      }
    }
    tests.push(negate ? (m) => !t(m) : t);
  }
  const filter = ((m: StoredMessage) => tests.every((t) => t(m))) as MessageFilter;
  filter.mentionsSpamTrash = mentionsSpamTrash;
  return filter;
}

/**
 * Gmail's resultSizeEstimate is an estimate, not a count: 201 for a 782-message mailbox listed 5
 * at a time (gmail-real-samples/messages_list_max5.json), 201 for every non-empty q whatever the
 * true count (3–21) (openclaw/gogcli#983/#984, gmail-api-facts.md), yet exact (7) for a small
 * listing without q that fits one page (messages_list_7.json), and 0 for no match. Deterministic:
 * exact when nothing matches or when an unqueried listing ends on this page; otherwise 201 past
 * the page's start. A client that takes it for a count is wrong for anything bigger.
 */
export function resultSizeEstimate(total: number, start: number, limit: number, q: string | undefined): number {
  if (total === 0) return 0;
  if ((q === undefined || q.trim() === "") && start + limit >= total) return total;
  return start + 201;
}
