/**
 * All channel stores of one joi state directory, opened lazily, plus the
 * whole-state verification used by `deno task memory verify`.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import { openDb } from "../../common/db.ts";
import type { MemoryKey } from "./crypto.ts";
import { ChainHeads } from "./heads.ts";
import { memoryPaths, type RecipientsShape, STATE_DB } from "./layout.ts";
import { MemoryStore } from "./store.ts";
import { verifyChain, type VerifyReport } from "./verify.ts";

/** Options of {@link MemoryStores}. */
export interface MemoryStoresOptions {
  /** joi's state directory (holds `data/` and `joi.db`). */
  stateDir: string;
  /** recipients.yaml, to derive channel -> file. */
  recipients: RecipientsShape;
  /** The encryption key. */
  key: MemoryKey;
  /**
   * joi.db (the chain heads), when the caller already holds it open (joi's
   * composition root); otherwise it is opened here and closed by {@link MemoryStores.close}.
   */
  stateDb?: DatabaseSync | undefined;
  /** Clock (Unix ms), for tests. */
  now?: () => number;
}

/** Every channel's store; a channel not derived from recipients.yaml has none. */
export class MemoryStores {
  #opts: MemoryStoresOptions;
  #paths: Record<string, string>;
  #open = new Map<string, MemoryStore>();
  #heads: ChainHeads;
  /** joi.db when this object opened it (and so closes it). */
  #ownStateDb: DatabaseSync | undefined;

  /** Takes or opens joi.db (for the chain heads); channel stores open on first use. */
  constructor(opts: MemoryStoresOptions) {
    this.#opts = opts;
    this.#paths = memoryPaths(opts.recipients);
    Deno.mkdirSync(opts.stateDir, { recursive: true, mode: 0o700 });
    const stateDb = opts.stateDb ??
      (this.#ownStateDb = openDb(`${opts.stateDir}/${STATE_DB}`));
    this.#heads = new ChainHeads(stateDb);
  }

  /** The channels that have a store. */
  channels(): string[] {
    return Object.keys(this.#paths);
  }

  /** The store of `channel`; throws for a channel without one (default deny). */
  store(channel: string): MemoryStore {
    const open = this.#open.get(channel);
    if (open) return open;
    const rel = this.#paths[channel];
    if (!rel) {
      throw new Error(
        `memory: no store for channel ${
          JSON.stringify(channel)
        } (not derived from recipients.yaml)`,
      );
    }
    const path = `${this.#opts.stateDir}/${rel}`;
    Deno.mkdirSync(path.slice(0, path.lastIndexOf("/")), { recursive: true, mode: 0o700 });
    const store = MemoryStore.open(path, channel, this.#opts.key, {
      heads: this.#heads,
      now: this.#opts.now,
    });
    this.#open.set(channel, store);
    return store;
  }

  /** Prunes every channel by its retention (days); channels absent from `retention` are kept. */
  async pruneAll(retention: Record<string, number>): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const channel of this.channels()) {
      const days = retention[channel];
      if (days === undefined) continue;
      out[channel] = (await this.store(channel).prune(days)).deleted;
    }
    return out;
  }

  /** Closes every database. */
  close(): void {
    for (const s of this.#open.values()) s.close();
    this.#open.clear();
    this.#ownStateDb?.close();
  }
}

/** One channel's verification result. */
export interface ChannelVerifyReport extends VerifyReport {
  /** The channel. */
  channel: string;
  /** Its database file. */
  path: string;
  /** False when the file does not exist yet (nothing to verify). */
  exists: boolean;
}

/** Verifies every channel store under `stateDir` against the heads in joi.db. */
export function verifyAll(
  stateDir: string,
  recipients: RecipientsShape,
  chainKey: Uint8Array,
): ChannelVerifyReport[] {
  const paths = memoryPaths(recipients);
  // The heads in joi.db anchor each chain's newest record. A missing joi.db is
  // tolerated here (a store with records then fails below: its anchor is
  // gone); one that exists but cannot be opened is an error, never skipped.
  let heads: ChainHeads | undefined;
  let stateDb;
  const statePath = `${stateDir}/${STATE_DB}`;
  let stateExists = true;
  try {
    Deno.statSync(statePath);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
    stateExists = false;
  }
  if (stateExists) {
    stateDb = openDb(statePath, { readOnly: true });
    heads = new ChainHeads(stateDb, true);
  }
  const out: ChannelVerifyReport[] = [];
  try {
    for (const [channel, rel] of Object.entries(paths)) {
      const path = `${stateDir}/${rel}`;
      try {
        Deno.statSync(path);
      } catch {
        const head = heads?.get(channel);
        out.push({
          channel,
          path,
          exists: false,
          ok: !head,
          records: 0,
          lastId: 0,
          ...(head
            ? {
              broken: {
                id: head.lastId,
                reason: "database file is missing",
                expected: head.lastHash,
                found: "no file",
              },
            }
            : {}),
        });
        continue;
      }
      const db = openDb(path, { readOnly: true });
      try {
        const head = heads?.get(channel);
        const report = verifyChain(db, chainKey, head);
        // every append anchors its record: records without an anchor mean the
        // anchor (joi.db or its heads table) was removed, hiding any tail deletion
        out.push({
          channel,
          path,
          exists: true,
          ...(report.ok && report.records > 0 && !head
            ? {
              ...report,
              ok: false,
              broken: {
                id: report.lastId,
                reason: "no chain head is anchored in joi.db for these records " +
                  "(joi.db or its memory_chain_heads table was removed); the newest records " +
                  "may have been deleted",
                expected: `a head in ${statePath}`,
                found: stateExists ? "none" : "no joi.db",
              },
            }
            : report),
        });
      } finally {
        db.close();
      }
    }
  } finally {
    stateDb?.close();
  }
  return out;
}
