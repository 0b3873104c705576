/**
 * The alarm record: one row per confirmation loop (device, class, state,
 * label, when it began, when and whether it was acknowledged, when it
 * cleared), and the outbox messages that carried its alerts, each with the
 * time the mesh confirmed it. It answers three questions:
 *
 * - which alarm a quote-reply or a reaction points at (by the outbox delivery
 *   id the mesh maps the quoted Signal message back to);
 * - which active alarms were really sent to the critical group (only those
 *   can be acknowledged there);
 * - which alarms are active or recently cleared (the home context the LLM
 *   sees, and the acknowledgement's reply).
 *
 * The flood guard writes it in the same transaction as the device state.
 * {@link AlarmLog.prune} forgets alarms cleared long ago (the pipeline keeps 30 days).
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";

/** One alarm (one confirmation loop of one device). */
export interface AlarmRecord {
  id: number;
  device: string;
  deviceType: string;
  state: string;
  label: string | null;
  startedAt: number;
  acknowledgedAt: number | null;
  clearedAt: number | null;
  /** Alerts sent to the critical group that the mesh confirmed. */
  alertsSent: number;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS guard_alarms (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  device TEXT NOT NULL,
  device_type TEXT NOT NULL,
  state TEXT NOT NULL,
  label TEXT,
  started_at INTEGER NOT NULL,
  acknowledged_at INTEGER,
  cleared_at INTEGER
);
CREATE INDEX IF NOT EXISTS guard_alarms_open ON guard_alarms(cleared_at, started_at);
CREATE TABLE IF NOT EXISTS guard_alarm_messages (
  delivery_id TEXT PRIMARY KEY,
  alarm_id INTEGER NOT NULL,
  alert_number INTEGER NOT NULL,
  sent_at INTEGER
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS guard_alarm_messages_alarm ON guard_alarm_messages(alarm_id);
`;

const COLUMNS = `a.id, a.device, a.device_type, a.state, a.label, a.started_at, a.acknowledged_at,
  a.cleared_at, (SELECT count(*) FROM guard_alarm_messages m
    WHERE m.alarm_id = a.id AND m.sent_at IS NOT NULL) AS alerts_sent`;

type Row = Record<string, unknown>;

function fromRow(r: Row): AlarmRecord {
  const n = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    id: Number(r.id),
    device: String(r.device),
    deviceType: String(r.device_type),
    state: String(r.state),
    label: r.label === null || r.label === undefined ? null : String(r.label),
    startedAt: Number(r.started_at),
    acknowledgedAt: n(r.acknowledged_at),
    clearedAt: n(r.cleared_at),
    alertsSent: Number(r.alerts_sent ?? 0),
  };
}

/** SQL access to the alarm record (in joi's database). */
export class AlarmLog {
  #open: StatementSync;
  #ack: StatementSync;
  #clear: StatementSync;
  #message: StatementSync;
  #sent: StatementSync;
  #byDelivery: StatementSync;
  #byId: StatementSync;
  #unackedSent: StatementSync;
  #recent: StatementSync;
  #prune: StatementSync;
  #pruneMessages: StatementSync;

  constructor(db: DatabaseSync) {
    db.exec(SCHEMA);
    this.#open = db.prepare(
      `INSERT INTO guard_alarms (device, device_type, state, label, started_at)
       VALUES (?, ?, ?, ?, ?)`,
    );
    this.#ack = db.prepare(
      "UPDATE guard_alarms SET acknowledged_at = ? WHERE id = ? AND acknowledged_at IS NULL",
    );
    this.#clear = db.prepare(
      "UPDATE guard_alarms SET cleared_at = ? WHERE id = ? AND cleared_at IS NULL",
    );
    this.#message = db.prepare(
      `INSERT OR IGNORE INTO guard_alarm_messages (delivery_id, alarm_id, alert_number)
       VALUES (?, ?, ?)`,
    );
    this.#sent = db.prepare(
      "UPDATE guard_alarm_messages SET sent_at = ? WHERE delivery_id = ? AND sent_at IS NULL",
    );
    this.#byDelivery = db.prepare(
      `SELECT ${COLUMNS} FROM guard_alarms a JOIN guard_alarm_messages m0
       ON m0.alarm_id = a.id WHERE m0.delivery_id = ?`,
    );
    this.#byId = db.prepare(`SELECT ${COLUMNS} FROM guard_alarms a WHERE a.id = ?`);
    this.#unackedSent = db.prepare(
      `SELECT ${COLUMNS} FROM guard_alarms a WHERE a.cleared_at IS NULL
       AND a.acknowledged_at IS NULL AND EXISTS (SELECT 1 FROM guard_alarm_messages m
       WHERE m.alarm_id = a.id AND m.sent_at IS NOT NULL AND m.sent_at <= ?)
       ORDER BY a.started_at`,
    );
    this.#recent = db.prepare(
      `SELECT ${COLUMNS} FROM guard_alarms a WHERE a.cleared_at IS NULL OR a.cleared_at >= ?
       ORDER BY a.started_at DESC LIMIT ?`,
    );
    this.#pruneMessages = db.prepare(
      `DELETE FROM guard_alarm_messages WHERE alarm_id IN
       (SELECT id FROM guard_alarms WHERE cleared_at IS NOT NULL AND cleared_at < ?)`,
    );
    this.#prune = db.prepare(
      "DELETE FROM guard_alarms WHERE cleared_at IS NOT NULL AND cleared_at < ?",
    );
  }

  /** Records a new alarm; returns its id. */
  open(
    a: { device: string; deviceType: string; state: string; label: string | null },
    at: number,
  ): number {
    return Number(this.#open.run(a.device, a.deviceType, a.state, a.label, at).lastInsertRowid);
  }

  /** Marks alarm `id` acknowledged at `at` (once). */
  acknowledge(id: number, at: number): void {
    this.#ack.run(at, id);
  }

  /** Marks alarm `id` cleared at `at` (once). */
  clear(id: number, at: number): void {
    this.#clear.run(at, id);
  }

  /** Remembers that outbox message `deliveryId` carries alert `alertNumber` of alarm `id`. */
  carriedBy(id: number, deliveryId: string, alertNumber: number): void {
    this.#message.run(deliveryId, id, alertNumber);
  }

  /** The mesh confirmed message `deliveryId` (a no-op for messages that carry no alarm). */
  markSent(deliveryId: string, at: number): void {
    this.#sent.run(at, deliveryId);
  }

  /** The alarm an outbox message carried, if it carried one. */
  byDelivery(deliveryId: string): AlarmRecord | undefined {
    const r = this.#byDelivery.get(deliveryId) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }

  /** One alarm. */
  get(id: number): AlarmRecord | undefined {
    const r = this.#byId.get(id) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }

  /** Active, unacknowledged alarms with an alert the mesh confirmed at or before `at`. */
  unacknowledgedSent(at: number): AlarmRecord[] {
    return (this.#unackedSent.all(at) as Row[]).map(fromRow);
  }

  /** Active alarms and those cleared since `since`, newest first, at most `limit`. */
  recent(since: number, limit = 20): AlarmRecord[] {
    return (this.#recent.all(since, limit) as Row[]).map(fromRow);
  }

  /** Forgets alarms cleared before `before`. */
  prune(before: number): number {
    this.#pruneMessages.run(before);
    return Number(this.#prune.run(before).changes);
  }
}
