/**
 * The retrieve protocol: what joi and `joi-retrieve` agree on, on both sides
 * of the uid boundary. The query whitelist and its validation (joi checks a
 * query before sending it, retrieve checks it again on arrival), the
 * canonical JSON, the request line, the output document and its caps, and
 * the index file format joi writes and retrieve reads.
 *
 * Wire: joi connects to the channel's retrieve socket (production: a systemd
 * socket with `Accept=yes`, each connection a fresh `joi-retrieve` as the
 * channel user; local run: the knowledge broker, through sudo), writes one
 * request line `<type> <canonical json>\n` and reads the {@link Output}
 * JSON until the connection closes. A refused or failed request closes the
 * connection with nothing written.
 *
 * This module imports nothing: `scripts/retrieve.ts` (a security boundary)
 * imports it, and its import graph must stay this file and `node:sqlite`.
 *
 * @module
 */

/** The file name of a knowledge folder's FTS5 index, inside the folder. */
export const INDEX_FILE = ".joi-index.sqlite";
/** Index schema version written to `PRAGMA user_version`. */
export const INDEX_SCHEMA_VERSION = 1;
/** Maximum size of the query JSON, in bytes (UTF-8). */
export const MAX_QUERY_BYTES = 4096;
/** Maximum size of the JSON written to stdout, in bytes. */
export const MAX_OUTPUT_BYTES = 1024 * 1024;
/** Maximum length of a search string, in characters. */
export const MAX_Q_CHARS = 1000;
/** Largest `limit` a query may ask for. */
export const MAX_LIMIT = 100;
/** `limit` when the query gives none. */
export const DEFAULT_LIMIT = 10;
/** Query types, the whole whitelist. */
export const QUERY_TYPES = ["search", "get", "list"] as const;
/** One of {@link QUERY_TYPES}. */
export type QueryType = typeof QUERY_TYPES[number];

/** A validated query. */
export type Query =
  | { type: "search"; q: string; limit: number; category?: string }
  | { type: "get"; id: string }
  | { type: "list"; category: string; limit: number };

/** One result as written to stdout. */
export interface Result {
  /** The document's UUIDv4. */
  id: string;
  /** Its title. */
  title: string;
  /** A short excerpt (search: around the match; get: the whole body). */
  snippet: string;
  /** Path relative to the knowledge root, e.g. `owner/private/boiler.md`. */
  source: string;
  /** Who read it: `uid:<n>`, the kernel identity (joi maps it to the channel user). */
  accessed_as: string;
  /** The document's category. */
  category: string;
  /** Last update, ISO 8601. */
  updated_at: string;
  /** The folder (relative to the root) whose index held it. */
  folder: string;
  /** bm25 score (search only; lower is better). */
  score?: number;
}

/** The stdout document. */
export interface Output {
  /** Always `ok` on stdout; failures go to stderr with a non-zero exit. */
  status: "ok";
  /** Results, best first. */
  results: Result[];
  /** True when results were dropped to stay under {@link MAX_OUTPUT_BYTES}. */
  truncated: boolean;
}

