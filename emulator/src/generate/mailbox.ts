// Deterministic mailboxes for the emulator: same seed → same bytes, labels and dates. Threads of
// 1–8 messages (replies carry In-Reply-To/References and "Re: " subjects), Gmail's system labels
// plus a few user labels, multipart/alternative bodies, RFC 2047 names and subjects, and
// attachments on ~20% of messages (every kind in NORMAL_KINDS; HOSTILE_KINDS once each per
// mailbox). Like a real mailbox it also holds (each on by default, off by option): legacy-charset
// bodies (~8%), messages forwarded as attachments (~3%), drafts (~1.5%) and, in mailboxes of 300
// or more, a body too large to be served inline (1 in 500). MIME is written here from
// pre-encoded fixture bodies, not with MailComposer: see mime.ts for why.
import {
  HOSTILE_KINDS,
  NORMAL_KINDS,
  attachmentRenderer,
  type AttachmentKind,
  type RenderAttachment,
} from "./attachment-parts.ts";
import { LEGACY_CHARSETS, legacyBody, legacySubject, type LegacyCharset } from "./charsets.ts";
import {
  CATEGORIES,
  GENERATED_USER_LABELS,
  closing,
  makeContacts,
  makeParagraphs,
  makeSubject,
  makeToken,
  ownerName,
  type Contact,
} from "./content.ts";
import { type DraftPlan, draftBody, draftHeaders, planDrafts } from "./drafts.ts";
import { type ForwardPlan, forwardNote, forwardedPart } from "./forwarded.ts";
import { largeHtmlPart } from "./large-body.ts";
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
  /** ~8% of incoming mail in iso-8859-1, windows-1252, ISO-2022-JP, Shift_JIS, GB2312, KOI8-R or mislabelled UTF-8. Default true. */
  legacyCharsets?: boolean;
  /** ~3% of messages forward another message as a message/rfc822 attachment. Default true; none when attachments is false (the .eml is an attachment). */
  forwarded?: boolean;
  /** In mailboxes of 300+ messages, 1 in 500 carries an HTML body above the body-by-reference threshold. Default true. */
  largeBodies?: boolean;
  /** ~1.5% of messages are the owner's drafts (label DRAFT only; replies in a thread or new, some empty). Default true. */
  drafts?: boolean;
}

const DEFAULT_START = Date.UTC(2024, 0, 1);
const SPAN_MS = 730 * 86_400_000;
const ATTACHMENT_RATE = 0.2;
const SECOND_ATTACHMENT_RATE = 0.15;
const THREAD_SIZES = [1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 3, 3, 3, 4, 4, 5, 5, 6, 7, 8] as const;
const MESSAGE_ID_DOMAIN = "generator.gmail-sync.test";
/**
 * Share of incoming mail in a legacy charset. Not measured: UTF-8 dominates current mail, but a
 * two-year mailbox still receives legacy-labelled mail (older mailers, Japanese ISO-2022-JP, PHP
 * mailers labelling UTF-8 as iso-8859-1), and at 8% a 300-message mailbox holds every variant.
 */
const LEGACY_RATE = 0.08;
/** Forward-as-attachment is rarer than inline forwarding; 3% puts several in a 300-message mailbox. */
const FORWARD_RATE = 0.03;
/** Among forwards: the .eml is named (Gmail's "Forward as attachment" names it "<subject>.eml"). */
const FORWARD_NAMED_RATE = 0.7;
const FORWARD_HTML_ONLY_RATE = 0.35;
const FORWARD_INNER_ATTACHMENT_RATE = 0.4;
const FORWARD_INNER_KINDS: readonly AttachmentKind[] = ["pdf", "png", "text", "docx"];
/** One message in this many carries a body too large to be served inline (mailboxes of 300+). */
const LARGE_BODY_EVERY = 500;

export interface Person {
  name: string;
  email: string;
  zone: number;
}

