/**
 * Chain heads anchored outside the channel databases, in joi's own state
 * database: the id and hash of each channel's newest record. A chain alone
 * cannot show that its newest records were deleted; the head can.
 *
 * Tables of joi.db owned here carry the `memory_` prefix.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";

/** Schema of the heads table in joi.db. */
export const HEADS_SCHEMA = `
CREATE TABLE IF NOT EXISTS memory_chain_heads (
  channel TEXT PRIMARY KEY,
  last_id INTEGER NOT NULL,
  last_hash TEXT NOT NULL
);
`;

/** A recorded chain head. */
export interface ChainHead {
  /** Newest record id. */
  lastId: number;
  /** Its hash. */
  lastHash: string;
}

/** Reads and writes chain heads in joi.db. */
export class ChainHeads {
  #db: DatabaseSync;
  #set?: StatementSync;
  #get?: StatementSync;

  /** Wraps an open joi.db (created by the caller with `openDb`). */
  constructor(db: DatabaseSync, readOnly = false) {
    this.#db = db;
    if (!readOnly) db.exec(HEADS_SCHEMA);
  }

  /** Records the newest record of `channel`. */
  set(channel: string, lastId: number, lastHash: string): void {
    this.#set ??= this.#db.prepare(
      `INSERT INTO memory_chain_heads (channel, last_id, last_hash) VALUES (?, ?, ?)
       ON CONFLICT(channel) DO UPDATE SET last_id = excluded.last_id, last_hash = excluded.last_hash`,
    );
    this.#set.run(channel, lastId, lastHash);
  }

  /** The recorded head of `channel`, if any. */
  get(channel: string): ChainHead | undefined {
    let row: { last_id: number; last_hash: string } | undefined;
    try {
      row = this.#db.prepare(`SELECT last_id, last_hash FROM memory_chain_heads WHERE channel = ?`)
        .get(channel) as
          | { last_id: number; last_hash: string }
          | undefined;
    } catch {
      return undefined; // table absent: nothing anchored yet
    }
    return row ? { lastId: Number(row.last_id), lastHash: row.last_hash } : undefined;
  }
}
