// One account's mailbox held in memory: messages (raw RFC 822 bytes are the source of truth),
// threads, labels and the history log. History is written as Gmail writes it: one record per
// operation, covering every message the operation touched, with one typed entry per message and
// the message's labels as they stand right after the record (gmail-real-samples/
// history_list_thread_ops.json). Ids increase with gaps on every change; records older than the
// retention window age out and starting before them is a 404.
import { parseHeaderBlock, parseMime, type MimeNode } from "./mime.ts";
import type { Random } from "./random.ts";
import { DEFAULT_SETTINGS, type Settings } from "./state.ts";

/** System labels in the order Gmail's labels.list gives them (gmail-real-samples/labels_list.json). */
export const SYSTEM_LABELS = [
  "CHAT",
  "SENT",
  "INBOX",
  "IMPORTANT",
  "TRASH",
  "DRAFT",
  "SPAM",
  "CATEGORY_FORUMS",
  "CATEGORY_UPDATES",
  "CATEGORY_PERSONAL",
  "CATEGORY_PROMOTIONS",
  "CATEGORY_SOCIAL",
  "STARRED",
  "UNREAD",
] as const;

/** System labels labels.list shows with messageListVisibility "hide" / labelListVisibility "labelHide" (labels_list.json). */
export const HIDDEN_SYSTEM_LABELS: ReadonlySet<string> = new Set([
  "CHAT",
  "IMPORTANT",
  "TRASH",
  "SPAM",
  "CATEGORY_FORUMS",
  "CATEGORY_UPDATES",
  "CATEGORY_PERSONAL",
  "CATEGORY_PROMOTIONS",
  "CATEGORY_SOCIAL",
]);

export interface LabelDef {
  id: string;
  name: string;
  type: "system" | "user";
}

export interface StoredMessage {
  id: string;
  threadId: string;
  labelIds: Set<string>;
  /** Epoch ms, whole seconds as Gmail's (README fact 6). */
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

/** A message as a history entry shows it: labelIds as they stood right after the record (omitted when none). */
export interface HistoryMessage {
  id: string;
  threadId: string;
  labelIds?: string[];
}

export interface HistoryLabelEntry {
  message: HistoryMessage;
  /** Only the labels that changed. */
  labelIds: string[];
}

/**
 * One history record in Gmail's shape (History in the discovery document). `messages` lists the
 * messages the record touched; a record may carry only `messages` and no typed entry.
 */
export interface HistoryRecord {
  id: number;
  /** When it was written (ms), for retention. */
  time: number;
  messages: Array<{ id: string; threadId: string }>;
  messagesAdded?: Array<{ message: HistoryMessage }>;
  messagesDeleted?: Array<{ message: HistoryMessage }>;
  labelsAdded?: HistoryLabelEntry[];
  labelsRemoved?: HistoryLabelEntry[];
}

export type ChangeListener = (mailbox: Mailbox, record: HistoryRecord) => void;

export interface MailboxOptions {
  /** Live settings (historyCombinedRecords, historyMessagesOnlyRate are read at each change). */
  settings?: Settings;
  /** A new thread's id is its first message's id (false: a distinct id, as Gmail's often are). */
  threadIdsAreMessageIds?: boolean;
}

/**
 * Messages per record when one label change is applied to a great many messages (the control
 * API's bulk change): Gmail's records for big operations are not documented; batchModify's limit
 * of 1000 ids per request is the natural unit, and it keeps a history page bounded.
 */
export const BULK_RECORD_SIZE = 1000;

/** One label step of an operation: trash is two steps (TRASH added, then INBOX removed). */
interface LabelStep {
  add: string[];
  remove: string[];
}

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
  private readonly settings: Settings;
  private readonly threadIdsAreMessageIds: boolean;
  private lastIdMs = 0;
  private lastIdLow = 0;
  private sorted: StoredMessage[] | undefined;
  private readonly listeners: ChangeListener[] = [];

  constructor(email: string, random: Random, retentionMs: number, opts: MailboxOptions = {}) {
    this.email = email;
    this.random = random;
    this.retentionMs = retentionMs;
    this.settings = opts.settings ?? { ...DEFAULT_SETTINGS };
    this.threadIdsAreMessageIds = opts.threadIdsAreMessageIds ?? false;
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
    return hexId(ms, low);
  }