/** A query refused by validation; `message` never echoes the offending input. */
export class QueryError extends Error {
  /** Builds the error. */
  constructor(message: string) {
    super(message);
    this.name = "QueryError";
  }
}

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const CATEGORY = /^[a-z0-9][a-z0-9_-]{0,63}$/;
/** Characters a search string may hold: letters, digits, marks, space, limited punctuation. */
const Q_CHARS = /^[\p{L}\p{N}\p{M} '?!,.:_-]*$/u;
/** Characters the raw JSON text may hold (no shell metacharacters, no `/` or `~`). */
const RAW_CHARS = /^[A-Za-z0-9 {}":,._\\'?!-]*$/;
const KEYS: Record<QueryType, { required: string[]; optional: string[] }> = {
  search: { required: ["q"], optional: ["limit", "category"] },
  get: { required: ["id"], optional: [] },
  list: { required: ["category"], optional: ["limit"] },
};

/** True if `id` is a lowercase UUIDv4. */
export function isUuidV4(id: string): boolean {
  return UUID_V4.test(id);
}

/** True if `name` is a valid category name. */
export function isCategory(name: string): boolean {
  return CATEGORY.test(name);
}

function assertNoPath(s: string, what: string): void {
  if (s.includes("/") || s.includes("..") || s.includes("~") || s.includes("\\")) {
    throw new QueryError(`${what}: path components not allowed in query (/, .., ~, \\)`);
  }
}

function parseLimit(v: unknown): number {
  if (v === undefined) return DEFAULT_LIMIT;
  if (typeof v !== "number" || !Number.isInteger(v) || v < 1 || v > MAX_LIMIT) {
    throw new QueryError(`limit: must be an integer from 1 to ${MAX_LIMIT}`);
  }
  return v;
}

function parseCategory(v: unknown): string {
  if (typeof v !== "string" || !isCategory(v)) {
    throw new QueryError("category: must match [a-z0-9][a-z0-9_-]{0,63}");
  }
  return v;
}

/**
 * Validates a parsed query object for `type`: only the known keys, each of
 * the right type and character set. Used by joi before spawning and by
 * retrieve on what it receives.
 */
export function validateQuery(type: string, value: unknown): Query {
  if (!(QUERY_TYPES as readonly string[]).includes(type)) {
    throw new QueryError(`query type: must be one of ${QUERY_TYPES.join(", ")}`);
  }
  const t = type as QueryType;
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    throw new QueryError("query: must be a JSON object");
  }
  const obj = value as Record<string, unknown>;
  const { required, optional } = KEYS[t];
  for (const key of Object.keys(obj)) {
    if (!required.includes(key) && !optional.includes(key)) {
      throw new QueryError(
        `query: unknown key (allowed for ${t}: ${[...required, ...optional].join(", ")})`,
      );
    }
  }
  for (const key of required) {
    if (!(key in obj)) throw new QueryError(`query: missing key "${key}" for ${t}`);
  }
  switch (t) {
    case "search": {
      const q = obj.q;
      if (typeof q !== "string" || q.trim() === "") {
        throw new QueryError("q: must be a non-empty string");
      }
      if ([...q].length > MAX_Q_CHARS) throw new QueryError(`q: longer than ${MAX_Q_CHARS}`);
      assertNoPath(q, "q");
      if (!Q_CHARS.test(q)) {
        throw new QueryError("q: only letters, digits, spaces and ' ? ! , . : _ - are allowed");
      }
      if (ftsTokens(q).length === 0) throw new QueryError("q: contains no searchable word");
      const query: Query = { type: "search", q, limit: parseLimit(obj.limit) };
      if (obj.category !== undefined) query.category = parseCategory(obj.category);
      return query;
    }
    case "get": {
      if (typeof obj.id !== "string" || !isUuidV4(obj.id)) {
        throw new QueryError("id: must be a lowercase UUIDv4");
      }
      return { type: "get", id: obj.id };
    }
    case "list":
      return { type: "list", category: parseCategory(obj.category), limit: parseLimit(obj.limit) };
  }
}

/**
 * Checks the raw JSON text (size, characters, path components) and parses and
 * validates it. Everything is refused before any file is opened.
 */
export function parseQuery(type: string, json: string): Query {
  if (!(QUERY_TYPES as readonly string[]).includes(type)) {
    throw new QueryError(`query type: must be one of ${QUERY_TYPES.join(", ")}`);
  }
  if (new TextEncoder().encode(json).length > MAX_QUERY_BYTES) {
    throw new QueryError(`query: larger than ${MAX_QUERY_BYTES} bytes`);
  }
  if (json.includes("/") || json.includes("..") || json.includes("~")) {
    throw new QueryError("query: path components not allowed in query (/, .., ~)");
  }
  if (!RAW_CHARS.test(json)) {
    throw new QueryError("query: characters outside the allowed set (no shell metacharacters)");
  }
  let value: unknown;
  try {
    value = JSON.parse(json);
  } catch {
    throw new QueryError("query: not valid JSON");
  }
  return validateQuery(type, value);
}

/**
 * The canonical JSON of a validated query, as joi passes it on the command
 * line: fixed key order, no spaces, and every character outside `[A-Za-z0-9_-]`
 * inside strings escaped as `\uXXXX`, so the text matches the sudoers argument
 * pattern `\{[A-Za-z0-9"{}:,_\\-]+\}` and holds no `/`, `.`, `~` or shell
 * metacharacter at all.
 */
export function canonicalQueryJson(query: Query): string {
  const str = (s: string) =>
    `"${
      [...s].map((ch) => {
        if (/^[A-Za-z0-9_-]$/.test(ch)) return ch;
        const code = ch.codePointAt(0)!;
        if (code > 0xffff) {
          const hi = Math.floor((code - 0x10000) / 0x400) + 0xd800;
          const lo = ((code - 0x10000) % 0x400) + 0xdc00;
          return `\\u${hi.toString(16).padStart(4, "0")}\\u${lo.toString(16).padStart(4, "0")}`;
        }
        return `\\u${code.toString(16).padStart(4, "0")}`;
      }).join("")
    }"`;
  switch (query.type) {
    case "search":
      return `{"q":${str(query.q)},"limit":${query.limit}${
        query.category !== undefined ? `,"category":${str(query.category)}` : ""
      }}`;
    case "get":
      return `{"id":${str(query.id)}}`;
    case "list":
      return `{"category":${str(query.category)},"limit":${query.limit}}`;
  }
}

/** The words of a search string, lowercased, at most 32. */
export function ftsTokens(q: string): string[] {
  return (q.toLowerCase().match(/[\p{L}\p{N}\p{M}]+/gu) ?? []).slice(0, 32);
}

/** Longest request line, newline included: a type, a space and the query at its cap. */
export const MAX_REQUEST_BYTES = MAX_QUERY_BYTES + 16;

/** The request line joi writes for a validated query: `<type> <canonical json>\n`. */
export function requestLine(query: Query): string {
  return `${query.type} ${canonicalQueryJson(query)}\n`;
}

/**
 * Parses a request line (without its newline): `<type> <json>`, checked as
 * {@link parseQuery} checks it. Throws a {@link QueryError}.
 */
export function parseRequest(line: string): Query {
  const space = line.indexOf(" ");
  if (space < 0) throw new QueryError("request: expected '<search|get|list> <json>'");
  return parseQuery(line.slice(0, space), line.slice(space + 1));
}
