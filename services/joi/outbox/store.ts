/**
 * The durable outbox queue in SQLite. A message is committed before the
 * caller is told it was accepted, so a SIGKILL loses nothing accepted; it is
 * marked sent only after the mesh confirmed (at-least-once: a kill between
 * the mesh's answer and the mark resends it with the same `X-Request-ID`).
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { MessageKind, QueuedMessage } from "./message.ts";

const SCHEMA = `
CREATE TABLE IF NOT EXISTS outbox (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  delivery_id TEXT NOT NULL UNIQUE,
  channel TEXT NOT NULL,
  recipient TEXT NOT NULL,
  text TEXT NOT NULL,
  priority TEXT NOT NULL CHECK (priority IN ('normal', 'critical')),
  kind TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  ttl_ms INTEGER,
  template INTEGER NOT NULL DEFAULT 0,
  reply_to TEXT,
  conversation_id TEXT,
  voice_response INTEGER NOT NULL DEFAULT 0,
  status TEXT NOT NULL DEFAULT 'queued',
  attempts INTEGER NOT NULL DEFAULT 0,
  next_attempt_at INTEGER NOT NULL,
  last_error TEXT,
  sent_at INTEGER,
  delayed INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox(status, priority, next_attempt_at);
`;

/** Columns added after a table was first created (an older joi.db gains them at open). */
const ADDED_COLUMNS = [["delayed", "INTEGER NOT NULL DEFAULT 0"]] as const;

type Row = Record<string, unknown>;

function fromRow(r: Row): QueuedMessage {
  return {
    id: Number(r.id),
    deliveryId: String(r.delivery_id),
    channel: String(r.channel),
    recipient: String(r.recipient),
    text: String(r.text),
    priority: r.priority === "critical" ? "critical" : "normal",
    kind: String(r.kind) as MessageKind,
    createdAt: Number(r.created_at),
    ttlMs: r.ttl_ms === null ? null : Number(r.ttl_ms),
    template: Number(r.template) === 1,
    replyTo: r.reply_to === null ? null : String(r.reply_to),
    conversationId: r.conversation_id === null ? null : String(r.conversation_id),
    voiceResponse: Number(r.voice_response) === 1,
    status: String(r.status) as QueuedMessage["status"],
    attempts: Number(r.attempts),
    nextAttemptAt: Number(r.next_attempt_at),
    lastError: r.last_error === null ? null : String(r.last_error),
    sentAt: r.sent_at === null ? null : Number(r.sent_at),
  };
}

/** A new row's fields. */
export type NewRow = Omit<
  QueuedMessage,
  "id" | "status" | "attempts" | "lastError" | "sentAt" | "nextAttemptAt" | "deliveryId"
>;

/** What happened to the messages of one stretch of time (the link watch's summary). */
export interface WindowCounts {
  /** Critical messages raised before its end, sent after its start, held back (see windowCounts). */
  criticalDelivered: number;
  /** Messages raised before its end whose time to live ran out after its start. */
  expired: number;
  /** Messages raised before its end still waiting. */
  stillQueued: number;
}

/** SQL access to the outbox table. */
export class OutboxStore {
  #db: DatabaseSync;
  #insert: StatementSync;
  #due: StatementSync;
  #dueOf: StatementSync;
  #sent: StatementSync;
  #retry: StatementSync;
  #final: StatementSync;
  #depth: StatementSync;
  #nextDue: StatementSync;