  /**
   * A new thread's id. Gmail's is often no message's id: the id of a draft since replaced, or one
   * allocated a moment before the first message (gmail-real-samples/
   * threads_get_metadata_threadid_not_a_message.json, messages_list_7.json: thread ids up to a few
   * seconds of id-time below their first message's). Allocated below the first message's id, so no
   * later message (ids only grow) can take it.
   */
  private newThreadId(firstMessageId: string): string {
    if (this.threadIdsAreMessageIds) return firstMessageId;
    const msgMs = Number.parseInt(firstMessageId.slice(0, 11), 16);
    for (let tries = 0; tries < 100; tries++) {
      const id = hexId(Math.max(0, msgMs - 200 - this.random.int(5000)), this.random.int(1 << 20));
      if (id < firstMessageId && !this.messages.has(id) && !this.threads.has(id)) return id;
    }
    return firstMessageId; // only for ids at the very start of the epoch
  }

  private bumpHistory(): number {
    // Gaps between ids, as Gmail's are not contiguous.
    this.historyId += 1 + this.random.int(3);
    return this.historyId;
  }

  /** Writes one record: stamps the touched messages with its id and tells the listeners (push). */
  private write(fields: Omit<HistoryRecord, "id" | "time">, touched: Iterable<StoredMessage>): HistoryRecord {
    const id = this.bumpHistory();
    for (const m of touched) m.historyId = id;
    const rec: HistoryRecord = { id, time: Date.now(), ...fields };
    this.history.push(rec);
    for (const l of this.listeners) l(this, rec);
    return rec;
  }

  /**
   * Adds a message. `recordHistory` false is for the mailbox generated at start: it exists before
   * anyone could have a history id, so it leaves no records (the floor moves past it).
   */
  insert(raw: Buffer, labelIds: string[], internalDate: number, recordHistory: boolean): StoredMessage {
    const msg = this.store(raw, labelIds, internalDate, recordHistory);
    if (recordHistory) {
      this.write({ messages: [ref(msg)], messagesAdded: [{ message: snapshot(msg) }] }, [msg]);
      this.maybeMessagesOnly(msg);
    } else {
      msg.historyId = this.bumpHistory();
      this.floorHistoryId = this.historyId;
    }
    return msg;
  }

  /** Stores a message (id, thread, labels) without writing history. */
  private store(
    raw: Buffer,
    labelIds: string[],
    internalDate: number,
    live: boolean,
    threadId?: string,
  ): StoredMessage {
    // Only the threading headers are read now (a regex over the header block): starting with
    // 20,000 generated messages must stay fast; the full header list is parsed when needed.
    const [headerEnd] = headerBlockEnd(raw);
    const threading = threadingHeaders(raw.subarray(0, headerEnd).toString("latin1"));
    const get = (n: "message-id" | "in-reply-to" | "references") => threading[n];
    // The id follows the arrival time to the millisecond; internalDate is whole seconds (Gmail's
    // 114 of 114 recorded values are).
    const id = this.nextId(internalDate);
    if (threadId === undefined) {
      const refs = `${get("in-reply-to") ?? ""} ${get("references") ?? ""}`.match(/<[^>]+>/g) ?? [];
      for (const r of refs.reverse()) {
        const t = this.byMessageIdHeader.get(r);
        if (t !== undefined && this.threads.has(t)) {
          threadId = t;
          break;
        }
      }
    }
    threadId ??= this.newThreadId(id);
    const msg: StoredMessage = {
      id,
      threadId,
      labelIds: new Set(labelIds.map((l) => this.ensureLabel(l))),
      internalDate: Math.floor(internalDate / 1000) * 1000,
      raw,
      historyId: this.historyId,
      addedAt: live ? Date.now() : 0,
    };
    this.messages.set(id, msg);
    let thread = this.threads.get(threadId);
    if (!thread) this.threads.set(threadId, (thread = new Set()));
    thread.add(id);
    const ownId = get("message-id")?.match(/<[^>]+>/)?.[0];
    if (ownId !== undefined && !this.byMessageIdHeader.has(ownId)) this.byMessageIdHeader.set(ownId, threadId);
    this.sorted = undefined;
    return msg;
  }

