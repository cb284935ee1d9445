// Messages forwarded as attachments (message/rfc822), as Gmail's "Forward as attachment", Outlook
// and Apple Mail send them: a short note from the forwarder and the original message attached
// whole, named "<subject>.eml" or nameless. Some originals carry attachments of their own, and
// some forwarding notes are HTML-only, so a body walk that does not stop at the attached message
// finds the original's text/plain before the forwarder's note.
import type { AttachmentKind, RenderAttachment } from "./attachment-parts.ts";
import { encodeWords, escapeHtml, fileParams, formatAddress, formatDate, multipart, textPart } from "./mime.ts";
import type { Rng } from "./prng.ts";

export interface ForwardPlan {
  /** The original's subject (the outer subject is "Fwd: " + it). */
  innerSubject: string;
  /** The attached part is named "<subject>.eml" (else it has no filename). */
  named: boolean;
  /** The forwarder's note is text/html only. */
  htmlOnly: boolean;
  /** An attachment inside the original, or null. */
  innerAttachment: AttachmentKind | null;
  /** The original's sender. */
  original: { name: string; email: string; zone: number };
}

export const FORWARD_NOTE = "Forwarding the message below as an attachment.";

export interface ForwardContext {
  rng: Rng;
  uid: string;
  time: number;
  /** The forwarder (the outer message's sender): the original was addressed to them. */
  forwarderName: string;
  forwarderEmail: string;
  /** Appears only inside the original, never in the outer message's own body. */
  innerWord: string;
  render: RenderAttachment;
}

/** The outer message's own body: the forwarder's note, text and HTML or HTML only. */
export function forwardNote(plan: ForwardPlan, referenceSentence: string, uid: string): string {
  const html = `<div dir="ltr"><p>${escapeHtml(FORWARD_NOTE)}</p><p>${escapeHtml(referenceSentence)}</p></div>\r\n`;
  if (plan.htmlOnly) return textPart("text/html", html);
  return multipart("alternative", `----=_FwdAlt_${uid}`, [
    textPart("text/plain", `${FORWARD_NOTE}\n\n${referenceSentence}\n`),
    textPart("text/html", html),
  ]);
}

/** The attached original: a message/rfc822 part (headers, blank line, the whole message). */
export function forwardedPart(plan: ForwardPlan, ctx: ForwardContext): string {
  const date = ctx.time - ctx.rng.int(1, 30) * 86_400_000;
  const text = `Hello,\n\nThe original message says hello. The forwarded word is ${ctx.innerWord}.\n\n${plan.original.name}\n`;
  const html = `<div><p>Hello,</p><p>The original message says hello. The forwarded word is ${escapeHtml(ctx.innerWord)}.</p><p>${escapeHtml(plan.original.name)}</p></div>\r\n`;
  let body = multipart("alternative", `----=_OrigAlt_${ctx.uid}`, [
    textPart("text/plain", text),
    textPart("text/html", html),
  ]);
  if (plan.innerAttachment) {
    const attachment = ctx.render(plan.innerAttachment, {
      rng: ctx.rng,
      attachmentWord: ctx.innerWord,
      uid: `${ctx.uid}.orig`,
      time: date,
      senderName: plan.original.name,
      senderEmail: plan.original.email,
    });
    body = multipart("mixed", `----=_OrigMix_${ctx.uid}`, [body, attachment.part]);
  }
  const inner =
    `MIME-Version: 1.0\r\nDate: ${formatDate(date, plan.original.zone)}\r\nMessage-ID: <orig-${ctx.uid}@generator.gmail-sync.test>\r\n` +
    `Subject: ${encodeWords(plan.innerSubject)}\r\nFrom: ${formatAddress(plan.original.name, plan.original.email)}\r\n` +
    `To: ${formatAddress(ctx.forwarderName, ctx.forwarderEmail)}\r\n${body}\r\n`;
  if (!plan.named) return `Content-Type: message/rfc822\r\nContent-Disposition: attachment\r\n\r\n${inner}`;
  const params = fileParams(`${plan.innerSubject.replace(/[\\/:*?"<>|]/g, "_")}.eml`);
  return `Content-Type: message/rfc822; ${params.name}\r\nContent-Disposition: attachment; ${params.filename}\r\n\r\n${inner}`;
}
