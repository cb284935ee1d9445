// One account's mailbox held in memory: messages (raw RFC 822 bytes are the source of truth),
// threads, labels and the history log with Gmail's semantics (ids increase with gaps on every
// change; records older than the retention window age out and starting before them is a 404).
import { parseHeaderBlock, parseMime, type MimeNode } from "./mime.ts";
import type { Random } from "./random.ts";

export const SYSTEM_LABELS = [
  "INBOX",
  "SPAM",
  "TRASH",
  "UNREAD",
  "STARRED",
  "IMPORTANT",
  "SENT",
  "DRAFT",
  "CHAT",
  "CATEGORY_PERSONAL",
  "CATEGORY_SOCIAL",
  "CATEGORY_PROMOTIONS",
  "CATEGORY_UPDATES",
  "CATEGORY_FORUMS",
] as const;

export interface LabelDef {
  id: string;
  name: string;
  type: "system" | "user";
}

export interface StoredMessage {
  id: string;
  threadId: string;
  labelIds: Set<string>;
  internalDate: number;
  raw: Buffer;
  /** Last history record that touched this message. */
  historyId: number;
  /** When a live delivery added it (ms; 0 for the mailbox generated at start). */
  addedAt: number;
  /** Top-level headers, parsed on first need (search by from:/to:/subject:). */
  headers?: Array<{ name: string; value: string }>;
  /** Parsed MIME tree, built on first need. */
  tree?: MimeNode;
}

export type HistoryType = "messageAdded" | "messageDeleted" | "labelAdded" | "labelRemoved";

export interface HistoryRecord {
  id: number;
  time: number;
  type: HistoryType;
  message: { id: string; threadId: string; labelIds: string[] };
  /** For label records: only the labels that changed. */
  changedLabels?: string[];
}

export type ChangeListener = (mailbox: Mailbox, record: HistoryRecord) => void;

export class Mailbox {
  readonly email: string;
  readonly messages = new Map<string, StoredMessage>();
  readonly threads = new Map<string, Set<string>>();
  readonly labels = new Map<string, LabelDef>();
  /** Message-ID header → thread id, for threading replies by In-Reply-To/References. */
  private readonly byMessageIdHeader = new Map<string, string>();
  readonly history: HistoryRecord[] = [];
  historyId: number;
  /** Smallest startHistoryId history.list still accepts. */
  floorHistoryId: number;
  retentionMs: number;
  private readonly random: Random;
  private lastIdMs = 0;
  private lastIdLow = 0;
  private sorted: StoredMessage[] | undefined;
  private readonly listeners: ChangeListener[] = [];

  constructor(email: string, random: Random, retentionMs: number) {
    this.email = email;
    this.random = random;
    this.retentionMs = retentionMs;
    this.historyId = 1000 + random.int(9000);
    this.floorHistoryId = this.historyId;
    for (const id of SYSTEM_LABELS) this.labels.set(id, { id, name: id, type: "system" });
  }

  onChange(listener: ChangeListener): void {
    this.listeners.push(listener);
  }

  /** Resolves a label id or a user label name, creating user labels on first use (deliveries name them freely). */
  ensureLabel(idOrName: string): string {
    const upper = idOrName.toUpperCase();
    if (this.labels.has(upper) && (SYSTEM_LABELS as readonly string[]).includes(upper)) return upper;
    if (this.labels.has(idOrName)) return idOrName;
    for (const l of this.labels.values()) if (l.name.toLowerCase() === idOrName.toLowerCase()) return l.id;
    let id = idOrName;
    if (!/^Label_\d+$/.test(idOrName)) {
      let n = this.labels.size - SYSTEM_LABELS.length + 1;
      while (this.labels.has(`Label_${n}`)) n++;
      id = `Label_${n}`;
    }
    this.labels.set(id, { id, name: idOrName, type: "user" });
    return id;
  }

  defineLabel(id: string, name: string): void {
    if (!this.labels.has(id)) this.labels.set(id, { id, name, type: "user" });
  }

  findLabel(idOrName: string): LabelDef | undefined {
    const direct = this.labels.get(idOrName) ?? this.labels.get(idOrName.toUpperCase());
    if (direct) return direct;
    // Search writes label names with "-" or "/" for spaces and nesting ("label:projects-atlas").
    const norm = (n: string) => n.toLowerCase().replace(/[-_/\s]+/g, " ");
    const wanted = norm(idOrName);
    for (const l of this.labels.values()) if (norm(l.name) === wanted) return l;
    return undefined;
  }

  /**
   * Gmail ids are roughly internalDate << 20 in hex. Kept as (ms, low 20 bits) numbers rather than
   * BigInt: id allocation runs 20,000 times at start. Unique and increasing per mailbox.
   */
  private nextId(internalDate: number): string {
    let ms = Math.max(0, Math.floor(internalDate));
    let low: number;
    if (ms < this.lastIdMs || (ms === this.lastIdMs && this.lastIdLow >= 0xfffff - 16)) {
      ms = this.lastIdMs;
      low = this.lastIdLow + 1 + this.random.int(16);
      if (low > 0xfffff) {
        ms += 1;
        low -= 0x100000;
      }
    } else low = ms === this.lastIdMs ? this.lastIdLow + 1 + this.random.int(16) : this.random.int(1 << 16);
    this.lastIdMs = ms;
    this.lastIdLow = low;
    return ms.toString(16).padStart(11, "0") + low.toString(16).padStart(5, "0");
  }

  private bumpHistory(): number {
    // Gaps between ids, as Gmail's are not contiguous.
    this.historyId += 1 + this.random.int(3);
    return this.historyId;
  }

