// message/rfc822 (a forwarded or attached email): the inner message's headers and body text,
// never its attachments' bytes (only their names are listed).
import { readFileSync } from "node:fs";
import { createRequire } from "node:module";
import PostalMime, { type Address } from "postal-mime";
import { htmlToText } from "./html.ts";
import { cleanText } from "./hygiene.ts";
import type { ExtractLimits, ExtractOutcome } from "./protocol.ts";

const require = createRequire(import.meta.url);
const version = (JSON.parse(readFileSync(require.resolve("postal-mime/package.json"), "utf8")) as { version: string })
  .version;

function formatAddress(a: Address): string {
  if (a.group !== undefined) return `${a.name}: ${a.group.map(formatAddress).join(", ")};`;
  return a.name ? `${a.name} <${a.address}>` : a.address;
}

export async function extractRfc822(bytes: Uint8Array, limits: ExtractLimits): Promise<ExtractOutcome> {
  const base = { detectedType: "message/rfc822", extractor: "postal-mime", extractorVersion: version };
  let email;
  try {
    // Nested messages stay inline (their text is part of what was forwarded); attachment bodies
    // are decoded by the parser but only their names are kept.
    email = await PostalMime.parse(bytes, { attachmentEncoding: "arraybuffer", maxNestingDepth: 64 });
  } catch (err) {
    return {
      ...base,
      text: null,
      textTruncated: false,
      skippedReason: "corrupt",
      details: { reason: String((err as Error)?.message ?? err).slice(0, 200) },
    };
  }
  const lines: string[] = [];
  if (email.from) lines.push(`From: ${formatAddress(email.from)}`);
  if (email.to?.length) lines.push(`To: ${email.to.map(formatAddress).join(", ")}`);
  if (email.cc?.length) lines.push(`Cc: ${email.cc.map(formatAddress).join(", ")}`);
  if (email.date) lines.push(`Date: ${email.date}`);
  if (email.subject) lines.push(`Subject: ${email.subject}`);
  const body = email.text ?? (email.html ? htmlToText(email.html, limits).text : "");
  const names = email.attachments.map((a) => a.filename).filter((n): n is string => !!n);
  const parts = [lines.join("\n"), body];
  if (names.length > 0) parts.push(`Attachments: ${names.join(", ")}`);
  const clean = cleanText(parts.join("\n\n"), limits.maxTextBytes);
  return {
    ...base,
    text: clean.text,
    textTruncated: clean.truncated,
    skippedReason: null,
    details: { attachments: email.attachments.length, subject: email.subject?.slice(0, 1000) },
  };
}
