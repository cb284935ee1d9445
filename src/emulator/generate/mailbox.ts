// Deterministic mailboxes for the emulator: same seed → same bytes, labels and dates. Threads of
// 1–8 messages (replies carry In-Reply-To/References and "Re: " subjects), Gmail's system labels
// plus a few user labels, multipart/alternative bodies, RFC 2047 names and subjects, and
// attachments on ~20% of messages (every kind in NORMAL_KINDS; HOSTILE_KINDS once each per
// mailbox). MIME is written here from pre-encoded fixture bodies, not with MailComposer: see
// mime.ts for why.
import {
  HOSTILE_KINDS,
  NORMAL_KINDS,
  attachmentRenderer,
  type AttachmentKind,
  type RenderAttachment,
} from "./attachment-parts.ts";
import { CATEGORIES, GENERATED_USER_LABELS, closing, makeContacts, makeParagraphs, makeSubject, makeToken, ownerName, type Contact } from "./content.ts";
import { encodeWords, escapeHtml, formatAddress, formatDate, multipart, textPart } from "./mime.ts";
import { createRng, mixSeed, type Rng } from "./prng.ts";

export interface GeneratedMessage {
  /** RFC 822 bytes, CRLF line endings. */
  raw: Buffer;
  labelIds: string[];
  /** ms since epoch. */
  internalDate: number;
}

export interface GenerateMailboxOptions {
  seed: number;
  count: number;
  /** The mailbox owner: recipient of incoming mail, sender of SENT mail. */
  email: string;
  /** Default true. */
  attachments?: boolean;
  /** Encrypted/corrupt/looping PDFs, zip- and entity-bomb DOCX, CFB DOCX, an .exe named .pdf — once each. Default: same as attachments. */
  hostile?: boolean;
  /** One 60 MB CSV attachment in the middle of the mailbox (even with attachments: false). Default false. */
  large?: boolean;
  /** Oldest possible message; the mailbox spans two years from here. Default 2024-01-01T00:00Z. */
  startDate?: number;
}

const DEFAULT_START = Date.UTC(2024, 0, 1);
const SPAN_MS = 730 * 86_400_000;
const ATTACHMENT_RATE = 0.2;
const SECOND_ATTACHMENT_RATE = 0.15;
const THREAD_SIZES = [1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 5, 5, 6, 7, 8] as const;
const MESSAGE_ID_DOMAIN = "generator.gmail-sync.test";

interface Person {
  name: string;
  email: string;
  zone: number;
}

interface Planned {
  time: number;
  from: Person;
  to: Person[];
  cc: Person[];
  fromOwner: boolean;
  subject: string;
  labelIds: string[];
  /** Earlier messages of the thread, oldest first. */
  ancestors: Planned[];
  messageId: string;
  attachments: AttachmentKind[];
  /** The body's first paragraph, quoted by replies (it never holds the message's token). */
  quotable: string;
}

const weighted = <T>(rng: Rng, items: readonly (readonly [T, number])[]): T => {
  let r = rng.next();
  for (const [item, weight] of items) {
    r -= weight;
    if (r < 0) return item;
  }
  return items[items.length - 1]![0];
};

/** Deals kinds from a shuffled deck so every kind shows up once per round. */
function deck(rng: Rng, kinds: readonly AttachmentKind[]): () => AttachmentKind {
  let cards: AttachmentKind[] = [];
  return () => {
    if (cards.length === 0) {
      cards = [...kinds];
      for (let i = cards.length - 1; i > 0; i--) {
        const j = rng.int(0, i);
        [cards[i], cards[j]] = [cards[j]!, cards[i]!];
      }
    }
    return cards.pop()!;
  };
}

function owner(email: string): Person {
  return { name: ownerName(email), email, zone: 60 };
}

