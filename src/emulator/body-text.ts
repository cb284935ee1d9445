// Ground truth for a mirror's body text: the message's own text/plain body (never one inside an
// attached message, never a part sent as an attachment), decoded by its declared charset — the
// text Gmail serves as UTF-8. A sync that decodes the served bytes again, or takes a forwarded
// message's text for the outer one, does not match it. null when the message has no such part.
import { decodeText } from "./charset.ts";
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

export function plainBodyText(mailbox: Mailbox, msg: StoredMessage): string | null {
  const part = firstPlain(mailbox.tree(msg));
  return part ? decodeText(decodeBody(part), part.params.charset) : null;
}
