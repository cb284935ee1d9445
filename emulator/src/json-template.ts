// JSON text with holes, written exactly as gmailJson (src/json.ts) would write the same
// value — JSON.stringify(v, null, 2) with < > escaped when pretty, JSON.stringify(v) when not — so
// a message's payload can be serialised once, cached, and served many times: the holes take each
// fetch's fresh attachmentIds, and a cached payload can be spliced into a larger answer (a thread)
// at any nesting level.
import { escapeAngles } from "./json.ts";

/** A string value filled in per serve (an attachmentId): given the serve's nonce, its text (no escaping needed). */
export class Slot {
  readonly value: (nonce: Buffer | undefined) => string;
  constructor(value: (nonce: Buffer | undefined) => string) {
    this.value = value;
  }
}

/** A sub-document already rendered: `at(pretty, level)` is its template when written at that nesting level. */
export class Spliced {
  readonly at: (pretty: boolean, level: number) => Template;
  constructor(at: (pretty: boolean, level: number) => Template) {
    this.at = at;
  }
}

/** texts[0] slot[0] texts[1] slot[1] … texts[n]. */
export interface Template {
  texts: string[];
  slots: Slot[];
}

const INDENT: string[] = [];
function indent(level: number): string {
  return (INDENT[level] ??= `\n${"  ".repeat(level)}`);
}

class Writer {
  texts: string[] = [];
  slots: Slot[] = [];
  cur = "";
  readonly pretty: boolean;
  constructor(pretty: boolean) {
    this.pretty = pretty;
  }

  str(s: string): string {
    const j = JSON.stringify(s);
    return this.pretty ? escapeAngles(j) : j;
  }

  value(v: unknown, level: number): void {
    if (v instanceof Slot) {
      this.cur += '"';
      this.texts.push(this.cur);
      this.slots.push(v);
      this.cur = '"';
    } else if (v instanceof Spliced) {
      const t = v.at(this.pretty, level);
      this.cur += t.texts[0] as string;
      for (let i = 0; i < t.slots.length; i++) {
        this.texts.push(this.cur);
        this.slots.push(t.slots[i] as Slot);
        this.cur = t.texts[i + 1] as string;
      }
    } else if (typeof v === "string") this.cur += this.str(v);
    else if (typeof v === "number") this.cur += Number.isFinite(v) ? String(v) : "null";
    else if (typeof v === "boolean") this.cur += v ? "true" : "false";
    else if (v === null || v === undefined) this.cur += "null";
    else if (Array.isArray(v)) this.array(v, level);
    else this.object(v as Record<string, unknown>, level);
  }

  array(a: unknown[], level: number): void {
    if (a.length === 0) {
      this.cur += "[]";
      return;
    }
    this.cur += "[";
    a.forEach((el, i) => {
      if (i > 0) this.cur += ",";
      if (this.pretty) this.cur += indent(level + 1);
      this.value(el, level + 1);
    });
    if (this.pretty) this.cur += indent(level);
    this.cur += "]";
  }

  object(o: Record<string, unknown>, level: number): void {
    let first = true;
    this.cur += "{";
    for (const k in o) {
      const v = o[k];
      if (v === undefined || typeof v === "function") continue;
      if (!first) this.cur += ",";
      first = false;
      this.cur += this.pretty ? `${indent(level + 1)}${this.str(k)}: ` : `${this.str(k)}:`;
      this.value(v, level + 1);
    }
    if (!first && this.pretty) this.cur += indent(level);
    this.cur += "}";
  }

  done(): Template {
    this.texts.push(this.cur);
    return { texts: this.texts, slots: this.slots };
  }
}

/** The template of `value` written at nesting `level` (0 = a whole answer). */
export function template(value: unknown, pretty: boolean, level = 0): Template {
  const w = new Writer(pretty);
  w.value(value, level);
  return w.done();
}

/** The text of a template with its slots filled for one serve. */
export function fill(t: Template, nonce: Buffer | undefined): string {
  if (t.slots.length === 0) return t.texts[0] as string;
  let out = t.texts[0] as string;
  for (let i = 0; i < t.slots.length; i++) out += (t.slots[i] as Slot).value(nonce) + (t.texts[i + 1] as string);
  return out;
}
