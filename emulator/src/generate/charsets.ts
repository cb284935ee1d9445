// Legacy-charset mail, as real mailboxes still hold it: Western European in iso-8859-1 and
// windows-1252 (the former often carrying windows-1252 bytes such as € and curly quotes, which
// Gmail reads by windows-1252 rules), Japanese in ISO-2022-JP (7bit, the Japanese mail norm) and
// Shift_JIS, Simplified Chinese in GB2312, Russian in KOI8-R, and UTF-8 bytes mislabelled
// iso-8859-1 (what PHP mailers send; gmail-real-samples/messages_get_full_iso8859_html_converted.json
// is one). Each body is in the language of its charset; the text and HTML parts carry the same
// words. The message's searchable reference sentence stays ASCII, so it survives every charset.
import { TextDecoder } from "node:util";
import iconv from "iconv-lite";
import { encodedTextPart, escapeHtml, multipart } from "./mime.ts";
import type { Rng } from "./prng.ts";

export const LEGACY_CHARSETS = [
  "iso-8859-1",
  "windows-1252",
  "iso-2022-jp",
  "shift_jis",
  "gb2312",
  "koi8-r",
  "mislabelled-utf8",
] as const;
export type LegacyCharset = (typeof LEGACY_CHARSETS)[number];

const WESTERN = [
  "Die Rechnung über 1.250 € ist „bereits bezahlt“ – vielen Dank!",
  "Le devis révisé s’élève à 980 € — merci de confirmer d’ici vendredi…",
  "Our “Premium” plan™ now costs €12 per month – that’s 15 % less.",
  "Öffnungszeiten: Mo–Fr 9–17 Uhr • samstags geschlossen.",
  "Ça marche ! On se retrouve à l’hôtel « Le Château » à 19 h.",
  "Señor Muñoz, ¿podría enviarnos la factura? ¡Gracias!",
];
const JAPANESE = [
  "いつもお世話になっております。",
  "来週の打ち合わせの資料をお送りいたします。",
  "ご確認のほど、よろしくお願い申し上げます。",
  "会議は十時から第三会議室で行います。",
  "見積書を添付しましたので、ご査収ください。",
  "出張の日程が決まりましたらご連絡します。",
];
const CHINESE = [
  "您好，附件是本月的销售报告，请查收。",
  "会议改到星期四下午三点，地点不变。",
  "如有任何问题，请随时与我联系。",
  "我们已经收到您的订单，预计下周发货。",
  "请在周五之前确认合同的最终版本。",
];
const RUSSIAN = [
  "Добрый день! Отправляю вам отчёт за прошлый месяц.",
  "Пожалуйста, проверьте цифры до пятницы.",
  "Встреча переносится на среду, в 15:00.",
  "Счёт оплачен, спасибо за быструю работу.",
  "Документы лежат в общей папке, всё подписано.",
];
/** Written as UTF-8 and labelled iso-8859-1: each has characters whose UTF-8 bytes turn to mojibake. */
const MISLABELLED = [
  "Don’t miss this week’s offers » see all deals",
  "Café opening hours – Monday to Friday",
  "Your order has shipped ✓ tracking is available",
  "Prices from 9 € per person, breakfast included",
];

interface Variant {
  /** The charset= written in Content-Type (as senders spell it). */
  label: string;
  sentences: readonly string[];
  greetings: readonly string[];
  closings: readonly string[];
  encode(text: string): Buffer;
  /** Transfer encodings senders use for it; one is picked per message. */
  encodings: ReadonlyArray<"7bit" | "quoted-printable" | "base64">;
}

const iconvEncoder = (name: string) => (text: string) => iconv.encode(text, name);

const VARIANTS: Record<LegacyCharset, Variant> = {
  // Labelled iso-8859-1 but written by a Windows mailer: € and curly quotes are windows-1252 bytes.
  "iso-8859-1": {
    label: "iso-8859-1",
    sentences: WESTERN,
    greetings: ["Bonjour,", "Hola,"],
    closings: ["Cordialement", "Saludos"],
    encode: iconvEncoder("windows-1252"),
    encodings: ["quoted-printable"],
  },
  "windows-1252": {
    label: "Windows-1252",
    sentences: WESTERN,
    greetings: ["Sehr geehrte Damen und Herren,", "Hello,"],
    closings: ["Mit freundlichen Grüßen", "Best regards"],
    encode: iconvEncoder("windows-1252"),
    encodings: ["quoted-printable", "base64"],
  },
  "iso-2022-jp": {
    label: "ISO-2022-JP",
    sentences: JAPANESE,
    greetings: ["山田様", "各位"],
    closings: ["以上、よろしくお願いいたします。"],
    encode: encodeIso2022Jp,
    encodings: ["7bit"],
  },
  shift_jis: {
    label: "Shift_JIS",
    sentences: JAPANESE,
    greetings: ["田中様", "皆様"],
    closings: ["今後ともよろしくお願いいたします。"],
    encode: iconvEncoder("shift_jis"),
    encodings: ["base64"],
  },
  gb2312: {
    label: "GB2312",
    sentences: CHINESE,
    greetings: ["您好！", "各位同事："],
    closings: ["谢谢！", "此致敬礼"],
    encode: iconvEncoder("gb2312"),
    encodings: ["base64"],
  },
  "koi8-r": {
    label: "KOI8-R",
    sentences: RUSSIAN,
    greetings: ["Здравствуйте!", "Коллеги, добрый день."],
    closings: ["С уважением"],
    encode: iconvEncoder("koi8-r"),
    encodings: ["quoted-printable", "base64"],
  },
  "mislabelled-utf8": {
    label: "iso-8859-1",
    sentences: MISLABELLED,
    greetings: ["Hello,"],
    closings: ["The team"],
    encode: (text) => Buffer.from(text, "utf8"),
    encodings: ["quoted-printable", "base64"],
  },
};

