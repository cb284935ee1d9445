// A minimal hand-written PDF serializer for the fixtures pdf-lib cannot express: encryption
// (pdf-lib has no security handler) and pathological object graphs. Objects are numbered from 1
// in array order; offsets and the xref table are computed here.

export type PdfObject = string | { dict: string; stream: Buffer };

export function serializePdf(objects: readonly PdfObject[], trailerExtra: string): Buffer {
  const chunks: Buffer[] = [];
  let length = 0;
  const push = (chunk: Buffer | string): void => {
    const buf = typeof chunk === "string" ? Buffer.from(chunk, "latin1") : chunk;
    chunks.push(buf);
    length += buf.length;
  };
  // The binary comment line tells tools the file is not 7-bit text.
  push("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n");
  const offsets: number[] = [];
  objects.forEach((object, index) => {
    offsets.push(length);
    push(`${index + 1} 0 obj\n`);
    if (typeof object === "string") {
      push(`${object}\n`);
    } else {
      push(`${object.dict.replace(/>>\s*$/, "")} /Length ${object.stream.length} >>\nstream\n`);
      push(object.stream);
      push("\nendstream\n");
    }
    push("endobj\n");
  });
  const xrefOffset = length;
  push(`xref\n0 ${objects.length + 1}\n0000000000 65535 f \n`);
  for (const offset of offsets) push(`${String(offset).padStart(10, "0")} 00000 n \n`);
  push(`trailer\n<< /Size ${objects.length + 1} ${trailerExtra} >>\nstartxref\n${xrefOffset}\n%%EOF\n`);
  return Buffer.concat(chunks, length);
}

/** Escapes a string for a PDF literal string (...) in WinAnsi text. */
export function pdfLiteral(text: string): string {
  return `(${text.replace(/[\\()]/g, (c) => `\\${c}`)})`;
}
