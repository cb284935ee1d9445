// Ground truth for a mirror's body text: the message's own text/plain body (never one inside an
// attached message, never a part sent as an attachment), as its sender wrote it. That is the text
// Gmail serves as UTF-8 (decoded by the declared charset), except for UTF-8 mislabelled with a
// label Gmail reads as windows-1252 (iso-8859-1, us-ascii, windows-1252…): Gmail serves that as
// mojibake, the sender wrote the UTF-8 text, and a mirror is expected to repair it. A sync that
// decodes the served bytes again, or takes a forwarded message's text for the outer one, does not
// match it. null when the message has no such part.
//
// Not recoverable, so the truth stays what Gmail serves: the opposite mislabel, windows-1252 bytes
// declared UTF-8, whose invalid bytes Gmail turns into U+FFFD (charset.ts) — the original bytes
// are gone from body.data.
import { isAscii, isUtf8 } from "node:buffer";
import { decodeText, whatwgEncoding } from "./charset.ts";
import type { Mailbox, StoredMessage } from "./mailbox.ts";
import { decodeBody, type MimeNode } from "./mime.ts";

function firstPlain(node: MimeNode): MimeNode | undefined {
  if (node.mimeType.startsWith("message/")) return undefined;
  if (node.mimeType.startsWith("multipart/")) {
    for (const c of node.children) {
      const hit = firstPlain(c);
      if (hit) return hit;
    }
    return undefined;
  }
  const attachment = node.filename !== "" || node.disposition === "attachment";
  return node.mimeType === "text/plain" && !attachment ? node : undefined;
}

/**
 * The text the sender wrote. Non-ASCII bytes that are valid UTF-8 under a windows-1252-family label
 * were written in UTF-8: real windows-1252 text is, in practice, never valid UTF-8 (an accented
 * letter is one high byte, not a lead byte followed by the right number of continuation bytes).
 */
export function senderText(bytes: Buffer, charset: string | undefined): string {
  if (!isAscii(bytes) && isUtf8(bytes) && whatwgEncoding(charset) === "windows-1252") return bytes.toString("utf8");
  return decodeText(bytes, charset);
}

export function plainBodyText(mailbox: Mailbox, msg: StoredMessage): string | null {
  const part = firstPlain(mailbox.tree(msg));
  return part ? senderText(decodeBody(part), part.params.charset) : null;
}
