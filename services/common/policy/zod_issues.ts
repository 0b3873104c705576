/**
 * Turns zod issues into messages a household admin can act on.
 *
 * zod reports what the schema expected; the admin wants to know what they
 * wrote and what to write instead. Each issue becomes a {@link RuleIssue} with
 * the document path and an anchor (unknown keys point at the key, missing keys
 * at their parent), ready to be positioned in the YAML source.
 *
 * @module
 */
import type { z } from "zod";
import { type PathSegment, valueAt } from "./path.ts";
import type { RuleIssue } from "./source.ts";

type ZodIssue = z.core.$ZodIssue;

/** Describes a value in a message: `string "abc"`, `number 5`, `a list`, ... */
export function describe(value: unknown): string {
  if (value === null) return "an empty value";
  if (value === undefined) return "nothing";
  if (typeof value === "string") {
    const shown = value.length > 60 ? `${value.slice(0, 57)}...` : value;
    return `string ${JSON.stringify(shown)}`;
  }
  if (typeof value === "number" || typeof value === "boolean") return `${typeof value} ${value}`;
  if (typeof value === "bigint") return `number ${value}`;
  if (Array.isArray(value)) return "a list";
  if (value instanceof Uint8Array) return "binary data";
  if (typeof value === "object") return "a mapping";
  return typeof value;
}

const EXPECTED_NAMES: Record<string, string> = {
  string: "a string",
  number: "a number",
  int: "an integer",
  boolean: "true or false",
  object: "a mapping",
  record: "a mapping",
  array: "a list",
};

function expectedName(expected: string): string {
  return EXPECTED_NAMES[expected] ?? expected;
}

interface Def {
  type: string;
  shape?: Record<string, unknown>;
  valueType?: unknown;
  element?: unknown;
  innerType?: unknown;
  in?: unknown;
}

function defOf(schema: unknown): Def | undefined {
  const zod = (schema as { _zod?: { def?: Def } } | undefined)?._zod;
  return zod?.def;
}

function unwrap(schema: unknown): unknown {
  for (let i = 0; i < 16; i++) {
    const def = defOf(schema);
    if (!def) return schema;
    if (def.innerType !== undefined) schema = def.innerType;
    else if (def.type === "pipe" && def.in !== undefined) schema = def.in;
    else return schema;
  }
  return schema;
}

/** The schema that validates the node at `path`, if it can be followed. */
export function schemaAt(schema: unknown, path: readonly PathSegment[]): unknown {
  let cur = unwrap(schema);
  for (const seg of path) {
    const def = defOf(cur);
    if (!def) return undefined;
    if (def.type === "object" && def.shape) cur = def.shape[String(seg)];
    else if (def.type === "record") cur = def.valueType;
    else if (def.type === "array") cur = def.element;
    else return undefined;
    cur = unwrap(cur);
  }
  return cur;
}

/** The keys an object schema accepts, or `[]` when the node is not an object. */
export function allowedKeys(schema: unknown, path: readonly PathSegment[]): string[] {
  const def = defOf(schemaAt(schema, path));
  return def?.type === "object" && def.shape ? Object.keys(def.shape) : [];
}

/** Levenshtein distance, for "did you mean" hints. */
export function editDistance(a: string, b: string): number {
  // prev has b.length + 1 entries, so every index below is in range.
  const prev = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    let diag = prev[0]!;
    prev[0] = i;
    for (let j = 1; j <= b.length; j++) {
      const tmp = prev[j]!;
      prev[j] = Math.min(prev[j]! + 1, prev[j - 1]! + 1, diag + (a[i - 1] === b[j - 1] ? 0 : 1));
      diag = tmp;
    }
  }
  return prev[b.length]!;
}

