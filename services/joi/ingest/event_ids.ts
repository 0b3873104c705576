/**
 * Seen `event_id`s, in SQLite: a repeat within the window
 * (`ingest.event_id_window_minutes`) is refused with 409. The id is recorded
 * in the same transaction as the event's effects, so an event joi crashed on
 * before answering can be sent again.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";

/** The seen-id table. */
export class EventIds {
  #seen: StatementSync;
  #put: StatementSync;
  #prune: StatementSync;
  #windowMs: number;

  constructor(db: DatabaseSync, windowMinutes: number) {
    db.exec(`CREATE TABLE IF NOT EXISTS ingest_event_ids (
      id TEXT PRIMARY KEY, seen_at INTEGER NOT NULL) WITHOUT ROWID`);
    db.exec("CREATE INDEX IF NOT EXISTS ingest_event_ids_seen ON ingest_event_ids(seen_at)");
    this.#seen = db.prepare("SELECT seen_at FROM ingest_event_ids WHERE id = ?");
    this.#put = db.prepare(
      "INSERT INTO ingest_event_ids (id, seen_at) VALUES (?, ?) " +
        "ON CONFLICT(id) DO UPDATE SET seen_at = excluded.seen_at",
    );
    this.#prune = db.prepare("DELETE FROM ingest_event_ids WHERE seen_at < ?");
    this.#windowMs = windowMinutes * 60_000;
  }

  /** True when `id` was seen inside the window before `now`. */
  isRepeat(id: string, now: number): boolean {
    const r = this.#seen.get(id) as { seen_at: number } | undefined;
    return r !== undefined && now - Number(r.seen_at) < this.#windowMs;
  }

  /** Records `id` at `now` (call inside the event's transaction). */
  record(id: string, now: number): void {
    this.#put.run(id, now);
  }

  /** Forgets ids older than the window. */
  prune(now: number): number {
    return Number(this.#prune.run(now - this.#windowMs).changes);
  }
}