export interface Planned {
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
  /** The last message of its thread (nothing replies to it). */
  last: boolean;
  spam: boolean;
  trash: boolean;
  draft: DraftPlan | null;
  forward: ForwardPlan | null;
  legacy: LegacyCharset | null;
  largeBody: boolean;
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
    let time = start + Math.floor((rng.next() * SPAN_MS) / 1000) * 1000;
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
        last: i === size - 1,
        spam,
        trash,
        draft: null,
        forward: null,
        legacy: null,
        largeBody: false,
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
  if (hostile)
    for (const [i, kind] of HOSTILE_KINDS.entries())
      hostileAt.set(Math.floor(((i + 0.5) * count) / HOSTILE_KINDS.length), kind);
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

/**
 * Marks the messages that are special in a real mailbox: drafts, forwards, legacy-charset bodies
 * and large bodies, each from its own random stream so one feature switched off leaves the others
 * (and the attachments planned before) where they were. Returns attachment kinds the forwarded
 * originals carry, for the renderer to prepare.
 */
function planSpecial(opts: GenerateMailboxOptions, messages: Planned[], contacts: Contact[]): Set<AttachmentKind> {
  const kinds = new Set<AttachmentKind>();
  if (opts.drafts ?? true) planDrafts(createRng(mixSeed(opts.seed, 0xd7af)), messages, owner(opts.email));
  // A forwarded message is an attachment: a mailbox without attachments has none.
  if ((opts.forwarded ?? true) && opts.attachments !== false) {
    const rng = createRng(mixSeed(opts.seed, 0xf04d));
    let due = rng.next();
    let pending = 0;
    for (const m of messages) {
      due += rng.next() * 2 * FORWARD_RATE;
      if (due >= 1) {
        due -= 1;
        pending++;
      }
      // Only single-message threads: the outer subject becomes "Fwd: …" and nothing replies to it.
      if (pending === 0 || m.ancestors.length > 0 || !m.last || m.draft || m.spam) continue;
      pending--;
      const innerSubject = makeSubject(rng);
      const innerAttachment = rng.chance(FORWARD_INNER_ATTACHMENT_RATE) ? rng.pick(FORWARD_INNER_KINDS) : null;
      if (innerAttachment) kinds.add(innerAttachment);
      const original = rng.pick(contacts);
      m.forward = {
        innerSubject,
        named: rng.chance(FORWARD_NAMED_RATE),
        htmlOnly: rng.chance(FORWARD_HTML_ONLY_RATE),
        innerAttachment,
        original,
      };
      m.subject = `Fwd: ${innerSubject}`;
    }
  }
  if (opts.legacyCharsets ?? true) {
    const rng = createRng(mixSeed(opts.seed, 0x1e6a));
    const next = (() => {
      // Dealt from a shuffled deck so every charset shows up once per round.
      let cards: LegacyCharset[] = [];
      return () => {
        if (cards.length === 0) {
          cards = [...LEGACY_CHARSETS];
          for (let i = cards.length - 1; i > 0; i--) {
            const j = rng.int(0, i);
            [cards[i], cards[j]] = [cards[j]!, cards[i]!];
          }
        }
        return cards.pop()!;
      };
    })();
    let due = rng.next();
    for (const m of messages) {
      if (m.fromOwner || m.draft || m.forward) continue;
      due += rng.next() * 2 * LEGACY_RATE;
      if (due >= 1) {
        due -= 1;
        m.legacy = next();
      }
    }
  }
  if ((opts.largeBodies ?? true) && messages.length >= 300) {
    const n = Math.max(1, Math.round(messages.length / LARGE_BODY_EVERY));
    for (let k = 0; k < n; k++) {
      const at = Math.floor(((k + 0.5) * messages.length) / n);
      for (let i = 0; i < messages.length; i++) {
        const m = messages[(at + i) % messages.length]!;
        if (m.draft || m.forward || m.legacy || m.largeBody) continue;
        m.largeBody = true;
        break;
      }
    }
  }
  return kinds;
}

function addressList(people: Person[]): string {
  return people.map((p) => formatAddress(p.name, p.email)).join(",\r\n ");
}

/** `index` makes the message's searchable words unique within a mailbox. */
function buildRaw(
  message: Planned,
  uid: string,
  index: number,
  ownerEmail: string,
  rng: Rng,
  render: RenderAttachment,
): string {
  const token = makeToken(rng, index);
  const attachmentWord = `${makeToken(rng, index)}z`;
  const paragraphs = makeParagraphs(rng, token);
  message.quotable = paragraphs.find((p) => !p.includes(token)) ?? "";
  const greeting = `Hi ${firstName(message.to[0] ?? message.from)},`;
  const signOff = `${closing(rng)},`;
  const parent = message.ancestors[message.ancestors.length - 1];
  const quoteHeader = parent
    ? `On ${formatDate(parent.time, parent.from.zone)}, ${parent.from.name} <${parent.from.email}> wrote:`
    : "";

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
  const reference = `The reference word for this one is ${token}.`;
  // Only an ordinary HTML body refers to inline images; elsewhere they travel as attachments.
  const ordinary = !message.legacy && !message.forward && !message.draft?.empty && message.draft?.style !== "api";
  const inline = ordinary ? rendered.filter((r) => r.contentId !== null) : [];
  const attached = rendered.filter((r) => !inline.includes(r)).map((r) => r.part);

  let body: string;
  if (message.legacy) {
    const legacy = legacyBody(message.legacy, rng, reference, `----=_Alt_${uid}`);
    message.quotable = legacy.quotable;
    body = legacy.part;
  } else if (message.forward) {
    body = forwardNote(message.forward, reference, uid);
    attached.unshift(
      forwardedPart(message.forward, {
        rng,
        uid,
        time: message.time,
        forwarderName: message.from.name,
        forwarderEmail: message.from.email,
        innerWord: `${attachmentWord}f`,
        render,
      }),
    );
  } else {
    const html = message.largeBody
      ? undefined
      : `<div dir="ltr"><p>${escapeHtml(greeting)}</p>\n` +
        paragraphs.map((p) => `<p>${escapeHtml(p)}</p>\n`).join("") +
        inline.map((r) => `<p><img src="cid:${r.contentId}" alt="chart" width="320"></p>\n`).join("") +
        `<p>${escapeHtml(signOff)}<br>${escapeHtml(message.from.name)}</p></div>\n` +
        (parent
          ? `<div class="gmail_quote"><div class="gmail_attr">${escapeHtml(quoteHeader)}</div>` +
            `<blockquote class="gmail_quote">${escapeHtml(parent.quotable)}</blockquote></div>\n`
          : "");
    body =
      draftBody(message, text, uid) ??
      multipart("alternative", `----=_Alt_${uid}`, [
        textPart("text/plain", text),
        html === undefined ? largeHtmlPart() : textPart("text/html", html),
      ]);
  }
  if (inline.length > 0) body = multipart("related", `----=_Rel_${uid}`, [body, ...inline.map((r) => r.part)]);
  if (attached.length > 0) body = multipart("mixed", `----=_Mix_${uid}`, [body, ...attached]);

  const headers: string[] = draftHeaders(message);
  if (!message.fromOwner) headers.push(`Delivered-To: ${ownerEmail}`);
  headers.push(
    "MIME-Version: 1.0",
    `Date: ${formatDate(message.time, message.from.zone)}`,
    `Message-ID: ${message.messageId}`,
  );
  if (parent) {
    headers.push(`In-Reply-To: ${parent.messageId}`);
    headers.push(`References: ${message.ancestors.map((a) => a.messageId).join("\r\n ")}`);
  }
  const subject =
    (message.legacy ? legacySubject(message.legacy, message.subject) : undefined) ?? encodeWords(message.subject);
  headers.push(`Subject: ${subject}`, `From: ${formatAddress(message.from.name, message.from.email)}`);
  if (message.to.length > 0) headers.push(`To: ${addressList(message.to)}`);
  if (message.cc.length > 0) headers.push(`Cc: ${addressList(message.cc)}`);
  return `${headers.join("\r\n")}\r\n${body}\r\n`;
}

export async function generateMailbox(opts: GenerateMailboxOptions): Promise<GeneratedMessage[]> {
  if (!Number.isInteger(opts.count) || opts.count < 0)
    throw new Error(`count must be a non-negative integer, got ${opts.count}`);
  const contacts = makeContacts(createRng(mixSeed(opts.seed, 0xc0)), 40);
  const messages = planThreads(opts, contacts);
  for (const [n, message] of messages.entries()) message.messageId = `<${opts.seed}-${n}@${MESSAGE_ID_DOMAIN}>`;
  const kinds = planAttachments(opts, messages);
  for (const kind of planSpecial(opts, messages, contacts)) kinds.add(kind);
  const render = await attachmentRenderer(kinds);
  // Oldest first, so every parent's quotable paragraph exists before its replies are written.
  return messages.map((message, n) => ({
    raw: Buffer.from(
      buildRaw(message, `${opts.seed}_${n}`, n, opts.email, createRng(mixSeed(opts.seed, n, 0xb0d7)), render),
      "latin1",
    ),
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
    last: true,
    spam: false,
    trash: false,
    draft: null,
    forward: null,
    legacy: null,
    largeBody: false,
  };
  const render = await attachmentRenderer(attachments);
  const raw = buildRaw(message, `${opts.seed}_live`, opts.seed >>> 0, opts.email, rng, render);
  return { raw: Buffer.from(raw, "latin1"), labelIds, internalDate: time };
}
