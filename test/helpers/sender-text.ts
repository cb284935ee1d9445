// postal-mime (the tests' independent MIME oracle) decodes a part by its declared charset, so for
// the emulator's mislabelled mail — UTF-8 sentences declared iso-8859-1 (generate/charsets.ts) — it
// gives the windows-1252 mojibake Gmail serves, not what the sender wrote. The generator's
// sentences are known, so the sender's text is that reading with each sentence put back; this
// oracle shares nothing with the engine's repair (src/gmail/mojibake.ts).
import { legacySentences } from "@gmail-sync/emulator/generate";

const windows1252 = new TextDecoder("windows-1252");
const MISLABELLED = legacySentences("mislabelled-utf8").map(
  (s) => [windows1252.decode(Buffer.from(s, "utf8")), s] as const,
);

/** The sender's text for a postal-mime reading of generated mail; `mislabelled` says whether any sentence was put back. */
export function generatedSenderText(labelReading: string): { text: string; mislabelled: boolean } {
  let text = labelReading;
  for (const [mojibake, sentence] of MISLABELLED) text = text.replaceAll(mojibake, sentence);
  return { text, mislabelled: text !== labelReading };
}
