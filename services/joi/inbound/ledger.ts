/**
 * Inbound message ids already accepted, in joi.db (table `conv_inbound_seen`),
 * so a message the mesh re-posts after a lost response is answered once.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS conv_inbound_seen (
  message_id TEXT PRIMARY KEY,
  received_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS conv_inbound_seen_at ON conv_inbound_seen (received_at);
`;

/** Records message ids for `windowMs` and tells repeats apart. */
export class InboundLedger {
  #windowMs: number;
  #now: () => number;
  #lastPrune = 0;
  #insert: StatementSync;
  #prune: StatementSync;

  /** Wraps joi.db; ids are forgotten after `windowMs`. */
  constructor(db: DatabaseSync, windowMs: number, now: () => number = Date.now) {
    db.exec(SCHEMA);
    this.#insert = db.prepare(
      `INSERT INTO conv_inbound_seen (message_id, received_at) VALUES (?, ?) ON CONFLICT DO NOTHING`,
    );
    this.#prune = db.prepare(`DELETE FROM conv_inbound_seen WHERE received_at < ?`);
    this.#windowMs = windowMs;
    this.#now = now;
  }

  /** Records `messageId`; false when it was already recorded (a repeat). */
  firstSeen(messageId: string): boolean {
    const now = this.#now();
    if (now - this.#lastPrune > 60_000) {
      this.#prune.run(now - this.#windowMs);
      this.#lastPrune = now;
    }
    const res = this.#insert.run(messageId, now);
    return Number(res.changes) === 1;
  }
}