  /** Removes a message from the maps (a thread keeps its id while any message is in it). */
  private unstore(msg: StoredMessage): void {
    this.messages.delete(msg.id);
    const thread = this.threads.get(msg.threadId);
    thread?.delete(msg.id);
    if (thread && thread.size === 0) this.threads.delete(msg.threadId);
    this.sorted = undefined;
  }

  /**
   * Sending and receiving sometimes leave records holding only `messages`, no typed entry
   * (history_list_thread_ops.json: four such records after a sent message).
   */
  private maybeMessagesOnly(msg: StoredMessage): void {
    const rate = this.settings.historyMessagesOnlyRate;
    if (rate <= 0 || this.random.next() >= rate) return;
    const n = 1 + this.random.int(4);
    for (let i = 0; i < n; i++) this.write({ messages: [ref(msg)] }, []);
  }

  delete(id: string): boolean {
    const msg = this.messages.get(id);
    if (!msg) return false;
    this.unstore(msg);
    this.write({ messages: [ref(msg)], messagesDeleted: [{ message: snapshot(msg) }] }, [msg]);
    return true;
  }

  /**
   * A draft saved again, as Gmail does it: a new message (new id, same thread, the draft's labels)
   * is added and the old one deleted (README fact 10; drafts_get_full.json). One operation, one
   * record holding both entries (with historyCombinedRecords off: added, then deleted).
   */
  replaceDraft(id: string, raw: Buffer | undefined, internalDate: number): StoredMessage | undefined {
    const old = this.messages.get(id);
    if (!old?.labelIds.has("DRAFT")) return undefined;
    this.unstore(old);
    const msg = this.store(raw ?? old.raw, [...old.labelIds], internalDate, true, old.threadId);
    if (this.settings.historyCombinedRecords) {
      this.write(
        {
          messages: [ref(msg), ref(old)],
          messagesAdded: [{ message: snapshot(msg) }],
          messagesDeleted: [{ message: snapshot(old) }],
        },
        [msg],
      );
    } else {
      this.write({ messages: [ref(msg)], messagesAdded: [{ message: snapshot(msg) }] }, [msg]);
      this.write({ messages: [ref(old)], messagesDeleted: [{ message: snapshot(old) }] }, []);
    }
    return msg;
  }

  /** One message's label change (the control API's). False when there is no such message. */
  modifyLabels(id: string, add: string[], remove: string[]): boolean {
    const msg = this.messages.get(id);
    if (!msg) return false;
    this.modify([msg], add, remove);
    return true;
  }

  /** One label change to these messages: one record (adds and removes together). Returns the messages changed. */
  modify(msgs: StoredMessage[], add: string[], remove: string[]): number {
    return this.applySteps(msgs, [this.step(add, remove)]);
  }

  /**
   * Trash: two records, TRASH added to every message, then INBOX removed from those that had it
   * (history_list_thread_ops.json, messages_trash_response.json, threads_trash_response.json).
   * SPAM goes with INBOX (a message is not both in spam and in the trash; not recorded).
   */
  trash(msgs: StoredMessage[]): number {
    return this.applySteps(msgs, [this.step(["TRASH"], []), this.step([], ["INBOX", "SPAM"])]);
  }

  /** Untrash removes TRASH only; INBOX is not restored (history_list_thread_ops.json, messages_untrash_response.json). */
  untrash(msgs: StoredMessage[]): number {
    return this.applySteps(msgs, [this.step([], ["TRASH"])]);
  }

  /**
   * One label change to a great many messages (a bulk "mark all read"): records of up to
   * BULK_RECORD_SIZE messages each. Linear in the messages, one record per chunk.
   */
  bulkModify(msgs: Iterable<StoredMessage>, add: string[], remove: string[]): number {
    const step = this.step(add, remove);
    let changed = 0;
    let chunk: StoredMessage[] = [];
    for (const m of msgs) {
      chunk.push(m);
      if (chunk.length === BULK_RECORD_SIZE) {
        changed += this.applySteps(chunk, [step]);
        chunk = [];
      }
    }
    if (chunk.length > 0) changed += this.applySteps(chunk, [step]);
    return changed;
  }

