/**
 * `joi-retrieve <search|get|list> '<json>'`: read-only full-text search over
 * the knowledge the calling uid may open.
 *
 * This program is a security boundary. joi starts it through sudo as a channel
 * user, with `--allow-read=<knowledge root>` and nothing else (no write, net,
 * env, run or ffi; `--allow-sys=uid` only to report who it ran as). Which
 * folders it may read is decided by the kernel: it walks the knowledge root,
 * tries every folder index it finds and silently skips every one it is denied.
 * It never takes a path from the query, never follows a symlink, never opens a
 * document file (only the per-folder SQLite FTS5 indexes joi maintains), and
 * writes JSON only to stdout (capped at 1 MB) and a short reason to stderr.
 *
 * It imports nothing but `node:sqlite`: joi imports its validator and
 * constants, so both sides of the sudo boundary apply the same rules.
 *
 * Usage (pinned argv, see `services/joi/knowledge/retrieve_argv.ts`):
 *   deno run ... scripts/retrieve.ts --root=<knowledge root> search '{"q":"boiler","limit":5}'
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";

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
/** Deepest directory level (below the root) where a folder index may live. */
export const MAX_FOLDER_DEPTH = 3;
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

/**
 * An FTS5 MATCH expression from user text: every word quoted, any may match;
 * bm25 ranks first the documents holding more of them, and rarer ones. (All
 * words required, a question found nothing unless a note held its every word.)
 */
export function ftsMatch(q: string): string {
  return ftsTokens(q).map((t) => `"${t}"`).join(" OR ");
}

/** Paths (relative to the root) of the folder indexes this uid can open. */
export function findIndexes(root: string): string[] {
  const found: string[] = [];
  const walk = (rel: string, depth: number) => {
    const dir = rel === "" ? root : `${root}/${rel}`;
    if (rel !== "" && isRegularFile(`${dir}/${INDEX_FILE}`)) {
      found.push(rel);
      return; // a folder's subdirectories belong to its index
    }
    if (depth >= MAX_FOLDER_DEPTH) return;
    let entries: Deno.DirEntry[];
    try {
      entries = [...Deno.readDirSync(dir)];
    } catch (e) {
      if (e instanceof Deno.errors.NotCapable) throw e; // a sandbox misconfiguration: fail loudly
      return; // denied by the kernel (or vanished): not ours to read
    }
    for (const e of entries.sort((a, b) => a.name < b.name ? -1 : 1)) {
      if (e.name.startsWith(".") || !e.isDirectory || e.isSymlink) continue;
      const child = rel === "" ? e.name : `${rel}/${e.name}`;
      try {
        const st = Deno.lstatSync(`${root}/${child}`);
        if (!st.isDirectory || st.isSymlink) continue;
      } catch (e) {
        if (e instanceof Deno.errors.NotCapable) throw e;
        continue;
      }
      walk(child, depth + 1);
    }
  };
  walk("", 0);
  return found;
}

function isRegularFile(path: string): boolean {
  try {
    const st = Deno.lstatSync(path);
    return st.isFile && !st.isSymlink;
  } catch (e) {
    if (e instanceof Deno.errors.NotCapable) throw e;
    return false;
  }
}

interface Row {
  id: string;
  title: string;
  snippet: string;
  source: string;
  category: string;
  updated_at: string;
  score?: number;
}

function openIndex(root: string, folder: string): DatabaseSync | null {
  const path = `${root}/${folder}/${INDEX_FILE}`;
  if (!isRegularFile(path)) return null;
  let db: DatabaseSync | undefined;
  try {
    db = new DatabaseSync(path, { readOnly: true });
    db.exec("PRAGMA busy_timeout = 5000");
    const v = db.prepare("PRAGMA user_version").get() as { user_version: number };
    if (v.user_version !== INDEX_SCHEMA_VERSION) {
      db.close();
      return null;
    }
    return db;
  } catch (e) {
    try {
      db?.close();
    } catch { /* already closed */ }
    if (e instanceof Deno.errors.NotCapable) throw e;
    return null; // denied, locked beyond the timeout or not an index: skip it
  }
}

