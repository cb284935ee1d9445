// JSON as Gmail writes it: pretty-printed with two spaces and `<` `>` escaped as \u003c \u003e
// (gmail-real-samples/README.md fact 17: ~35% more bytes than compact JSON, which matters to
// benchmarks that parse real-sized bodies). `prettyPrint=false`, Google's global query parameter,
// asks for compact JSON; the prettyJson setting off gives compact JSON always.

/** Escapes `<` and `>` inside JSON text (they only occur inside strings, so this is safe). */
export function escapeAngles(json: string): string {
  return json.includes("<") || json.includes(">") ? json.replace(/</g, "\\u003c").replace(/>/g, "\\u003e") : json;
}

export function gmailJson(value: unknown, pretty: boolean): string {
  return pretty ? escapeAngles(JSON.stringify(value, null, 2)) : JSON.stringify(value);
}

/** Whether a request wants pretty JSON: the setting, unless the query says prettyPrint=false. */
export function wantsPretty(setting: boolean, query: Record<string, unknown>): boolean {
  const p = query.prettyPrint;
  const v = Array.isArray(p) ? p[p.length - 1] : p;
  return setting && v !== "false" && v !== "0";
}
