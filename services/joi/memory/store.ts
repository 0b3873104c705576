/**
 * One channel's memory: conversation turns, summaries and remembered facts in
 * an append-only, hash-chained SQLite table, with every text encrypted
 * (AES-GCM, see {@link seal}). Retention pruning deletes the oldest records and
 * appends a `prune` record stating where the chain now starts, so the chain
 * stays verifiable after a prune.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import { openDb, transaction } from "../../common/db.ts";
import { canonicalJson } from "../../common/policy/identities_hash.ts";
import { type ChainRecord, GENESIS_HASH, recordHash, type RecordKind } from "./chain.ts";
import { type MemoryKey, open, seal } from "./crypto.ts";
import type { ChainHeads } from "./heads.ts";

/** Schema of a channel database. */
export const MEMORY_SCHEMA = `
CREATE TABLE IF NOT EXISTS memory_records (
  id INTEGER PRIMARY KEY AUTOINCREMENT,
  kind TEXT NOT NULL CHECK (kind IN ('turn','summary','fact','prune')),
  conversation_id TEXT NOT NULL,
  role TEXT NOT NULL,
  sender TEXT NOT NULL,
  created_at INTEGER NOT NULL,
  nonce TEXT NOT NULL,
  ciphertext TEXT NOT NULL,
  meta TEXT NOT NULL,
  prev_hash TEXT NOT NULL,
  hash TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS memory_records_conv ON memory_records (conversation_id, kind, id);
CREATE INDEX IF NOT EXISTS memory_records_created ON memory_records (created_at);
`;

/** A decrypted turn of a conversation. */
export interface Turn {
  /** Record id. */
  id: number;
  /** `user` or `assistant`. */
  role: "user" | "assistant";
  /** Canonical sender id (`joi` for the assistant). */
  sender: string;
  /** The message text. */
  text: string;
  /** Unix ms. */
  createdAt: number;
}

/** The stored state of one conversation: its latest summary and the turns after it. */
export interface ConversationState {
  /** The newest summary, if any, and the last turn id it covers. */
  summary?: { text: string; coversThroughId: number } | undefined;
  /** Turns newer than the summary, oldest first (at most `limit`). */
  turns: Turn[];
}

/** Result of {@link MemoryStore.prune}. */
export interface PruneResult {
  /** Records deleted. */
  deleted: number;
  /** Id of the prune record appended (absent when nothing was old enough). */
  pruneRecordId?: number;
}

/** Options of {@link MemoryStore.open}. */
export interface MemoryStoreOptions {
  /** Where the chain head is anchored outside this file (joi.db). */
  heads?: ChainHeads | undefined;
  /** Clock (Unix ms), for tests. */
  now?: (() => number) | undefined;
}

/** One channel's encrypted, hash-chained memory. */
export class MemoryStore {
  #db: DatabaseSync;
  #channel: string;
  #key: MemoryKey;
  #heads: ChainHeads | undefined;
  #now: () => number;
  #queue: Promise<unknown> = Promise.resolve();
  #statements = new Map<string, StatementSync>();

  private constructor(db: DatabaseSync, channel: string, key: MemoryKey, opts: MemoryStoreOptions) {
    this.#db = db;
    this.#channel = channel;
    this.#key = key;
    this.#heads = opts.heads;
    this.#now = opts.now ?? Date.now;
  }

  /** Opens (creating if needed, 0600) the store of `channel` at `path`. */
  static open(
    path: string,
    channel: string,
    key: MemoryKey,
    opts: MemoryStoreOptions = {},
  ): MemoryStore {
    const db = openDb(path, { mode: 0o600 });
    db.exec(MEMORY_SCHEMA);
    return new MemoryStore(db, channel, key, opts);
  }

  /** The channel this store belongs to. */
  get channel(): string {
    return this.#channel;
  }

  /** Closes the database. */
  close(): void {
    this.#db.close();
  }

