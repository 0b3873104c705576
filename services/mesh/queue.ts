/**
 * The mesh's durable state in one SQLite file (`<state-dir>/mesh.db`):
 *
 * - `inbound_queue`: messages accepted from Signal and not yet acknowledged
 *   by joi, delivered strictly in acceptance order. A message is removed only
 *   after joi answered it, so a crash (even SIGKILL) loses nothing;
 * - `seen`: (sender, timestamp) pairs already accepted, so a duplicate
 *   envelope (or a redelivery after a restart) reaches joi once;
 * - `kv`: small facts that must survive restarts (signal-cli version first
 *   seen, last group membership alerted);
 * - `sent_messages`: every message sent for joi, by joi's request id, with
 *   the Signal timestamp it got and the answer joi was given. A repeat of a
 *   request id (joi retrying after a lost answer) gets that answer again
 *   instead of a second send; a quote or a reaction naming that timestamp is
 *   mapped back to joi's id (an alarm's acknowledgement).
 * - `delivered`: the Signal coordinates (author, timestamp) of messages joi
 *   took, for a day, so a reply can quote the message it answers.
 *
 * `synchronous=FULL`: an accepted message survives a power cut too.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { openDb, transaction } from "../common/db.ts";

/** One message waiting for joi. */
export interface QueuedMessage {
  /** Order of acceptance. */
  seq: number;
  /** `message_id` of the body. */
  messageId: string;
  /** Validated channel (`X-Validated-Channel`). */
  channel: string;
  /** Canonical sender (`X-Validated-Sender`). */
  recipientId: string;
  /** sha256 of the sender's phone (`X-Signal-Sender-Hash`). */
  senderHash: string;
  /** The JSON body for joi. */
  body: string;
  /** When the mesh accepted it (ms). */
  enqueuedAt: number;
  /** Delivery attempts so far. */
  attempts: number;
}

/** What to enqueue. */
export type NewMessage = Omit<QueuedMessage, "seq" | "attempts">;

/** A message joi took, as Signal knows it (to quote it in the answer). */
export interface DeliveredMessage {
  /** The channel it came in. */
  channel: string;
  /** Its author's number (or uuid), as `quoteAuthor` wants it. */
  author: string;
  /** Its Signal timestamp (ms), as `quoteTimestamp` wants it. */
  timestamp: number;
  /** True for a voice note. */
  voice: boolean;
}

/** Options of {@link MeshStore}. */
export interface MeshStoreOptions {
  /** Longest queue; a message beyond it is refused (default 1000). */
  maxDepth?: number;
  /** How long a (sender, timestamp) pair is remembered (default 7 days). */
  seenRetentionMs?: number;
}

/** The queue is full: the message is refused rather than silently lost later. */
export class QueueFullError extends Error {
  constructor(depth: number) {
    super(
      `the queue to joi holds ${depth} messages, its maximum: joi has been unreachable for ` +
        `long; check joi and the network, or raise queue.max_depth in mesh.yaml`,
    );
    this.name = "QueueFullError";
  }
}

/** The mesh's SQLite state. */
export class MeshStore {
  readonly db: DatabaseSync;
  readonly maxDepth: number;
  readonly seenRetentionMs: number;
  #markSeen: StatementSync;
  #insert: StatementSync;
  #peek: StatementSync;
  #delete: StatementSync;
  #attempt: StatementSync;
  #depth: StatementSync;
  /** Per inbound message (the duplicate check), so prepared once. */
  #seen: StatementSync;