  private record(type: HistoryType, msg: StoredMessage, changedLabels?: string[]): HistoryRecord {
    const id = this.bumpHistory();
    msg.historyId = id;
    const rec: HistoryRecord = { id, time: Date.now(), type, message: { id: msg.id, threadId: msg.threadId, labelIds: [...msg.labelIds] }, ...(changedLabels ? { changedLabels } : {}) };
    this.history.push(rec);
    for (const l of this.listeners) l(this, rec);
    return rec;
  }

  /**
   * Adds a message. `recordHistory` false is for the mailbox generated at start: it exists before
   * anyone could have a history id, so it leaves no records (the floor moves past it).
   */
  insert(raw: Buffer, labelIds: string[], internalDate: number, recordHistory: boolean): StoredMessage {
    // Only the threading headers are read now (a regex over the header block): starting with
    // 20,000 generated messages must stay fast; the full header list is parsed when needed.
    const [headerEnd] = headerBlockEnd(raw);
    const threading = threadingHeaders(raw.subarray(0, headerEnd).toString("latin1"));
    const get = (n: "message-id" | "in-reply-to" | "references") => threading[n];
    const id = this.nextId(internalDate);
    let threadId: string | undefined;
    const refs = `${get("in-reply-to") ?? ""} ${get("references") ?? ""}`.match(/<[^>]+>/g) ?? [];
    for (const ref of refs.reverse()) {
      const t = this.byMessageIdHeader.get(ref);
      if (t !== undefined && this.threads.has(t)) {
        threadId = t;
        break;
      }
    }
    threadId ??= id;
    const msg: StoredMessage = { id, threadId, labelIds: new Set(labelIds.map((l) => this.ensureLabel(l))), internalDate, raw, historyId: this.historyId, addedAt: recordHistory ? Date.now() : 0 };
    this.messages.set(id, msg);
    let thread = this.threads.get(threadId);
    if (!thread) this.threads.set(threadId, (thread = new Set()));
    thread.add(id);
    const ownId = get("message-id")?.match(/<[^>]+>/)?.[0];
    if (ownId !== undefined && !this.byMessageIdHeader.has(ownId)) this.byMessageIdHeader.set(ownId, threadId);
    this.sorted = undefined;
    if (recordHistory) this.record("messageAdded", msg);
    else {
      msg.historyId = this.bumpHistory();
      this.floorHistoryId = this.historyId;
    }
    return msg;
  }

  delete(id: string): boolean {
    const msg = this.messages.get(id);
    if (!msg) return false;
    this.messages.delete(id);
    const thread = this.threads.get(msg.threadId);
    thread?.delete(id);
    if (thread && thread.size === 0) this.threads.delete(msg.threadId);
    this.sorted = undefined;
    this.record("messageDeleted", msg);
    return true;
  }

  modifyLabels(id: string, add: string[], remove: string[]): boolean {
    const msg = this.messages.get(id);
    if (!msg) return false;
    const added = add.map((l) => this.ensureLabel(l)).filter((l) => !msg.labelIds.has(l));
    for (const l of added) msg.labelIds.add(l);
    if (added.length > 0) this.record("labelAdded", msg, [...new Set(added)]);
    const removed = remove.map((l) => this.findLabel(l)?.id ?? l).filter((l) => msg.labelIds.has(l));
    for (const l of removed) msg.labelIds.delete(l);
    if (removed.length > 0) this.record("labelRemoved", msg, [...new Set(removed)]);
    return true;
  }

  /** Everything before the current history id ages out. */
  expireHistory(): void {
    this.history.length = 0;
    this.floorHistoryId = this.historyId;
  }

  /** Drops records older than the retention window; returns the floor. */
  prune(now = Date.now()): number {
    if (this.retentionMs <= 0) return this.floorHistoryId;
    let drop = 0;
    while (drop < this.history.length && now - (this.history[drop] as HistoryRecord).time > this.retentionMs) drop++;
    if (drop > 0) {
      this.floorHistoryId = (this.history[drop - 1] as HistoryRecord).id;
      this.history.splice(0, drop);
    }
    return this.floorHistoryId;
  }

  /** Live messages, newest first (internalDate, then id). */
  sortedMessages(): StoredMessage[] {
    this.sorted ??= [...this.messages.values()].sort((a, b) => b.internalDate - a.internalDate || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0));
    return this.sorted;
  }

  headersOf(msg: StoredMessage): Array<{ name: string; value: string }> {
    msg.headers ??= parseHeaderBlock(msg.raw.subarray(0, headerBlockEnd(msg.raw)[0]).toString("utf8"));
    return msg.headers;
  }

  tree(msg: StoredMessage): MimeNode {
    msg.tree ??= parseMime(msg.raw);
    return msg.tree;
  }
}

const THREADING = /^(message-id|in-reply-to|references)[ \t]*:((?:[^\r\n]*)(?:\r?\n[ \t][^\r\n]*)*)/gim;

function threadingHeaders(block: string): Partial<Record<"message-id" | "in-reply-to" | "references", string>> {
  const out: Partial<Record<"message-id" | "in-reply-to" | "references", string>> = {};
  for (const m of block.matchAll(THREADING)) {
    const key = (m[1] as string).toLowerCase() as "message-id" | "in-reply-to" | "references";
    out[key] ??= m[2] as string;
  }
  return out;
}

function headerBlockEnd(buf: Buffer): [number] {
  const crlf = buf.indexOf("\r\n\r\n");
  // Look for a bare-LF blank line only before the CRLF one (or everywhere when there is none).
  const lf = (crlf === -1 ? buf : buf.subarray(0, crlf + 2)).indexOf("\n\n");
  if (crlf === -1 && lf === -1) return [buf.length];
  if (crlf !== -1 && (lf === -1 || crlf <= lf + 1)) return [crlf];
  return [lf];
}