  /** Appends a conversation turn; returns its record id. */
  appendTurn(
    t: { conversationId: string; role: "user" | "assistant"; sender: string; text: string },
  ): Promise<number> {
    return this.#append("turn", t.conversationId, t.role, t.sender, t.text, {});
  }

  /** Appends a summary of the turns up to `coversThroughId`. */
  appendSummary(
    s: { conversationId: string; text: string; coversThroughId: number },
  ): Promise<number> {
    return this.#append("summary", s.conversationId, "", "joi", s.text, {
      covers_through_id: s.coversThroughId,
    });
  }

  /** Appends a fact the agent chose to remember. */
  appendFact(f: { conversationId: string; sender: string; text: string }): Promise<number> {
    return this.#append("fact", f.conversationId, "", f.sender, f.text, {});
  }

  /** The latest summary and up to `limit` most recent turns after it. */
  async conversation(conversationId: string, limit = 200): Promise<ConversationState> {
    const s = this.#sql(
      `SELECT * FROM memory_records WHERE conversation_id = ? AND kind = 'summary' ORDER BY id DESC LIMIT 1`,
    ).get(conversationId) as ChainRecord | undefined;
    let summary: ConversationState["summary"];
    let after = 0;
    if (s) {
      after = Number(JSON.parse(s.meta).covers_through_id ?? 0);
      summary = { text: await this.#open(s), coversThroughId: after };
    }
    const rows = this.#sql(
      `SELECT * FROM (SELECT * FROM memory_records WHERE conversation_id = ? AND kind = 'turn' AND id > ?
         ORDER BY id DESC LIMIT ?) ORDER BY id ASC`,
    ).all(conversationId, after, limit) as unknown as ChainRecord[];
    const turns: Turn[] = [];
    for (const r of rows) {
      turns.push({
        id: r.id,
        role: r.role as Turn["role"],
        sender: r.sender,
        text: await this.#open(r),
        createdAt: r.created_at,
      });
    }
    return { summary, turns };
  }

  /** The most recent remembered facts (newest last). */
  async facts(limit = 20): Promise<string[]> {
    const rows = this.#sql(
      `SELECT * FROM (SELECT * FROM memory_records WHERE kind = 'fact' ORDER BY id DESC LIMIT ?) ORDER BY id`,
    ).all(limit) as unknown as ChainRecord[];
    const out: string[] = [];
    for (const r of rows) out.push(await this.#open(r));
    return out;
  }

  /** Number of records in the store. */
  count(): number {
    return Number(
      (this.#sql(`SELECT count(*) AS n FROM memory_records`).get() as { n: number }).n,
    );
  }

  /**
   * Deletes records older than `retentionDays` (a prefix of the chain) and
   * records the prune in the chain itself.
   */
  prune(retentionDays: number): Promise<PruneResult> {
    if (!(retentionDays > 0)) {
      return Promise.reject(
        new RangeError(
          `memory prune ${this.#channel}: retention_days must be > 0, got ${retentionDays}`,
        ),
      );
    }
    return this.#serial(() => {
      const now = this.#now();
      const cutoff = now - retentionDays * 86_400_000;
      return transaction(this.#db, () => {
        const first = this.#sql(`SELECT min(id) AS id FROM memory_records`).get() as {
          id: number | null;
        };
        if (first.id === null) return { deleted: 0 };
        const kept = this.#sql(
          `SELECT min(id) AS id FROM memory_records WHERE created_at >= ?`,
        ).get(cutoff) as { id: number | null };
        const { id: nextId, prev } = this.#tail();
        const firstKept = kept.id ?? nextId;
        if (firstKept <= first.id) return { deleted: 0 };
        const before = this.#sql(`SELECT hash FROM memory_records WHERE id = ?`).get(
          firstKept - 1,
        ) as
          | { hash: string }
          | undefined;
        if (!before) {
          throw new Error(
            `memory prune ${this.#channel}: record #${
              firstKept - 1
            } missing; run \`deno task memory verify\``,
          );
        }
        const res = this.#sql(`DELETE FROM memory_records WHERE id < ?`).run(firstKept);
        const deleted = Number(res.changes);
        const meta = canonicalJson({
          cutoff,
          deleted,
          first_kept_id: firstKept,
          first_kept_prev_hash: before.hash,
        });
        this.#insert({
          id: nextId,
          kind: "prune",
          conversation_id: "",
          role: "",
          sender: "joi",
          created_at: now,
          nonce: "",
          ciphertext: "",
          meta,
          prev_hash: prev,
        });
        return { deleted, pruneRecordId: nextId };
      });
    });
  }

  #tail(): { id: number; prev: string } {
    const seq = this.#sql(`SELECT seq FROM sqlite_sequence WHERE name = 'memory_records'`)
      .get() as
        | { seq: number }
        | undefined;
    const last = this.#sql(`SELECT id, hash FROM memory_records ORDER BY id DESC LIMIT 1`)
      .get() as
        | { id: number; hash: string }
        | undefined;
    const lastId = Number(seq?.seq ?? 0);
    if (last && Number(last.id) !== lastId) {
      throw new Error(
        `memory ${this.#channel}: the newest record is #${last.id} but #${lastId} was written; ` +
          `records were deleted outside joi. Run \`deno task memory verify\``,
      );
    }
    if (!last && lastId !== 0) {
      throw new Error(
        `memory ${this.#channel}: all records were deleted outside joi. Run \`deno task memory verify\``,
      );
    }
    return { id: lastId + 1, prev: last?.hash ?? GENESIS_HASH };
  }

  #insert(rec: Omit<ChainRecord, "hash">): string {
    const hash = recordHash(rec, this.#key.chainKey);
    this.#sql(
      `INSERT INTO memory_records (id, kind, conversation_id, role, sender, created_at, nonce, ciphertext, meta, prev_hash, hash)
       VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
    ).run(
      rec.id,
      rec.kind,
      rec.conversation_id,
      rec.role,
      rec.sender,
      rec.created_at,
      rec.nonce,
      rec.ciphertext,
      rec.meta,
      rec.prev_hash,
      hash,
    );
    this.#heads?.set(this.#channel, rec.id, hash);
    return hash;
  }

  #append(
    kind: RecordKind,
    conversationId: string,
    role: string,
    sender: string,
    text: string,
    meta: Record<string, unknown>,
  ): Promise<number> {
    return this.#serial(async () => {
      const { id } = this.#tail();
      const sealed = await seal(this.#key, this.#channel, id, text);
      return transaction(this.#db, () => {
        const tail = this.#tail();
        if (tail.id !== id) {
          throw new Error(
            `memory ${this.#channel}: concurrent writer detected; joi must be the only writer`,
          );
        }
        this.#insert({
          id,
          kind,
          conversation_id: conversationId,
          role,
          sender,
          created_at: this.#now(),
          nonce: sealed.nonce,
          ciphertext: sealed.ciphertext,
          meta: canonicalJson(meta),
          prev_hash: tail.prev,
        });
        return id;
      });
    });
  }

  /** A prepared statement, compiled once per store (native memory is not seen by the GC). */
  #sql(sql: string): StatementSync {
    let st = this.#statements.get(sql);
    if (!st) {
      st = this.#db.prepare(sql);
      this.#statements.set(sql, st);
    }
    return st;
  }

  #open(r: ChainRecord): Promise<string> {
    return open(this.#key, this.#channel, Number(r.id), {
      nonce: r.nonce,
      ciphertext: r.ciphertext,
    });
  }

  #serial<T>(fn: () => T | Promise<T>): Promise<T> {
    const run = this.#queue.then(fn, fn);
    this.#queue = run.catch(() => undefined);
    return run;
  }
}
