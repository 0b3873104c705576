/**
 * SQLite opening conventions (node:sqlite, no FFI permission needed).
 *
 * Every database is opened in WAL mode with a busy timeout, foreign keys on and
 * `synchronous=NORMAL` (durable across a process kill; a power cut may lose the
 * last transaction, never corrupt). Files are created 0600 unless told otherwise.
 *
 * Each connection's page cache is capped at {@link DEFAULT_CACHE_KIB}: SQLite's
 * default (2,000 KiB) is per connection, joi holds nine (its state, six memory
 * stores, two nonce stores) and they fill as the databases grow, which showed
 * as RSS growing through a day (`deno task bench soak`). Pages past the cap
 * are read from the kernel's page cache, which costs microseconds.
 *
 * @module
 */
import { DatabaseSync } from "node:sqlite";

/** Options of {@link openDb}. */
export interface OpenDbOptions {
  /** File mode for a newly created database (default 0o600). */
  mode?: number;
  /** Open read-only (readers of knowledge indexes). */
  readOnly?: boolean;
  /** `synchronous` pragma: FULL for queues that must survive power loss. */
  synchronous?: "NORMAL" | "FULL";
}

/** The page cache of each connection, KiB. */
export const DEFAULT_CACHE_KIB = 256;

/** Opens (creating if needed) a SQLite database with joi's pragmas. */
export function openDb(path: string, options: OpenDbOptions = {}): DatabaseSync {
  if (path !== ":memory:" && !options.readOnly) {
    try {
      Deno.lstatSync(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
      Deno.writeFileSync(path, new Uint8Array(), { mode: options.mode ?? 0o600 });
      Deno.chmodSync(path, options.mode ?? 0o600);
    }
  }
  const db = new DatabaseSync(path, { readOnly: options.readOnly ?? false });
  db.exec("PRAGMA busy_timeout = 5000");
  db.exec(`PRAGMA cache_size = -${DEFAULT_CACHE_KIB}`);
  if (!options.readOnly) {
    db.exec("PRAGMA journal_mode = WAL");
    db.exec(`PRAGMA synchronous = ${options.synchronous ?? "NORMAL"}`);
    db.exec("PRAGMA foreign_keys = ON");
  }
  return db;
}

/** Runs `fn` inside a transaction (BEGIN IMMEDIATE), rolling back on error. */
export function transaction<T>(db: DatabaseSync, fn: () => T): T {
  db.exec("BEGIN IMMEDIATE");
  try {
    const result = fn();
    db.exec("COMMIT");
    return result;
  } catch (e) {
    db.exec("ROLLBACK");
    throw e;
  }
}