/** `unknown key "x" (did you mean "y"?)` or `unknown key "x" (allowed: a, b)`. */
export function unknownKeyMessage(key: string, allowed: readonly string[]): string {
  const best = allowed
    .map((k) => ({ k, d: editDistance(key.toLowerCase(), k.toLowerCase()) }))
    .sort((a, b) => a.d - b.d)[0];
  if (best === undefined) return `unknown key ${JSON.stringify(key)}`;
  if (best.d <= Math.max(1, Math.floor(best.k.length / 4))) {
    return `unknown key ${JSON.stringify(key)} (did you mean ${JSON.stringify(best.k)}?)`;
  }
  return `unknown key ${JSON.stringify(key)} (allowed: ${allowed.join(", ")})`;
}

function bound(
  kind: "small" | "big",
  origin: string,
  limit: number | bigint,
  inclusive: boolean,
  actual: unknown,
): string {
  const n = Number(limit);
  if (origin === "array") {
    return kind === "small"
      ? `must have at least ${n} item${n === 1 ? "" : "s"}`
      : `must have at most ${n} item${n === 1 ? "" : "s"}`;
  }
  if (origin === "string") {
    if (kind === "small" && n <= 1) return "must not be empty";
    return kind === "small"
      ? `must be at least ${n} characters long`
      : `must be at most ${n} characters long`;
  }
  const op = kind === "small" ? (inclusive ? ">=" : ">") : (inclusive ? "<=" : "<");
  return `must be ${op} ${n}, got ${describe(actual)}`;
}

/** Converts the issues of a failed parse of `data` against `schema`. */
export function fromZodIssues(
  issues: readonly ZodIssue[],
  data: unknown,
  schema: unknown,
): RuleIssue[] {
  const out: RuleIssue[] = [];
  for (const issue of issues) out.push(...convert(issue, data, schema));
  return out;
}

function convert(issue: ZodIssue, data: unknown, schema: unknown): RuleIssue[] {
  const path = issue.path.filter((s): s is PathSegment => typeof s !== "symbol");
  const actual = valueAt(data, path);
  switch (issue.code) {
    case "unrecognized_keys": {
      const allowed = allowedKeys(schema, path);
      return issue.keys.map((key) => ({
        path: [...path, key],
        at: "key" as const,
        message: unknownKeyMessage(key, allowed),
      }));
    }
    case "invalid_type": {
      const parent = valueAt(data, path.slice(0, -1));
      const last = path.at(-1);
      const missing = actual === undefined && last !== undefined &&
        (parent === null || typeof parent !== "object" || !Object.hasOwn(parent, last));
      if (missing) {
        return [{
          path,
          at: "missing",
          message: `required key is missing (expected ${expectedName(issue.expected)})`,
        }];
      }
      return [{
        path,
        message: `expected ${expectedName(issue.expected)}, got ${describe(actual)}`,
      }];
    }
    case "invalid_value": {
      const options = issue.values.map((v) => JSON.stringify(v)).join(", ");
      return [{ path, message: `must be one of ${options}, got ${describe(actual)}` }];
    }
    case "too_small":
      return [{
        path,
        message: bound("small", issue.origin, issue.minimum, issue.inclusive ?? true, actual),
      }];
    case "too_big":
      return [{
        path,
        message: bound("big", issue.origin, issue.maximum, issue.inclusive ?? true, actual),
      }];
    case "not_multiple_of":
      return [{ path, message: `must be a multiple of ${issue.divisor}, got ${describe(actual)}` }];
    case "invalid_key": {
      const inner = issue.issues[0];
      const key = path[path.length - 1];
      const message = inner && inner.code !== "invalid_type"
        ? inner.message
        : `invalid key ${JSON.stringify(String(key))}`;
      return [{ path, at: "key", message }];
    }
    case "invalid_element":
      return issue.issues.flatMap((inner) =>
        convert({ ...inner, path: [...path, ...inner.path] } as ZodIssue, data, schema)
      );
    case "invalid_union": {
      const first = issue.errors[0]?.[0];
      if (first) {
        return convert({ ...first, path: [...path, ...first.path] } as ZodIssue, data, schema);
      }
      return [{ path, message: issue.message }];
    }
    default:
      return [{ path, message: issue.message }];
  }
}