/** The sentences a variant's bodies are made of (tests recognise served text by them). */
export function legacySentences(charset: LegacyCharset): readonly string[] {
  return VARIANTS[charset].sentences;
}

/** The charset= a variant's parts declare. */
export function legacyLabel(charset: LegacyCharset): string {
  return VARIANTS[charset].label;
}

/**
 * ISO-2022-JP (RFC 1468) from text in ASCII and JIS X 0208: two-byte runs are the EUC-JP bytes
 * less 0x80, between ESC $ B and ESC ( B; every line ends in ASCII mode. iconv-lite has no
 * ISO-2022-JP encoder; its EUC-JP one gives the JIS X 0208 codes.
 */
export function encodeIso2022Jp(text: string): Buffer {
  const euc = iconv.encode(text, "euc-jp");
  const out: number[] = [];
  let jis = false;
  for (let i = 0; i < euc.length; i++) {
    const b = euc[i] as number;
    if (b < 0x80) {
      if (jis) out.push(0x1b, 0x28, 0x42);
      jis = false;
      out.push(b);
    } else {
      const b2 = euc[i + 1];
      if (b < 0xa1 || b2 === undefined || b2 < 0xa1) throw new Error(`not in JIS X 0208: ${JSON.stringify(text)}`);
      if (!jis) out.push(0x1b, 0x24, 0x42);
      jis = true;
      out.push(b - 0x80, b2 - 0x80);
      i++;
    }
  }
  if (jis) out.push(0x1b, 0x28, 0x42);
  return Buffer.from(out);
}

/** Whether `text` survives this variant's encoding, read back as Gmail reads the label. */
function encodable(variant: Variant, text: string): boolean {
  try {
    return new TextDecoder(variant.label).decode(variant.encode(text)) === text;
  } catch {
    return false;
  }
}

/**
 * A subject as an RFC 2047 encoded word in the variant's charset (as such senders write it), or
 * undefined when the subject does not fit the charset. Mislabelled mail keeps UTF-8 subjects.
 */
export function legacySubject(charset: LegacyCharset, subject: string): string | undefined {
  const variant = VARIANTS[charset];
  if (charset === "mislabelled-utf8" || /^[\x20-\x7e]*$/.test(subject) || !encodable(variant, subject))
    return undefined;
  // Short chunks, each a complete encoded word (an ISO-2022-JP word must end in ASCII mode).
  const chars = [...subject];
  const words: string[] = [];
  for (let i = 0; i < chars.length; i += 12)
    words.push(`=?${variant.label}?B?${variant.encode(chars.slice(i, i + 12).join("")).toString("base64")}?=`);
  return words.join("\r\n ");
}

export interface LegacyBody {
  /** multipart/alternative (text and HTML, both in the charset), headers included. */
  part: string;
  /** The plain text as the sender wrote it (what a converting server serves, but for mislabelled mail). */
  text: string;
  /** A paragraph replies may quote. */
  quotable: string;
}

export function legacyBody(charset: LegacyCharset, rng: Rng, referenceSentence: string, boundary: string): LegacyBody {
  const v = VARIANTS[charset];
  const picked = Array.from({ length: rng.int(2, 3) }, () => rng.pick(v.sentences));
  const greeting = rng.pick(v.greetings);
  const closing = rng.pick(v.closings);
  const lines = [greeting, "", ...picked, "", referenceSentence, "", closing, ""];
  const text = lines.join("\r\n");
  const html =
    `<html><head><meta http-equiv="Content-Type" content="text/html; charset=${v.label}"></head><body>\r\n` +
    `<p>${escapeHtml(greeting)}</p>\r\n${picked.map((s) => `<p>${escapeHtml(s)}</p>\r\n`).join("")}` +
    `<p>${escapeHtml(referenceSentence)}</p>\r\n<p>${escapeHtml(closing)}</p>\r\n</body></html>\r\n`;
  const cte = rng.pick(v.encodings);
  const part = multipart("alternative", boundary, [
    encodedTextPart("text/plain", v.label, v.encode(text), cte),
    encodedTextPart("text/html", v.label, v.encode(html), cte),
  ]);
  return { part, text, quotable: picked[0] as string };
}