  constructor(db: DatabaseSync) {
    this.#db = db;
    db.exec(SCHEMA);
    const have = new Set(
      (db.prepare("PRAGMA table_info(outbox)").all() as Row[]).map((r) => String(r.name)),
    );
    for (const [name, type] of ADDED_COLUMNS) {
      if (!have.has(name)) db.exec(`ALTER TABLE outbox ADD COLUMN ${name} ${type}`);
    }
    this.#insert = db.prepare(`INSERT INTO outbox (delivery_id, channel, recipient, text,
      priority, kind, created_at, ttl_ms, template, reply_to, conversation_id, voice_response,
      next_attempt_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`);
    this.#due = db.prepare(`SELECT * FROM outbox WHERE status = 'queued' AND next_attempt_at <= ?
      ORDER BY priority = 'critical' DESC, id LIMIT ?`);
    this.#dueOf = db.prepare(`SELECT * FROM outbox WHERE status = 'queued' AND priority = ?
      AND next_attempt_at <= ? ORDER BY id LIMIT ?`);
    this.#sent = db.prepare(
      "UPDATE outbox SET status = 'sent', sent_at = ?, delayed = ?, attempts = attempts + 1 " +
        "WHERE id = ?",
    );
    this.#retry = db.prepare(
      "UPDATE outbox SET attempts = ?, next_attempt_at = ?, last_error = ? WHERE id = ?",
    );
    this.#final = db.prepare("UPDATE outbox SET status = ?, last_error = ? WHERE id = ?");
    this.#depth = db.prepare(`SELECT count(*) AS n,
      coalesce(sum(priority = 'critical'), 0) AS c FROM outbox WHERE status = 'queued'`);
    this.#nextDue = db.prepare(
      "SELECT min(next_attempt_at) AS t FROM outbox WHERE status = 'queued'",
    );
  }

  /**
   * Inserts a message, first due at `now` (or `notBefore` when later);
   * returns its id and its delivery id (`X-Request-ID`).
   */
  insert(m: NewRow, now: number, notBefore?: number): { id: number; deliveryId: string } {
    const deliveryId = crypto.randomUUID();
    const r = this.#insert.run(
      deliveryId,
      m.channel,
      m.recipient,
      m.text,
      m.priority,
      m.kind,
      m.createdAt,
      m.ttlMs,
      m.template ? 1 : 0,
      m.replyTo,
      m.conversationId,
      m.voiceResponse ? 1 : 0,
      Math.max(now, notBefore ?? now),
    );
    return { id: Number(r.lastInsertRowid), deliveryId };
  }

  /** Queued messages due at `now` (of one priority when given), critical first, then oldest first. */
  due(now: number, limit: number, priority?: "critical" | "normal"): QueuedMessage[] {
    const rows = priority === undefined
      ? this.#due.all(now, limit)
      : this.#dueOf.all(priority, now, limit);
    return (rows as Row[]).map(fromRow);
  }

  /**
   * Marks a message sent; `delayed` when it went out marked delayed (the
   * household saw "[delayed; first raised ...]"), which the link watch's
   * summary counts.
   */
  markSent(id: number, now: number, delayed = false): void {
    this.#sent.run(now, delayed ? 1 : 0, id);
  }

  /** Schedules another attempt. */
  reschedule(id: number, attempts: number, at: number, error: string | null): void {
    this.#retry.run(attempts, at, error, id);
  }

  /** Ends a message as dropped (stale) or failed (refused by the mesh). */
  finish(id: number, status: "dropped" | "failed", reason: string): void {
    this.#final.run(status, reason, id);
  }

  /** One message by id. */
  get(id: number): QueuedMessage | undefined {
    const r = this.#db.prepare("SELECT * FROM outbox WHERE id = ?").get(id) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }

  /** Messages queued (depth for /health). */
  depth(): { queued: number; critical: number } {
    const r = this.#depth.get() as Row;
    return { queued: Number(r.n), critical: Number(r.c) };
  }

  /** The earliest next attempt of a queued message, if any. */
  nextDue(): number | null {
    const r = this.#nextDue.get() as Row;
    return r.t === null ? null : Number(r.t);
  }

  /**
   * Makes every message waiting for a retry (after a failed send) due at
   * `now`: the link to the mesh is back. Messages deferred on purpose (quiet
   * hours, never tried yet) keep their time.
   */
  retryNow(now: number): number {
    const r = this.#db.prepare(
      "UPDATE outbox SET next_attempt_at = ? WHERE status = 'queued' AND attempts > 0 " +
        "AND next_attempt_at > ?",
    ).run(now, now);
    return Number(r.changes);
  }

  /**
   * Counts for the stretch `[from, to]` (ms). A critical message counts as
   * delivered late when it went out marked delayed, or waited at least
   * `heldMs` between being raised and being sent (an alarm another node held,
   * raised at the device's time); one sent at once does not count.
   */
  windowCounts(from: number, to: number, heldMs: number): WindowCounts {
    const r = this.#db.prepare(`SELECT
      coalesce(sum(priority = 'critical' AND status = 'sent' AND sent_at >= ?1
        AND (delayed = 1 OR sent_at - created_at >= ?3)), 0) AS delivered,
      coalesce(sum(status = 'dropped' AND ttl_ms IS NOT NULL AND created_at + ttl_ms >= ?1), 0)
        AS expired,
      coalesce(sum(status = 'queued'), 0) AS queued
      FROM outbox WHERE created_at <= ?2`).get(from, to, heldMs) as Row;
    return {
      criticalDelivered: Number(r.delivered),
      expired: Number(r.expired),
      stillQueued: Number(r.queued),
    };
  }

  /**
   * Deletes one channel's finished messages (sent, failed, dropped) created
   * before `before`: the channel's memory retention applies to what joi said
   * there too. Queued messages are never deleted.
   */
  purge(channel: string, before: number): number {
    const r = this.#db.prepare(
      "DELETE FROM outbox WHERE channel = ? AND status != 'queued' AND created_at < ?",
    ).run(channel, before);
    return Number(r.changes);
  }

  /**
   * Applies `memory.retention_days` (channel -> days) to the outbox; channels
   * without an entry keep everything, as their memory does. Returns what was
   * deleted per channel.
   */
  purgeAll(retentionDays: Readonly<Record<string, number>>, now: number): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [channel, days] of Object.entries(retentionDays)) {
      out[channel] = this.purge(channel, now - days * 86_400_000);
    }
    return out;
  }
}