function planThreads(opts: GenerateMailboxOptions, contacts: Contact[]): Planned[] {
  const rng = createRng(mixSeed(opts.seed, 0x7e4d));
  const me = owner(opts.email);
  const start = opts.startDate ?? DEFAULT_START;
  const planned: Planned[] = [];
  while (planned.length < opts.count) {
    const size = Math.min(rng.pick(THREAD_SIZES), opts.count - planned.length);
    const others = [...new Set(Array.from({ length: rng.int(1, 3) }, () => rng.pick(contacts)))];
    const subject = makeSubject(rng);
    const category = weighted(rng, CATEGORIES);
    const userLabel = rng.chance(0.25) ? rng.pick(GENERATED_USER_LABELS).id : null;
    const important = rng.chance(0.2);
    const spam = size === 1 && rng.chance(0.03);
    const trash = !spam && rng.chance(0.02);
    let time = start + Math.floor(rng.next() * SPAN_MS / 1000) * 1000;
    const thread: Planned[] = [];
    for (let i = 0; i < size; i++) {
      const prev = thread[i - 1];
      if (prev) time += rng.int(10 * 60, 3 * 86_400) * 1000;
      // Replies mostly alternate between the owner and the others.
      const fromOwner = !spam && rng.chance(prev ? (prev.fromOwner ? 0.2 : 0.7) : 0.25);
      const from = fromOwner ? me : rng.pick(others);
      const recipients = fromOwner ? others : [me, ...others.filter((o) => o.email !== from.email)];
      const recent = (time - start) / SPAN_MS;
      const labels: string[] = [];
      if (spam) labels.push("SPAM", "UNREAD");
      else if (fromOwner) labels.push("SENT");
      else {
        if (!trash && rng.chance(0.85)) labels.push("INBOX");
        labels.push(category);
        if (rng.chance(0.05 + 0.5 * recent ** 6)) labels.push("UNREAD");
        if (rng.chance(0.05)) labels.push("STARRED");
      }
      if (!spam) {
        if (important) labels.push("IMPORTANT");
        if (trash) labels.push("TRASH");
        if (userLabel) labels.push(userLabel);
      }
      const message: Planned = {
        time,
        from,
        to: recipients.slice(0, 1),
        cc: recipients.slice(1),
        fromOwner,
        subject: i === 0 ? subject : `Re: ${subject}`,
        labelIds: labels,
        ancestors: [...thread],
        messageId: "",
        attachments: [],
        quotable: "",
      };
      thread.push(message);
      planned.push(message);
    }
  }
  // Oldest first; the index breaks ties so the order does not depend on the sort's stability.
  return planned
    .map((message, index) => ({ message, index }))
    .sort((a, b) => a.message.time - b.message.time || a.index - b.index)
    .map(({ message }) => message);
}

function planAttachments(opts: GenerateMailboxOptions, messages: Planned[]): Set<AttachmentKind> {
  const used = new Set<AttachmentKind>();
  const count = messages.length;
  if (opts.large && count > 0) {
    messages[Math.floor(count / 2)]!.attachments.push("large-csv");
    used.add("large-csv");
  }
  if (opts.attachments === false) return used;
  const rng = createRng(mixSeed(opts.seed, 0xa77a));
  const next = deck(rng, NORMAL_KINDS);
  const hostile = opts.hostile ?? true;
  // Hostile files sit at fixed spots spread over the mailbox, so a 300-message mailbox has each.
  const hostileAt = new Map<number, AttachmentKind>();
  if (hostile) HOSTILE_KINDS.forEach((kind, i) => hostileAt.set(Math.floor(((i + 0.5) * count) / HOSTILE_KINDS.length), kind));
  // Error diffusion rather than a coin per message: random placement, but the share of messages
  // with attachments stays at ATTACHMENT_RATE even in a small mailbox.
  let due = rng.next();
  messages.forEach((message, index) => {
    const special = hostileAt.get(index);
    due += rng.next() * 2 * ATTACHMENT_RATE;
    if (special) message.attachments.push(special);
    else if (due >= 1) {
      due -= 1;
      message.attachments.push(next());
      if (rng.chance(SECOND_ATTACHMENT_RATE)) {
        const second = next();
        if (!message.attachments.includes(second)) message.attachments.push(second);
      }
    }
    for (const kind of message.attachments) used.add(kind);
  });
  return used;
}

function firstName(person: Person): string {
  return person.name.split(" ")[0] || person.email;
}

