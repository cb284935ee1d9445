// The owner's drafts, as Gmail stores them: label DRAFT and nothing else, from the owner, either a
// reply being written inside an existing thread (In-Reply-To/References, "Re: " subject) or a new
// message, some still empty (body "\r\n", HTML "<div dir="ltr"><br></div>": snippet "") and some
// not yet addressed (no To, empty Subject) — gmail-real-samples/messages_get_full_draft_empty_snippet.json.
// Drafts written in the web client are multipart/alternative; drafts made through the API
// (drafts.create) are the client's MIME as sent, with a "Received: … by gmailapi.google.com with
// HTTPREST" header first (messages_get_metadata_draft.json, drafts_get_full.json).
import type { Person, Planned } from "./mailbox.ts";
import { formatDate, multipart, textPart } from "./mime.ts";
import type { Rng } from "./prng.ts";

export interface DraftPlan {
  /** No body yet: snippet "". */
  empty: boolean;
  /** Saved by the web client (multipart/alternative) or created through the API (text/plain, Received: … HTTPREST). */
  style: "web" | "api";
  /** Has recipients (a new empty draft may have none yet, and no subject). */
  addressed: boolean;
}

/** Share of messages that are drafts (a few dozen in a 2,000-message mailbox). */
const DRAFT_RATE = 0.015;

/**
 * Turns about DRAFT_RATE of the messages into the owner's drafts. Only the last message of a
 * thread can be one (nothing replies to a draft), never spam or trash. Drafts take turns: a reply
 * in a thread, then a new message; every third is empty (a new empty one is not yet addressed,
 * like the recorded one) and every third an API draft, so even a small mailbox has each kind.
 */
export function planDrafts(rng: Rng, messages: Planned[], me: Person): void {
  let due = rng.next();
  let pending = 0;
  let made = 0;
  for (const m of messages) {
    due += rng.next() * 2 * DRAFT_RATE;
    if (due >= 1) {
      due -= 1;
      pending++;
    }
    const parent = m.ancestors[m.ancestors.length - 1];
    if (pending === 0 || !m.last || m.spam || m.trash || (parent !== undefined) !== (made % 2 === 0)) continue;
    pending--;
    const turn = made++ % 3;
    const others = [m.from, ...m.to, ...m.cc].filter((p) => p.email !== me.email);
    m.fromOwner = true;
    m.from = me;
    if (parent) {
      m.to = parent.fromOwner ? parent.to : [parent.from];
      m.cc = [];
    } else {
      m.to = others.slice(0, 1);
      m.cc = others.slice(1);
    }
    m.labelIds = ["DRAFT"];
    const empty = turn === 1;
    const addressed = parent !== undefined || !empty;
    if (!addressed) {
      m.to = [];
      m.cc = [];
      m.subject = "";
    }
    m.draft = { empty, style: turn === 2 ? "api" : "web", addressed };
  }
}

/** Headers a draft has before the usual ones (an API-made draft's Received line). */
export function draftHeaders(m: Planned): string[] {
  return m.draft?.style === "api"
    ? [
        `Received: from 336000000000 named unknown by gmailapi.google.com with HTTPREST; ${formatDate(m.time, m.from.zone)}`,
      ]
    : [];
}

/**
 * The draft's body when it differs from a normal message's: empty (what the web client saves
 * before anything is typed) or an API draft's single text/plain part. undefined: a normal body.
 */
export function draftBody(m: Planned, text: string, uid: string): string | undefined {
  if (!m.draft) return undefined;
  if (m.draft.empty)
    return multipart("alternative", `----=_Draft_${uid}`, [
      textPart("text/plain", "\r\n"),
      textPart("text/html", '<div dir="ltr"><br></div>\r\n'),
    ]);
  if (m.draft.style === "api") return textPart("text/plain", text);
  return undefined;
}