  /** Opens (creating) the store at `path` (`:memory:` for unit tests). */
  constructor(path: string, options: MeshStoreOptions = {}) {
    this.maxDepth = options.maxDepth ?? 1000;
    this.seenRetentionMs = options.seenRetentionMs ?? 7 * 24 * 3600_000;
    this.db = openDb(path, { synchronous: "FULL" });
    this.db.exec(`
      CREATE TABLE IF NOT EXISTS inbound_queue (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        message_id TEXT NOT NULL UNIQUE,
        channel TEXT NOT NULL,
        recipient_id TEXT NOT NULL,
        sender_hash TEXT NOT NULL,
        body TEXT NOT NULL,
        enqueued_at INTEGER NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0
      );
      CREATE TABLE IF NOT EXISTS seen (
        sender TEXT NOT NULL,
        ts INTEGER NOT NULL,
        seen_at INTEGER NOT NULL,
        PRIMARY KEY (sender, ts)
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS seen_at_idx ON seen (seen_at);
      CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value TEXT NOT NULL);
      CREATE TABLE IF NOT EXISTS sent_messages (
        request_id TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        signal_ts INTEGER,
        sent_at INTEGER NOT NULL,
        answer TEXT NOT NULL
      ) WITHOUT ROWID;
      CREATE INDEX IF NOT EXISTS sent_messages_ts ON sent_messages (signal_ts, channel);
      CREATE INDEX IF NOT EXISTS sent_messages_at ON sent_messages (sent_at);
      CREATE TABLE IF NOT EXISTS delivered (
        message_id TEXT PRIMARY KEY,
        channel TEXT NOT NULL,
        author TEXT NOT NULL,
        ts INTEGER NOT NULL,
        voice INTEGER NOT NULL,
        at INTEGER NOT NULL
      ) WITHOUT ROWID;
      CREATE TABLE IF NOT EXISTS voice_pending (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        sender TEXT NOT NULL,
        ts INTEGER NOT NULL,
        job TEXT NOT NULL
      );
    `);
    this.#markSeen = this.db.prepare(
      "INSERT OR IGNORE INTO seen (sender, ts, seen_at) VALUES (?, ?, ?)",
    );
    this.#insert = this.db.prepare(
      `INSERT INTO inbound_queue (message_id, channel, recipient_id, sender_hash, body, enqueued_at)
       VALUES (?, ?, ?, ?, ?, ?)`,
    );
    this.#peek = this.db.prepare(
      "SELECT * FROM inbound_queue ORDER BY seq LIMIT 1",
    );
    this.#delete = this.db.prepare("DELETE FROM inbound_queue WHERE seq = ?");
    this.#attempt = this.db.prepare(
      "UPDATE inbound_queue SET attempts = attempts + 1 WHERE seq = ?",
    );
    this.#depth = this.db.prepare("SELECT count(*) AS n FROM inbound_queue");
    this.#seen = this.db.prepare("SELECT 1 FROM seen WHERE sender = ? AND ts = ?");
  }

  /**
   * Records (sender, timestamp) as seen. Returns false when it was seen
   * before: the envelope is a duplicate.
   */
  markSeen(sender: string, timestamp: number, now: number): boolean {
    return Number(this.#markSeen.run(sender, timestamp, now).changes) === 1;
  }

  /** True when (sender, timestamp) was seen before. */
  seen(sender: string, timestamp: number): boolean {
    return this.#seen.get(sender, timestamp) !== undefined;
  }

  /**
   * Marks (sender, timestamp) seen and enqueues `msg` in one transaction.
   * Returns false (and enqueues nothing) for a duplicate. Throws
   * {@link QueueFullError} when the queue is full.
   */
  acceptOnce(sender: string, timestamp: number, msg: NewMessage): boolean {
    return transaction(this.db, () => {
      if (!this.markSeen(sender, timestamp, msg.enqueuedAt)) return false;
      this.#enqueueIn(msg);
      return true;
    });
  }

  /** Enqueues `msg` (already deduplicated). Throws {@link QueueFullError}. */
  enqueue(msg: NewMessage): void {
    transaction(this.db, () => this.#enqueueIn(msg));
  }

  #enqueueIn(msg: NewMessage): void {
    const depth = this.depth();
    if (depth >= this.maxDepth) throw new QueueFullError(depth);
    this.#insert.run(
      msg.messageId,
      msg.channel,
      msg.recipientId,
      msg.senderHash,
      msg.body,
      msg.enqueuedAt,
    );
  }

  /** The oldest waiting message, or null. */
  peek(): QueuedMessage | null {
    const row = this.#peek.get() as Record<string, unknown> | undefined;
    if (!row) return null;
    return {
      seq: Number(row.seq),
      messageId: String(row.message_id),
      channel: String(row.channel),
      recipientId: String(row.recipient_id),
      senderHash: String(row.sender_hash),
      body: String(row.body),
      enqueuedAt: Number(row.enqueued_at),
      attempts: Number(row.attempts),
    };
  }

  /** Removes a delivered (or dead) message. */
  remove(seq: number): void {
    this.#delete.run(seq);
  }

  /** Counts one more delivery attempt. */
  noteAttempt(seq: number): void {
    this.#attempt.run(seq);
  }

  /** Messages waiting. */
  depth(): number {
    return Number((this.#depth.get() as { n: number }).n);
  }

  /** Forgets (sender, timestamp) pairs and sent messages older than the retention, day-old deliveries. */
  pruneSeen(now: number): number {
    const r = this.db.prepare("DELETE FROM seen WHERE seen_at < ?").run(
      now - this.seenRetentionMs,
    );
    this.db.prepare("DELETE FROM sent_messages WHERE sent_at < ?").run(now - this.seenRetentionMs);
    this.db.prepare("DELETE FROM delivered WHERE at < ?").run(now - 24 * 3_600_000);
    return Number(r.changes);
  }

  /** Records that joi took `messageId` (see {@link DeliveredMessage}). */
  delivered(messageId: string, m: DeliveredMessage, now: number): void {
    this.db.prepare(
      `INSERT OR REPLACE INTO delivered (message_id, channel, author, ts, voice, at)
       VALUES (?, ?, ?, ?, ?, ?)`,
    ).run(messageId, m.channel, m.author, m.timestamp, m.voice ? 1 : 0, now);
  }

  /** The Signal coordinates of a message joi took in the last day, or null. */
  deliveredMessage(messageId: string): DeliveredMessage | null {
    const row = this.db.prepare(
      "SELECT channel, author, ts, voice FROM delivered WHERE message_id = ?",
    ).get(messageId) as { channel: string; author: string; ts: number; voice: number } | undefined;
    return row
      ? {
        channel: row.channel,
        author: row.author,
        timestamp: Number(row.ts),
        voice: row.voice === 1,
      }
      : null;
  }

  /**
   * Remembers a message sent for joi: its request id, channel, Signal
   * timestamp (null when signal-cli gave none) and the answer joi got.
   */
  rememberSent(
    requestId: string,
    channel: string,
    signalTs: number | null,
    at: number,
    answer: string,
  ): void {
    this.db.prepare(
      `INSERT OR IGNORE INTO sent_messages (request_id, channel, signal_ts, sent_at, answer)
       VALUES (?, ?, ?, ?, ?)`,
    ).run(requestId, channel, signalTs, at, answer);
  }

  /** The answer given to request `requestId`, if it was sent already. */
  sentAnswer(requestId: string): string | null {
    const r = this.db.prepare("SELECT answer FROM sent_messages WHERE request_id = ?").get(
      requestId,
    ) as { answer: string } | undefined;
    return r ? r.answer : null;
  }

  /** joi's request id of the message sent to `channel` with Signal timestamp `ts`. */
  requestForSignal(ts: number, channel: string): string | null {
    const r = this.db.prepare(
      "SELECT request_id FROM sent_messages WHERE signal_ts = ? AND channel = ?",
    ).get(ts, channel) as { request_id: string } | undefined;
    return r ? r.request_id : null;
  }

  /**
   * Accepts a voice note: marks (sender, timestamp) seen and records the job,
   * in one transaction, so a crash during transcription does not lose it.
   * Returns the job's id, or null for a duplicate.
   */
  acceptVoice(sender: string, timestamp: number, job: string, now: number): number | null {
    return transaction(this.db, () => {
      if (!this.markSeen(sender, timestamp, now)) return null;
      const r = this.db.prepare("INSERT INTO voice_pending (sender, ts, job) VALUES (?, ?, ?)")
        .run(sender, timestamp, job);
      return Number(r.lastInsertRowid);
    });
  }

  /** Enqueues the result of voice job `id` and forgets the job, atomically. */
  finishVoice(id: number, msg: NewMessage): void {
    transaction(this.db, () => {
      this.db.prepare("DELETE FROM voice_pending WHERE seq = ?").run(id);
      this.#enqueueIn(msg);
    });
  }

  /** Forgets voice job `id` without a result (its sender was revoked). */
  dropVoice(id: number): void {
    this.db.prepare("DELETE FROM voice_pending WHERE seq = ?").run(id);
  }

  /** Voice jobs accepted but not finished (after a crash), oldest first. */
  pendingVoice(): { id: number; job: string }[] {
    return (this.db.prepare("SELECT seq, job FROM voice_pending ORDER BY seq").all() as {
      seq: number;
      job: string;
    }[]).map((r) => ({ id: Number(r.seq), job: r.job }));
  }

  /** Reads a small persisted fact. */
  get(key: string): string | null {
    const row = this.db.prepare("SELECT value FROM kv WHERE key = ?").get(key) as
      | { value: string }
      | undefined;
    return row ? row.value : null;
  }

  /** Writes a small persisted fact. */
  set(key: string, value: string): void {
    this.db.prepare(
      "INSERT INTO kv (key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
    ).run(key, value);
  }

  /** Closes the database. */
  close(): void {
    try {
      this.db.close();
    } catch { /* closed */ }
  }
}