/** `index` makes the message's searchable words unique within a mailbox. */
function buildRaw(message: Planned, uid: string, index: number, ownerEmail: string, rng: Rng, render: RenderAttachment): string {
  const token = makeToken(rng, index);
  const attachmentWord = `${makeToken(rng, index)}z`;
  const paragraphs = makeParagraphs(rng, token);
  message.quotable = paragraphs.find((p) => !p.includes(token)) ?? "";
  const greeting = `Hi ${firstName(message.to[0] ?? message.from)},`;
  const signOff = `${closing(rng)},`;
  const parent = message.ancestors[message.ancestors.length - 1];
  const quoteHeader = parent ? `On ${formatDate(parent.time, parent.from.zone)}, ${parent.from.name} <${parent.from.email}> wrote:` : "";

  const text =
    [greeting, ...paragraphs, `${signOff}\n${message.from.name}`].join("\n\n") +
    (parent ? `\n\n${quoteHeader}\n> ${parent.quotable}\n` : "\n");

  const rendered = message.attachments.map((kind, k) =>
    render(kind, {
      rng,
      attachmentWord,
      uid: `${uid}.${k}`,
      time: message.time,
      senderName: message.from.name,
      senderEmail: message.from.email,
    }),
  );
  const inline = rendered.filter((r) => r.contentId !== null);
  const attached = rendered.filter((r) => r.contentId === null);

  const html =
    `<div dir="ltr"><p>${escapeHtml(greeting)}</p>\n` +
    paragraphs.map((p) => `<p>${escapeHtml(p)}</p>\n`).join("") +
    inline.map((r) => `<p><img src="cid:${r.contentId}" alt="chart" width="320"></p>\n`).join("") +
    `<p>${escapeHtml(signOff)}<br>${escapeHtml(message.from.name)}</p></div>\n` +
    (parent
      ? `<div class="gmail_quote"><div class="gmail_attr">${escapeHtml(quoteHeader)}</div>` +
        `<blockquote class="gmail_quote">${escapeHtml(parent.quotable)}</blockquote></div>\n`
      : "");

  let body = multipart("alternative", `----=_Alt_${uid}`, [textPart("text/plain", text), textPart("text/html", html)]);
  if (inline.length > 0) body = multipart("related", `----=_Rel_${uid}`, [body, ...inline.map((r) => r.part)]);
  if (attached.length > 0) body = multipart("mixed", `----=_Mix_${uid}`, [body, ...attached.map((r) => r.part)]);

  const headers: string[] = [];
  if (!message.fromOwner) headers.push(`Delivered-To: ${ownerEmail}`);
  headers.push("MIME-Version: 1.0", `Date: ${formatDate(message.time, message.from.zone)}`, `Message-ID: ${message.messageId}`);
  if (parent) {
    headers.push(`In-Reply-To: ${parent.messageId}`);
    headers.push(`References: ${message.ancestors.map((a) => a.messageId).join("\r\n ")}`);
  }
  headers.push(`Subject: ${encodeWords(message.subject)}`, `From: ${formatAddress(message.from.name, message.from.email)}`);
  headers.push(`To: ${message.to.map((p) => formatAddress(p.name, p.email)).join(",\r\n ")}`);
  if (message.cc.length > 0) headers.push(`Cc: ${message.cc.map((p) => formatAddress(p.name, p.email)).join(",\r\n ")}`);
  return `${headers.join("\r\n")}\r\n${body}\r\n`;
}

export async function generateMailbox(opts: GenerateMailboxOptions): Promise<GeneratedMessage[]> {
  if (!Number.isInteger(opts.count) || opts.count < 0) throw new Error(`count must be a non-negative integer, got ${opts.count}`);
  const contacts = makeContacts(createRng(mixSeed(opts.seed, 0xc0)), 40);
  const messages = planThreads(opts, contacts);
  messages.forEach((message, n) => (message.messageId = `<${opts.seed}-${n}@${MESSAGE_ID_DOMAIN}>`));
  const render = await attachmentRenderer(planAttachments(opts, messages));
  // Oldest first, so every parent's quotable paragraph exists before its replies are written.
  return messages.map((message, n) => ({
    raw: Buffer.from(buildRaw(message, `${opts.seed}_${n}`, n, opts.email, createRng(mixSeed(opts.seed, n, 0xb0d7)), render), "latin1"),
    labelIds: message.labelIds,
    internalDate: message.time,
  }));
}

/**
 * One new incoming message (a delivery while the emulator runs), deterministic from the seed
 * except for the date (default: now). attachments: true → one attachment of a normal kind,
 * false → none, undefined → the seed decides (~20%, like a mailbox).
 */
export async function generateMessage(opts: {
  seed: number;
  email: string;
  attachments?: boolean;
  date?: number;
}): Promise<GeneratedMessage> {
  const rng = createRng(mixSeed(opts.seed, 0x11fe));
  const contacts = makeContacts(rng, 8);
  const from = rng.pick(contacts);
  const me = owner(opts.email);
  const time = Math.floor((opts.date ?? Date.now()) / 1000) * 1000;
  const withAttachment = opts.attachments ?? rng.chance(ATTACHMENT_RATE);
  const attachments = withAttachment ? [rng.pick(NORMAL_KINDS)] : [];
  const labelIds = ["INBOX", "UNREAD", "CATEGORY_PERSONAL"];
  if (rng.chance(0.2)) labelIds.push("IMPORTANT");
  const message: Planned = {
    time,
    from,
    to: [me],
    cc: [],
    fromOwner: false,
    subject: makeSubject(rng),
    labelIds,
    ancestors: [],
    messageId: `<${opts.seed}-live@${MESSAGE_ID_DOMAIN}>`,
    attachments,
    quotable: "",
  };
  const render = await attachmentRenderer(attachments);
  const raw = buildRaw(message, `${opts.seed}_live`, opts.seed >>> 0, opts.email, rng, render);
  return { raw: Buffer.from(raw, "latin1"), labelIds, internalDate: time };
}
