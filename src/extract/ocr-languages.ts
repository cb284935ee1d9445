// Where OCR language data lives: the installed @tesseract.js-data/<lang> npm packages (MIT), never
// a download. Resolved in the worker when the OCR pool starts (a language that is not installed
// stops start-up with its name) and in the OCR child, which may read exactly these folders.
import { createRequire } from "node:module";
import path from "node:path";

const require = createRequire(import.meta.url);

/** The LSTM-only ("best_int") traineddata folder of one language package. */
export function languageDir(lang: string): string {
  if (!/^[a-z_]{3,16}$/i.test(lang)) throw new Error(`not a tesseract language code: ${lang}`);
  let manifest: string;
  try {
    manifest = require.resolve(`@tesseract.js-data/${lang}/package.json`);
  } catch {
    throw new Error(`OCR language ${lang} is not installed: npm install @tesseract.js-data/${lang}`);
  }
  return path.join(path.dirname(manifest), "4.0.0_best_int");
}

export function ocrLanguageDirs(languages: string[]): string[] {
  return languages.map(languageDir);
}