function queryIndex(db: DatabaseSync, query: Query): Row[] {
  switch (query.type) {
    case "search": {
      const sql = `SELECT d.id, d.title, d.source, d.category, d.updated_at,
          snippet(docs_fts, 1, '[', ']', '...', 24) AS snippet, bm25(docs_fts, 5.0, 1.0) AS score
        FROM docs_fts JOIN docs d ON d.rowid = docs_fts.rowid
        WHERE docs_fts MATCH ? ${query.category !== undefined ? "AND d.category = ?" : ""}
        ORDER BY score LIMIT ?`;
      const params: (string | number)[] = [ftsMatch(query.q)];
      if (query.category !== undefined) params.push(query.category);
      params.push(query.limit);
      return db.prepare(sql).all(...params) as unknown as Row[];
    }
    case "get":
      return db.prepare(
        `SELECT d.id, d.title, d.source, d.category, d.updated_at, f.body AS snippet
          FROM docs d JOIN docs_fts f ON f.rowid = d.rowid WHERE d.id = ?`,
      ).all(query.id) as unknown as Row[];
    case "list":
      return db.prepare(
        `SELECT d.id, d.title, d.source, d.category, d.updated_at, substr(f.body, 1, 200) AS snippet
          FROM docs d JOIN docs_fts f ON f.rowid = d.rowid WHERE d.category = ?
          ORDER BY d.updated_at DESC LIMIT ?`,
      ).all(query.category, query.limit) as unknown as Row[];
  }
}

/** Runs `query` against every index this uid can open under `root`. */
export function runQuery(root: string, query: Query, accessedAs: string): Output {
  const rows: (Row & { folder: string })[] = [];
  for (const folder of findIndexes(root)) {
    const db = openIndex(root, folder);
    if (!db) continue;
    try {
      for (const r of queryIndex(db, query)) rows.push({ ...r, folder });
    } catch {
      // a corrupt or busy index: skip it, never report its path
    } finally {
      db.close();
    }
  }
  if (query.type === "search") rows.sort((a, b) => (a.score ?? 0) - (b.score ?? 0));
  if (query.type === "list") rows.sort((a, b) => a.updated_at < b.updated_at ? 1 : -1);
  const limit = query.type === "get" ? 1 : query.limit;
  const results: Result[] = rows.slice(0, limit).map((r) => ({
    id: r.id,
    title: r.title,
    snippet: r.snippet,
    source: r.source,
    accessed_as: accessedAs,
    category: r.category,
    updated_at: r.updated_at,
    folder: r.folder,
    ...(query.type === "search" ? { score: r.score } : {}),
  }));
  return { status: "ok", results, truncated: false };
}

/** Serialises `out`, dropping trailing results until it fits in `maxBytes`. */
export function renderOutput(out: Output, maxBytes = MAX_OUTPUT_BYTES): string {
  const enc = new TextEncoder();
  let results = out.results;
  let truncated = out.truncated;
  for (;;) {
    const text = JSON.stringify({ status: "ok", results, truncated });
    if (enc.encode(text).length <= maxBytes) return text;
    truncated = true;
    const [only] = results;
    if (only === undefined) return JSON.stringify({ status: "ok", results: [], truncated });
    if (results.length === 1) {
      // a single huge document: cut its snippet
      const cut = Math.max(0, only.snippet.length - (enc.encode(text).length - maxBytes) - 64);
      results = cut > 0 ? [{ ...only, snippet: only.snippet.slice(0, cut) }] : [];
    } else {
      results = results.slice(0, Math.max(1, Math.floor(results.length / 2)));
    }
  }
}

/** Parses `[--root=<dir>] <type> <json>`; throws a usage error. */
export function parseArgv(argv: string[]): { root: string; type: string; json: string } {
  const rest = [...argv];
  let root = "";
  if (rest[0]?.startsWith("--root=")) root = rest.shift()!.slice("--root=".length);
  const [type, json] = rest;
  if (root === "" || !root.startsWith("/") || rest.length !== 2 || !type || json === undefined) {
    throw new QueryError("usage: joi-retrieve --root=<absolute dir> <search|get|list> '<json>'");
  }
  return { root, type, json };
}

function currentUid(): string {
  try {
    return `uid:${Deno.uid()}`;
  } catch {
    return "uid:unknown";
  }
}

/** Entry point: returns the exit code (0 ok, 2 bad query, 1 failure). */
export function main(argv: string[]): number {
  let args: { root: string; type: string; json: string };
  let query: Query;
  try {
    args = parseArgv(argv);
    query = parseQuery(args.type, args.json);
  } catch (e) {
    console.error(`joi-retrieve: ${e instanceof QueryError ? e.message : "invalid arguments"}`);
    return 2;
  }
  try {
    const out = runQuery(args.root, query, currentUid());
    const bytes = new TextEncoder().encode(renderOutput(out) + "\n");
    for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
    return 0;
  } catch (e) {
    // never echo paths or SQL: a class name is enough for joi's log
    console.error(`joi-retrieve: query failed (${e instanceof Error ? e.name : "error"})`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(main(Deno.args));
