/**
 * `joi-retrieve`: read-only full-text search over the knowledge the calling
 * uid may open. It reads one request line `<search|get|list> <json>` on
 * stdin and writes the result JSON on stdout.
 *
 * This program is a security boundary. It runs as a channel user with
 * `--allow-read=<knowledge root>` and nothing else (no write, net, env, run or
 * ffi; `--allow-sys=uid` only to report who it ran as): in production each
 * connection to the channel's retrieve socket is a fresh process of it,
 * started by systemd as that channel's user (`joi-retrieve-<channel>@.service`,
 * stdin and stdout the connection); in the local run the knowledge broker
 * starts it through sudo. Which folders it may read is decided by the kernel:
 * it walks the knowledge root, tries every folder index it finds and silently
 * skips every one it is denied. It never takes a path from the query, never
 * follows a symlink, never opens a document file (only the per-folder SQLite
 * FTS5 indexes joi maintains), and writes JSON only to stdout (capped at 1 MB)
 * and a short reason to stderr.
 *
 * It imports nothing but `node:sqlite` and the retrieve protocol module
 * (which imports nothing): joi validates with the same module, so both sides
 * of the uid boundary apply the same rules.
 *
 * Usage (the pinned argv, see `services/common/permissions/retrieve_argv.ts`):
 *   echo 'search {"q":"boiler","limit":5}' | deno run ... scripts/retrieve.ts --root=<dir>
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import {
  ftsTokens,
  INDEX_FILE,
  INDEX_SCHEMA_VERSION,
  MAX_OUTPUT_BYTES,
  MAX_REQUEST_BYTES,
  type Output,
  parseRequest,
  type Query,
  QueryError,
  type Result,
} from "../services/joi/knowledge/retrieve_protocol.ts";

/** Deepest directory level (below the root) where a folder index may live. */
export const MAX_FOLDER_DEPTH = 3;

/**
 * How long a connection may take to send its whole request line. joi writes
 * it as soon as it connects; a connection that stays silent would hold one of
 * the channel's few slots (the socket's MaxConnections=) until systemd's
 * RuntimeMaxSec= (30 s) ends it: it is ended here first.
 */
export const REQUEST_DEADLINE_MS = 5_000;

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

/** Parses `--root=<absolute dir>`, the only argument; throws a usage error. */
export function parseArgv(argv: string[]): { root: string } {
  const root = argv.length === 1 && argv[0]?.startsWith("--root=")
    ? argv[0].slice("--root=".length)
    : "";
  if (!root.startsWith("/")) {
    throw new QueryError(
      "usage: echo '<search|get|list> <json>' | joi-retrieve --root=<absolute dir>",
    );
  }
  return { root };
}

/**
 * Reads one request line from `read` (stdin): up to the first newline or the
 * end of input, at most {@link MAX_REQUEST_BYTES}. Throws a {@link QueryError}
 * for a longer line or bytes that are not UTF-8.
 */
export async function readRequestLine(
  read: (buf: Uint8Array) => Promise<number | null>,
): Promise<string> {
  const buf = new Uint8Array(MAX_REQUEST_BYTES + 1);
  let used = 0;
  for (;;) {
    const newline = buf.subarray(0, used).indexOf(10);
    if (newline >= 0) return decodeLine(buf.subarray(0, newline));
    if (used >= buf.length) throw new QueryError(`request: longer than ${MAX_REQUEST_BYTES} bytes`);
    const n = await read(buf.subarray(used));
    if (n === null || n === 0) return decodeLine(buf.subarray(0, used));
    used += n;
  }
}

function decodeLine(bytes: Uint8Array): string {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(bytes).replace(/\r$/, "");
  } catch {
    throw new QueryError("request: not UTF-8");
  }
}

function currentUid(): string {
  try {
    return `uid:${Deno.uid()}`;
  } catch {
    return "uid:unknown";
  }
}

/**
 * {@link readRequestLine} within `ms`: throws a {@link QueryError} when the
 * line is not complete by then (the pending read is abandoned; the caller
 * exits, which closes the connection).
 */
export async function readRequestLineWithin(
  read: (buf: Uint8Array) => Promise<number | null>,
  ms: number,
): Promise<string> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new QueryError(`request: no complete line within ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([readRequestLine(read), late]);
  } finally {
    clearTimeout(timer);
  }
}

/** Entry point: returns the exit code (0 ok, 2 bad request, 1 failure). */
export async function main(
  argv: string[],
  read: (buf: Uint8Array) => Promise<number | null> = (b) => Deno.stdin.read(b),
  deadlineMs = REQUEST_DEADLINE_MS,
): Promise<number> {
  let root: string;
  let query: Query;
  try {
    root = parseArgv(argv).root;
    query = parseRequest(await readRequestLineWithin(read, deadlineMs));
  } catch (e) {
    console.error(`joi-retrieve: ${e instanceof QueryError ? e.message : "invalid request"}`);
    return 2;
  }
  try {
    const out = runQuery(root, query, currentUid());
    const bytes = new TextEncoder().encode(renderOutput(out) + "\n");
    for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
    return 0;
  } catch (e) {
    // never echo paths or SQL: a class name is enough for joi's log
    console.error(`joi-retrieve: query failed (${e instanceof Error ? e.name : "error"})`);
    return 1;
  }
}

if (import.meta.main) Deno.exit(await main(Deno.args));