  private step(add: string[], remove: string[]): LabelStep {
    const removeIds = [...new Set(remove.map((l) => this.findLabel(l)?.id ?? l))];
    // A label both added and removed is removed.
    const addIds = [...new Set(add.map((l) => this.ensureLabel(l)))].filter((l) => !removeIds.includes(l));
    return { add: addIds, remove: removeIds };
  }

  /**
   * Applies label steps to messages. Gmail's records (historyCombinedRecords): one record per step
   * covering every message it changed, labelsAdded and labelsRemoved together. Otherwise one record
   * per message and change type (added, then removed), as simpler emulators write.
   */
  private applySteps(msgs: StoredMessage[], steps: LabelStep[]): number {
    const changed = new Set<StoredMessage>();
    if (this.settings.historyCombinedRecords) {
      for (const step of steps) {
        const touched: StoredMessage[] = [];
        const labelsAdded: HistoryLabelEntry[] = [];
        const labelsRemoved: HistoryLabelEntry[] = [];
        for (const m of msgs) {
          const added = step.add.filter((l) => !m.labelIds.has(l));
          const removed = step.remove.filter((l) => m.labelIds.has(l));
          if (added.length === 0 && removed.length === 0) continue;
          for (const l of added) m.labelIds.add(l);
          for (const l of removed) m.labelIds.delete(l);
          // The labels right after this record, shared by both entries of the message.
          const message = snapshot(m);
          if (added.length > 0) labelsAdded.push({ message, labelIds: added });
          if (removed.length > 0) labelsRemoved.push({ message, labelIds: removed });
          touched.push(m);
          changed.add(m);
        }
        if (touched.length === 0) continue;
        this.write(
          {
            messages: touched.map(ref),
            ...(labelsAdded.length > 0 ? { labelsAdded } : {}),
            ...(labelsRemoved.length > 0 ? { labelsRemoved } : {}),
          },
          touched,
        );
      }
      return changed.size;
    }
    for (const m of msgs) {
      for (const step of steps) {
        const added = step.add.filter((l) => !m.labelIds.has(l));
        for (const l of added) m.labelIds.add(l);
        if (added.length > 0)
          this.write({ messages: [ref(m)], labelsAdded: [{ message: snapshot(m), labelIds: added }] }, [m]);
        const removed = step.remove.filter((l) => m.labelIds.has(l));
        for (const l of removed) m.labelIds.delete(l);
        if (removed.length > 0)
          this.write({ messages: [ref(m)], labelsRemoved: [{ message: snapshot(m), labelIds: removed }] }, [m]);
        if (added.length > 0 || removed.length > 0) changed.add(m);
      }
    }
    return changed.size;
  }

  /** A thread's messages, oldest first (drafts included, as Gmail's threads.get shows them). */
  threadMessages(threadId: string): StoredMessage[] {
    const ids = this.threads.get(threadId);
    if (!ids) return [];
    return [...ids]
      .map((id) => this.messages.get(id) as StoredMessage)
      .sort((a, b) => a.internalDate - b.internalDate || (a.id < b.id ? -1 : 1));
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
    this.sorted ??= [...this.messages.values()].sort(
      (a, b) => b.internalDate - a.internalDate || (a.id < b.id ? 1 : a.id > b.id ? -1 : 0),
    );
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

function hexId(ms: number, low: number): string {
  return ms.toString(16).padStart(11, "0") + low.toString(16).padStart(5, "0");
}

function ref(m: StoredMessage): { id: string; threadId: string } {
  return { id: m.id, threadId: m.threadId };
}

function snapshot(m: StoredMessage): HistoryMessage {
  return m.labelIds.size > 0
    ? { id: m.id, threadId: m.threadId, labelIds: [...m.labelIds] }
    : { id: m.id, threadId: m.threadId };
}

/** Every label a record names: its entries' labels after the change and the labels that changed. */
export function recordLabels(record: HistoryRecord): Set<string> {
  const out = new Set<string>();
  const add = (e: { message: HistoryMessage; labelIds?: string[] }) => {
    for (const l of e.message.labelIds ?? []) out.add(l);
    for (const l of e.labelIds ?? []) out.add(l);
  };
  for (const list of [record.messagesAdded, record.messagesDeleted, record.labelsAdded, record.labelsRemoved])
    for (const e of list ?? []) add(e);
  return out;
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
