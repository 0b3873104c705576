/**
 * The nonce store: every nonce of a correctly signed request, kept in SQLite
 * so that a restart does not reopen the replay window.
 *
 * Retention must exceed twice the timestamp tolerance (contracts.md; the
 * policy loader checks it): a request signed at `ts` is accepted only while
 * `|now - ts| <= tolerance`, so its nonce can only be replayed successfully
 * until `seen + 2 x tolerance`; keeping it longer than that closes the window.
 *
 * The database is opened with `synchronous=FULL` by default so that a power
 * cut cannot forget a nonce that was already accepted (one fsync per request;
 * joi's traffic is a household's messages). `NORMAL` survives process kills.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { openDb } from "../db.ts";

/** A persistent set of seen nonces. */
export interface NonceStore {
  /**
   * Records `nonce` if unseen. Returns true when it was new (the request may
   * proceed), false when it had been seen before (a replay). Atomic: of two
   * concurrent calls with the same nonce, exactly one gets true.
   */
  insert(nonce: string): boolean;
  /** True when `nonce` is stored (and not yet pruned). */
  seen(nonce: string): boolean;
  /** Deletes nonces older than the retention; returns how many. */
  prune(): number;
  /** Number of stored nonces. */
  size(): number;
  /** Closes the database. */
  close(): void;
}

/** Options of {@link openNonceStore}. */
export interface NonceStoreOptions {
  /** Clock (epoch ms), for tests. */
  now?: () => number;
  /** `synchronous` pragma: FULL (default) or NORMAL. */
  synchronous?: "NORMAL" | "FULL";
  /** Prune at most this often during inserts (default one minute). */
  pruneEveryMs?: number;
}

/**
 * Opens (creating) the nonce store at `path` (a SQLite file, 0600) keeping
 * nonces for `retentionMs` after they were first seen.
 */
export function openNonceStore(
  path: string,
  retentionMs: number,
  options: NonceStoreOptions = {},
): NonceStore {
  if (!Number.isFinite(retentionMs) || retentionMs <= 0) {
    throw new RangeError(`nonce retention must be a positive number of ms, got ${retentionMs}`);
  }
  const now = options.now ?? Date.now;
  const pruneEveryMs = options.pruneEveryMs ?? 60_000;
  let db: DatabaseSync;
  try {
    db = openDb(path, { synchronous: options.synchronous ?? "FULL" });
    db.exec(`CREATE TABLE IF NOT EXISTS wire_nonces (
      nonce TEXT PRIMARY KEY NOT NULL,
      seen_at INTEGER NOT NULL
    ) WITHOUT ROWID`);
    db.exec("CREATE INDEX IF NOT EXISTS wire_nonces_seen_at ON wire_nonces (seen_at)");
  } catch (e) {
    throw new Error(
      `cannot open the nonce store ${path}: ${(e as Error).message}; ` +
        `check the directory exists and is writable by this service`,
      { cause: e },
    );
  }
  const insertStmt: StatementSync = db.prepare(
    "INSERT INTO wire_nonces (nonce, seen_at) VALUES (?, ?) ON CONFLICT (nonce) DO NOTHING",
  );
  const seenStmt = db.prepare("SELECT 1 AS hit FROM wire_nonces WHERE nonce = ?");
  const pruneStmt = db.prepare("DELETE FROM wire_nonces WHERE seen_at < ?");
  const sizeStmt = db.prepare("SELECT count(*) AS n FROM wire_nonces");
  let lastPrune = -Infinity;

  const prune = (): number => {
    const t = now();
    lastPrune = t;
    return Number(pruneStmt.run(t - retentionMs).changes);
  };

  return {
    insert(nonce) {
      const t = now();
      if (t - lastPrune >= pruneEveryMs) prune();
      return Number(insertStmt.run(nonce, t).changes) === 1;
    },
    seen(nonce) {
      return seenStmt.get(nonce) !== undefined;
    },
    prune,
    size() {
      const row = sizeStmt.get() as { n: number | bigint };
      return Number(row.n);
    },
    close() {
      db.close();
    },
  };
}
