/**
 * What the watches must not forget across a restart, in the process's own
 * SQLite database (`joi.db`, `mesh.db`): the state of each watched condition
 * (is an episode open, since when, was it told) and every alert decided (so an
 * episode is told once, and the hourly cap counts what was really sent).
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { transaction } from "../db.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS watch_episodes (
  watch TEXT PRIMARY KEY,
  state TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS watch_alerts (
  watch TEXT NOT NULL,
  episode TEXT NOT NULL,
  phase TEXT NOT NULL,
  safety INTEGER NOT NULL,
  decided_at INTEGER NOT NULL,
  send_at INTEGER NOT NULL,
  PRIMARY KEY (watch, episode, phase)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS watch_alerts_send ON watch_alerts (safety, send_at);
`;

/** One alert as the ledger records it. */
export interface LedgerAlert {
  /** The watch (`link`, `house`, `model`, ...). */
  watch: string;
  /** Its episode id (one per episode: the alert and its recovery share it). */
  episode: string;
  /** `alert`, `recovered`, or a reminder name (`30d`, `week-3`...). */
  phase: string;
  /** Safety alerts ignore quiet hours and the hourly cap. */
  safety: boolean;
}

/** The watches' durable memory in one SQLite database. */
export class WatchLedger {
  readonly db: DatabaseSync;
  #get: StatementSync;
  #put: StatementSync;
  #insertAlert: StatementSync;
  #scheduled: StatementSync;
  #prune: StatementSync;

  /** Creates the tables in `db` if needed. */
  constructor(db: DatabaseSync) {
    this.db = db;
    db.exec(SCHEMA);
    this.#get = db.prepare("SELECT state FROM watch_episodes WHERE watch = ?");
    this.#put = db.prepare(
      "INSERT INTO watch_episodes (watch, state) VALUES (?, ?) " +
        "ON CONFLICT(watch) DO UPDATE SET state = excluded.state",
    );
    this.#insertAlert = db.prepare(
      "INSERT OR IGNORE INTO watch_alerts (watch, episode, phase, safety, decided_at, send_at) " +
        "VALUES (?, ?, ?, ?, ?, ?)",
    );
    this.#scheduled = db.prepare(
      "SELECT send_at FROM watch_alerts WHERE safety = 0 AND send_at > ? ORDER BY send_at",
    );
    this.#prune = db.prepare("DELETE FROM watch_alerts WHERE decided_at < ?");
  }

  /** The saved state of `watch`, or undefined. */
  load<T>(watch: string): T | undefined {
    const row = this.#get.get(watch) as { state: string } | undefined;
    if (row === undefined) return undefined;
    try {
      return JSON.parse(row.state) as T;
    } catch {
      return undefined;
    }
  }

  /** Saves the state of `watch`. */
  save(watch: string, state: unknown): void {
    this.#put.run(watch, JSON.stringify(state));
  }

  /**
   * Records an alert to send at `sendAt`. False when this (watch, episode,
   * phase) was recorded before: it was already decided, never send it twice.
   */
  record(a: LedgerAlert, decidedAt: number, sendAt: number): boolean {
    const r = this.#insertAlert.run(
      a.watch,
      a.episode,
      a.phase,
      a.safety ? 1 : 0,
      decidedAt,
      sendAt,
    );
    return Number(r.changes) === 1;
  }

  /** Send times of non-safety alerts after `after` (ms), ascending. */
  scheduledAfter(after: number): number[] {
    return (this.#scheduled.all(after) as { send_at: number }[]).map((r) => Number(r.send_at));
  }

  /** Forgets alerts decided before `before` (their episodes are long over). */
  prune(before: number): number {
    return Number(this.#prune.run(before).changes);
  }

  /** Runs `fn` in one transaction, so a decision and its message commit together. */
  atomically<T>(fn: () => T): T {
    return transaction(this.db, fn);
  }
}
