/**
 * The relay's durable record of the critical events joi has not taken yet,
 * in `<state-dir>/relay.db` (SQLite, `synchronous=FULL`). An alarm the relay
 * received is written here before anything else happens to it and removed
 * only once joi took it (or refused it for good), so a relay killed while joi
 * is away (kill -9, a crash, a reboot) posts it when it starts again: openHAB
 * does not replay what it already sent. Each event keeps the relay's id, so
 * joi takes a repeat once. Alarms are rare: one fsync each costs nothing; the
 * ordinary lane stays in memory.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { openDb } from "../common/db.ts";
import type { RelayedEvent } from "./relay.ts";

/** A critical event waiting for joi, with its item (for logs). */
export interface StoredCritical {
  ev: RelayedEvent;
  item: string;
}

/** What the relay needs of a durable record (tests may give an in-memory one). */
export interface CriticalRecord {
  /** Records an event before it is posted. */
  put(p: StoredCritical): void;
  /** Forgets an event joi took or refused for good. */
  remove(id: string): void;
  /** The events still waiting, oldest first. */
  all(): StoredCritical[];
}

/** {@link CriticalRecord} in SQLite. */
export class CriticalStore implements CriticalRecord {
  readonly #db: DatabaseSync;
  readonly #put: StatementSync;
  readonly #remove: StatementSync;
  readonly #all: StatementSync;

  /** Opens (creating, 0600) the record at `path`. */
  constructor(path: string) {
    this.#db = openDb(path, { synchronous: "FULL" });
    this.#db.exec(`CREATE TABLE IF NOT EXISTS critical_pending (
      seq INTEGER PRIMARY KEY AUTOINCREMENT,
      id TEXT NOT NULL UNIQUE,
      item TEXT NOT NULL,
      event TEXT NOT NULL
    )`);
    this.#put = this.#db.prepare(
      "INSERT OR IGNORE INTO critical_pending (id, item, event) VALUES (?, ?, ?)",
    );
    this.#remove = this.#db.prepare("DELETE FROM critical_pending WHERE id = ?");
    this.#all = this.#db.prepare("SELECT item, event FROM critical_pending ORDER BY seq");
  }

  /** @inheritdoc */
  put(p: StoredCritical): void {
    this.#put.run(p.ev.id, p.item, JSON.stringify(p.ev));
  }

  /** @inheritdoc */
  remove(id: string): void {
    this.#remove.run(id);
  }

  /** @inheritdoc */
  all(): StoredCritical[] {
    const out: StoredCritical[] = [];
    for (const r of this.#all.all() as { item: string; event: string }[]) {
      try {
        out.push({ item: r.item, ev: JSON.parse(r.event) as RelayedEvent });
      } catch { /* a row this relay did not write: skipped */ }
    }
    return out;
  }

  /** Closes the database. */
  close(): void {
    try {
      this.#db.close();
    } catch { /* closed */ }
  }
}
