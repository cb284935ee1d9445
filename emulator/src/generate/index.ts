// The mailbox generator and attachment fixture builders, for the emulator and for tests.
export { generateMailbox, generateMessage, type GeneratedMessage, type GenerateMailboxOptions } from "./mailbox.ts";
export {
  makeCorruptPdf,
  makeCsv,
  makeDocx,
  makeEncryptedDocx,
  makeEncryptedPdf,
  makeEntityBombDocx,
  makeHtml,
  makeImageOnlyPdf,
  makeLoopingPdf,
  makePdf,
  makePng,
  makeZipBombDocx,
} from "./attachments.ts";
export {
  DOCX_KEYWORDS,
  FIXED_FILENAMES,
  HOSTILE_KINDS,
  LARGE_ATTACHMENT_BYTES,
  NORMAL_KINDS,
  PDF_KEYWORDS,
  type AttachmentKind,
} from "./attachment-parts.ts";
export { GENERATED_USER_LABELS } from "./content.ts";
export { LEGACY_CHARSETS, encodeIso2022Jp, legacyLabel, legacySentences, type LegacyCharset } from "./charsets.ts";
export { FORWARD_NOTE } from "./forwarded.ts";
export { LARGE_BODY_BYTES } from "./large-body.ts";
// MIME part builders, for tests that compose a message the generator does not make.
export { encodedTextPart, multipart, textPart } from "./mime.ts";
