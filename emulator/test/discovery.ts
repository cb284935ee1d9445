// A small validator over the `schemas` section of Google's Gmail v1 discovery document: types,
// int64/uint64 as decimal strings, int32 as integers, byte as base64(url), enums, $ref recursion,
// and no fields the schema does not declare. The document is read at test time from outside the
// project (GMAIL_DISCOVERY_PATH, default ../shared/gmail-v1-discovery.json); nothing is copied in.
import { existsSync, readFileSync } from "node:fs";
import path from "node:path";
import { fileURLToPath } from "node:url";

interface SchemaNode {
  type?: string;
  format?: string;
  $ref?: string;
  enum?: string[];
  items?: SchemaNode;
  properties?: Record<string, SchemaNode>;
  additionalProperties?: SchemaNode;
  required?: boolean;
}

interface MethodNode {
  id: string;
  response?: { $ref: string };
}

export interface Discovery {
  schemas: Record<string, SchemaNode>;
  resources: Record<string, { methods?: Record<string, MethodNode>; resources?: Discovery["resources"] }>;
}

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), "../..");
export const discoveryPath =
  process.env.GMAIL_DISCOVERY_PATH ?? path.resolve(repoRoot, "../shared/gmail-v1-discovery.json");

export function loadDiscovery(): Discovery | undefined {
  if (!existsSync(discoveryPath)) return undefined;
  return JSON.parse(readFileSync(discoveryPath, "utf8")) as Discovery;
}

/** The response schema name of a method id such as "gmail.users.messages.get". */
export function responseSchema(doc: Discovery, methodId: string): string | undefined {
  const walk = (resources: Discovery["resources"]): string | undefined => {
    for (const r of Object.values(resources)) {
      for (const m of Object.values(r.methods ?? {})) if (m.id === methodId) return m.response?.$ref;
      const inner = r.resources ? walk(r.resources) : undefined;
      if (inner) return inner;
    }
    return undefined;
  };
  return walk(doc.resources);
}

/** Returns every violation found (empty when the value conforms). */
export function validate(doc: Discovery, schemaName: string, value: unknown): string[] {
  const problems: string[] = [];
  const check = (node: SchemaNode, v: unknown, at: string) => {
    if (node.$ref) {
      const target = doc.schemas[node.$ref];
      if (!target) return problems.push(`${at}: unknown schema ${node.$ref}`);
      return check(target, v, at);
    }
    switch (node.type) {
      case "string":
        if (typeof v !== "string") return problems.push(`${at}: expected string, got ${typeof v}`);
        if ((node.format === "int64" || node.format === "uint64") && !/^-?\d+$/.test(v))
          problems.push(`${at}: ${node.format} must be decimal digits`);
        if (node.format === "byte" && !/^[A-Za-z0-9+/_-]*={0,2}$/.test(v)) problems.push(`${at}: byte must be base64`);
        if (node.enum && !node.enum.includes(v)) problems.push(`${at}: ${v} not in enum`);
        return;
      case "integer":
        if (typeof v !== "number" || !Number.isInteger(v))
          return problems.push(`${at}: expected integer, got ${JSON.stringify(v)}`);
        if (node.format?.startsWith("uint") && v < 0) problems.push(`${at}: negative ${node.format}`);
        return;
      case "number":
        if (typeof v !== "number") problems.push(`${at}: expected number`);
        return;
      case "boolean":
        if (typeof v !== "boolean") problems.push(`${at}: expected boolean`);
        return;
      case "array":
        if (!Array.isArray(v)) return problems.push(`${at}: expected array`);
        if (v.length === 0) problems.push(`${at}: empty lists are omitted by Gmail`);
        if (node.items) for (const [i, item] of v.entries()) check(node.items, item, `${at}[${i}]`);
        return;
      case "object": {
        if (typeof v !== "object" || v === null || Array.isArray(v)) return problems.push(`${at}: expected object`);
        const props = node.properties ?? {};
        for (const [k, child] of Object.entries(v as Record<string, unknown>)) {
          const spec = props[k] ?? node.additionalProperties;
          if (!spec) problems.push(`${at}.${k}: not in the schema`);
          else check(spec, child, `${at}.${k}`);
        }
        for (const [k, spec] of Object.entries(props))
          if (spec.required && !(k in (v as object))) problems.push(`${at}.${k}: required`);
        return;
      }
      default:
        problems.push(`${at}: schema without a type`);
    }
  };
  const root = doc.schemas[schemaName];
  if (!root) return [`unknown schema ${schemaName}`];
  check(root, value, schemaName);
  return problems;
}
