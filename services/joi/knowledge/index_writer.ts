/**
 * The writer side of a knowledge folder's FTS5 index (`<folder>/.joi-index.sqlite`).
 *
 * Only joi (and `deno task index`, as joi) writes an index; channel users open
 * it read-only through `joi-retrieve`. The index therefore uses SQLite's
 * rollback journal (`journal_mode=DELETE`), not WAL: WAL readers need write
 * access to the `-shm` file, rollback readers need nothing but read access.
 * The index file is 0640 in the folder's group, and the folder is setgid, so
 * the transient `-journal` file gets the same group and mode: exactly the
 * folder's readers can read either.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";
import { INDEX_FILE, INDEX_SCHEMA_VERSION } from "./retrieve_protocol.ts";
import type { KnowledgeDocument } from "./markdown.ts";

/** Mode of an index file (and of documents): owner rw, folder group r. */
export const INDEX_MODE = 0o640;

const SCHEMA = `
CREATE TABLE IF NOT EXISTS docs(
  rowid INTEGER PRIMARY KEY,
  id TEXT NOT NULL UNIQUE,
  title TEXT NOT NULL,
  category TEXT NOT NULL,
  source TEXT NOT NULL UNIQUE,
  updated_at TEXT NOT NULL,
  sha256 TEXT NOT NULL,
  size INTEGER NOT NULL,
  mtime_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS docs_category ON docs(category, updated_at);
CREATE VIRTUAL TABLE IF NOT EXISTS docs_fts USING fts5(
  title, body, tokenize = 'unicode61 remove_diacritics 2'
);`;

/** File facts stored next to an indexed document (to skip unchanged files). */
export interface FileFacts {
  /** Path relative to the knowledge root. */
  source: string;
  /** sha256 hex of the file. */
  sha256: string;
  /** Size in bytes. */
  size: number;
  /** Modification time, ms since the epoch. */
  mtimeMs: number;
  /** ISO time of the last update. */
  updatedAt: string;
}

/** What the index knows about one source file. */
export interface IndexedFile {
  /** Document id. */
  id: string;
  /** Path relative to the knowledge root. */
  source: string;
  /** sha256 hex when indexed. */
  sha256: string;
  /** Size when indexed. */
  size: number;
  /** mtime when indexed. */
  mtimeMs: number;
}

/** An open, writable folder index. */
export class IndexWriter {
  readonly #db: DatabaseSync;

  /** Wraps an open database; use {@link openIndexWriter}. */
  constructor(db: DatabaseSync) {
    this.#db = db;
  }

  /** Inserts or replaces one document (matched by source; ids must stay unique). */
  upsert(doc: KnowledgeDocument, facts: FileFacts): void {
    this.upsertMany([{ doc, facts }]);
  }

  /** Inserts or replaces many documents in one transaction. */
  upsertMany(items: { doc: KnowledgeDocument; facts: FileFacts }[]): void {
    const db = this.#db;
    const bySource = db.prepare("SELECT rowid, id FROM docs WHERE source = ?");
    const byId = db.prepare("SELECT rowid, source FROM docs WHERE id = ?");
    const delFts = db.prepare("DELETE FROM docs_fts WHERE rowid = ?");
    const delDoc = db.prepare("DELETE FROM docs WHERE rowid = ?");
    const insDoc = db.prepare(
      `INSERT INTO docs(id, title, category, source, updated_at, sha256, size, mtime_ms)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?)`,
    );
    const insFts = db.prepare("INSERT INTO docs_fts(rowid, title, body) VALUES (?, ?, ?)");
    this.#tx(() => {
      for (const { doc, facts } of items) {
        const other = byId.get(doc.id) as { rowid: number; source: string } | undefined;
        if (other && other.source !== facts.source) {
          throw new Error(
            `index: id ${doc.id} of ${facts.source} is already used by ${other.source}; ` +
              `give one of them a new id`,
          );
        }
        const old = bySource.get(facts.source) as { rowid: number } | undefined;
        if (old) {
          delFts.run(old.rowid);
          delDoc.run(old.rowid);
        }
        const r = insDoc.run(
          doc.id,
          doc.title,
          doc.category,
          facts.source,
          facts.updatedAt,
          facts.sha256,
          facts.size,
          Math.trunc(facts.mtimeMs),
        );
        insFts.run(Number(r.lastInsertRowid), doc.title, doc.body);
      }
    });
  }

  /** Removes the documents of these sources (files that disappeared). */
  removeSources(sources: string[]): void {
    const find = this.#db.prepare("SELECT rowid FROM docs WHERE source = ?");
    const delFts = this.#db.prepare("DELETE FROM docs_fts WHERE rowid = ?");
    const delDoc = this.#db.prepare("DELETE FROM docs WHERE rowid = ?");
    this.#tx(() => {
      for (const s of sources) {
        const row = find.get(s) as { rowid: number } | undefined;
        if (!row) continue;
        delFts.run(row.rowid);
        delDoc.run(row.rowid);
      }
    });
  }

  /** Every indexed file. */
  files(): IndexedFile[] {
    return (this.#db.prepare(
      "SELECT id, source, sha256, size, mtime_ms AS mtimeMs FROM docs",
    ).all() as unknown as IndexedFile[]);
  }

  /** Number of documents. */
  count(): number {
    return (this.#db.prepare("SELECT count(*) AS n FROM docs").get() as { n: number }).n;
  }

  /** Closes the database. */
  close(): void {
    this.#db.close();
  }

  #tx(fn: () => void): void {
    this.#db.exec("BEGIN IMMEDIATE");
    try {
      fn();
      this.#db.exec("COMMIT");
    } catch (e) {
      this.#db.exec("ROLLBACK");
      throw e;
    }
  }
}

/**
 * Opens (creating if needed, 0640) the index of the folder at `folderDir`.
 * Refuses a symlinked index file. `gid`, when given, is applied to a newly
 * created index (joi relies on the folder's setgid bit instead).
 */
export function openIndexWriter(folderDir: string, options: { gid?: number } = {}): IndexWriter {
  const path = `${folderDir}/${INDEX_FILE}`;
  let created = false;
  try {
    const st = Deno.lstatSync(path);
    if (!st.isFile || st.isSymlink) {
      throw new Error(`index: ${path} is not a regular file; remove it and re-run the indexer`);
    }
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    Deno.writeFileSync(path, new Uint8Array(), { mode: INDEX_MODE, createNew: true });
    Deno.chmodSync(path, INDEX_MODE);
    if (options.gid !== undefined) Deno.chownSync(path, null, options.gid);
    created = true;
  }
  const db = new DatabaseSync(path);
  try {
    db.exec("PRAGMA busy_timeout = 10000");
    db.exec("PRAGMA journal_mode = DELETE");
    db.exec("PRAGMA synchronous = FULL");
    const v = (db.prepare("PRAGMA user_version").get() as { user_version: number }).user_version;
    if (v !== 0 && v !== INDEX_SCHEMA_VERSION) {
      throw new Error(
        `index: ${path} has schema ${v}, expected ${INDEX_SCHEMA_VERSION}; delete it and re-index`,
      );
    }
    if (v === 0) {
      db.exec("BEGIN IMMEDIATE");
      db.exec(SCHEMA);
      db.exec(`PRAGMA user_version = ${INDEX_SCHEMA_VERSION}`);
      db.exec("COMMIT");
    }
  } catch (e) {
    db.close();
    if (created) Deno.removeSync(path);
    throw e;
  }
  return new IndexWriter(db);
}
