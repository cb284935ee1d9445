// The generated text-dense PDF set that bench:extract and bench:pdf-engines both time: pdf-lib
// pages of deterministic pseudo-English (~4,300 characters a page), 10 to 500 pages a file.
import { stat, writeFile } from "node:fs/promises";
import path from "node:path";
import { makePdf } from "@gmail-sync/emulator/generate";

const WORDS = (
  "the of and to in is that for it as was with be by on not he this are or his from at which but have an they you were " +
  "her she there been one all we their has would when if so no will more can who out up about than into them only time " +
  "budget committee quarterly report revenue northern region review approved figures growth market customer service " +
  "contract delivery schedule invoice payment account balance forecast analysis strategy policy research development"
).split(" ");

export function rng(seed: number): () => number {
  let s = seed >>> 0;
  return () => (s = (Math.imul(s, 1664525) + 1013904223) >>> 0) / 2 ** 32;
}

/** About `chars` characters of pseudo-English words, the same for the same seed. */
export function prose(seed: number, chars: number): string {
  const r = rng(seed);
  const out: string[] = [];
  let n = 0;
  while (n < chars) {
    const w = WORDS[Math.floor(r() * WORDS.length)]!;
    out.push(w);
    n += w.length + 1;
  }
  return out.join(" ");
}

export const PDF_PAGES = [10, 50, 100, 250, 500];

/** Writes the set into `dir`: one file per entry of PDF_PAGES. */
export async function writeGeneratedPdfs(dir: string): Promise<Array<{ file: string; pages: number; size: number }>> {
  const pdfs: Array<{ file: string; pages: number; size: number }> = [];
  for (const pages of PDF_PAGES) {
    const file = path.join(dir, `gen-${pages}p.pdf`);
    await writeFile(
      file,
      await makePdf({ pages, text: (p) => prose(pages * 10_000 + p, 4300), title: `Generated ${pages} pages` }),
    );
    pdfs.push({ file, pages, size: (await stat(file)).size });
  }
  return pdfs;
}
