/**
 * The replay guard: seen nonces, and a durable bound on the timestamps this
 * server ever accepted, so that neither a restart nor a power cut reopens the
 * replay window, without a disk write per request.
 *
 * **Mechanism: a durable timestamp ceiling and a boot floor.** Seen nonces
 * live in memory (a `Map`). On disk, an append-only journal holds a
 * *ceiling*: every request this server ever let through carries an
 * `X-Timestamp` at or below the last ceiling written and synced. Before a
 * request whose timestamp is above the ceiling may act, the ceiling is raised
 * (to now + 2 x `ceilingStepMs`, 1 s by default) and the line is
 * `fdatasync`ed; requests arriving meanwhile share that write (group
 * commit), and requests at or below the durable ceiling need no write at
 * all. The ceiling is raised ahead of need: a request that finds it less than
 * one step ahead of the clock is let through at once (it is below the
 * durable ceiling) and starts the next raise in the background, so under
 * steady traffic no request waits for the disk, which sees about one small
 * synced append per `ceilingStepMs`; only the first request after a quiet
 * spell longer than the step waits for one `fdatasync` (about 1 ms here,
 * never on the event loop: the sync runs on Deno's blocking pool). When the server starts again (after a crash, a kill
 * or a power cut), the last durable ceiling becomes its *floor*: a request
 * signed at or before it is refused ({@link ClaimResult} `before_restart`),
 * so no request an earlier run accepted can be accepted again, although the
 * earlier run's nonces are gone. The cost is that requests signed in the
 * last second or two before a restart are refused once; clients sign each
 * try afresh and retry.
 *
 * Requests dated more than `ceilingStepMs` ahead of the server clock (a
 * client clock running fast, within the tolerance) would drag the ceiling,
 * and so the next floor, into the future: their nonces are journaled instead
 * (written and synced before they act, grouped the same way) and read back
 * at start.
 *
 * A journal line that a power cut tore is ignored (its write was never
 * synced, so nothing acted on it). The journal is split into segments of
 * `retention` each (`<path>.<segment start ms>`); a segment is deleted once
 * everything in it is older than twice the retention (by then the tolerance
 * refuses those timestamps anyway), and a new segment's directory entry is
 * synced before it is used.
 *
 * **Retention.** A request is accepted only while `|now - X-Timestamp| <=
 * tolerance`, so its nonce can be replayed successfully at most until
 * `seen + 2 x tolerance`; the policy loader checks that retention exceeds
 * that, and nonces are forgotten after it.
 *
 * One process owns a journal (each service has its own file). `:memory:`
 * keeps everything in memory (tests; a restart forgets it).
 *
 * @module
 */

/** What {@link NonceStore.claim} found. */
export type ClaimResult =
  /** Unseen and durable: the request may act. */
  | "fresh"
  /** Seen before: a replay. */
  | "replay"
  /** Signed at or before the floor of this run: possibly accepted by an earlier run. */
  | "before_restart";

/** A replay guard. */
export interface NonceStore {
  /**
   * Claims `nonce` of a request signed at `timestamp` (epoch ms). The answer
   * is immediate when nothing must be written, else a promise that resolves
   * once the write is durable. Of two concurrent claims of one nonce, exactly
   * one gets `fresh`. Rejects when the journal cannot be written (the request
   * must then be refused).
   */
  claim(nonce: string, timestamp: number): ClaimResult | Promise<ClaimResult>;
  /** True when `nonce` is held (and not yet pruned). */
  seen(nonce: string): boolean;
  /** Requests signed at or before this are refused (the last run's ceiling; -Infinity if none). */
  readonly floor: number;
  /** Forgets nonces older than the retention and deletes expired segments; returns how many. */
  prune(): number;
  /** Number of nonces held. */
  size(): number;
  /** Stops writing (after the write in flight) and closes the journal. */
  close(): void;
}

/** Options of {@link openNonceStore}. */
export interface NonceStoreOptions {
  /** Clock (epoch ms), for tests. */
  now?: (() => number) | undefined;
  /** Prune at most this often during claims (default one minute). */
  pruneEveryMs?: number | undefined;
  /** Ceiling granularity (default 1000 ms): about one synced write per this, and the refusal window after a restart (at most twice this). */
  ceilingStepMs?: number | undefined;
}

const encoder = new TextEncoder();
const NONCE_LINE = /^([0-9a-f-]{36}) ([0-9]{1,15})$/;
const CEILING_LINE = /^ceiling ([0-9]{1,15})$/;

/**
 * Opens (creating) the replay guard's journal at `path` (segments
 * `<path>.<ms>`, 0600), keeping nonces for `retentionMs` after they were
 * first seen. `:memory:` writes nothing.
 */
export function openNonceStore(
  path: string,
  retentionMs: number,
  options: NonceStoreOptions = {},
): NonceStore {
  if (!Number.isFinite(retentionMs) || retentionMs <= 0) {
    throw new RangeError(`nonce retention must be a positive number of ms, got ${retentionMs}`);
  }
  try {
    return new JournalStore(path, retentionMs, options);
  } catch (e) {
    throw new Error(
      `cannot open the nonce store ${path}: ${(e as Error).message}; ` +
        `check the directory exists and is writable by this service`,
      { cause: e },
    );
  }
}

/** One group write: the lines it carries, the ceiling it makes durable, its waiters. */
interface Batch {
  lines: string[];
  ceiling: number;
  done: PromiseWithResolvers<ClaimResult>;
}

class JournalStore implements NonceStore {
  readonly #seen = new Map<string, number>();
  readonly #retention: number;
  readonly #now: () => number;
  readonly #pruneEveryMs: number;
  readonly #step: number;
  readonly #dir: string | undefined;
  readonly #base: string;
  #floor = -Infinity;
  /** Durable: every timestamp let through is at or below it. */
  #ceiling = -Infinity;
  #lastPrune = -Infinity;
  #file: Deno.FsFile | undefined;
  #segment = -1;
  /** The batch being written, and the one collecting the next write. */
  #inflight: Batch | undefined;
  #next: Batch | undefined;
  #closed = false;

  constructor(path: string, retentionMs: number, o: NonceStoreOptions) {
    this.#retention = retentionMs;
    this.#now = o.now ?? Date.now;
    this.#pruneEveryMs = o.pruneEveryMs ?? 60_000;
    this.#step = o.ceilingStepMs ?? 1000;
    const slash = path.lastIndexOf("/");
    this.#dir = path === ":memory:" ? undefined : slash >= 0 ? path.slice(0, slash) || "/" : ".";
    this.#base = slash >= 0 ? path.slice(slash + 1) : path;
    if (this.#dir !== undefined) this.#load();
  }

  get floor(): number {
    return this.#floor;
  }

  /** Segment files of this journal, oldest first, with their start time. */
  #segments(): { name: string; start: number }[] {
    const out: { name: string; start: number }[] = [];
    const prefix = `${this.#base}.`;
    for (const e of Deno.readDirSync(this.#dir!)) {
      if (!e.isFile || !e.name.startsWith(prefix)) continue;
      const start = e.name.slice(prefix.length);
      if (/^[0-9]{1,15}$/.test(start)) out.push({ name: e.name, start: Number(start) });
    }
    return out.sort((a, b) => a.start - b.start);
  }

  #load(): void {
    const cutoff = this.#now() - this.#retention;
    for (const { name } of this.#segments()) {
      const text = Deno.readTextFileSync(`${this.#dir}/${name}`);
      for (const line of text.split("\n")) {
        const n = NONCE_LINE.exec(line);
        if (n) {
          if (Number(n[2]) > cutoff && !this.#seen.has(n[1]!)) this.#seen.set(n[1]!, Number(n[2]));
          continue;
        }
        const c = CEILING_LINE.exec(line);
        if (c) this.#floor = Math.max(this.#floor, Number(c[1]));
      }
    }
    this.#ceiling = this.#floor;
  }

  claim(nonce: string, timestamp: number): ClaimResult | Promise<ClaimResult> {
    if (this.#seen.has(nonce)) return "replay";
    if (timestamp <= this.#floor) return "before_restart";
    if (this.#closed) return Promise.reject(new Error("the nonce store is closed"));
    const t = this.#now();
    if (t - this.#lastPrune >= this.#pruneEveryMs) this.prune();
    this.#seen.set(nonce, t);
    if (this.#dir === undefined) return "fresh";
    if (timestamp <= this.#ceiling) {
      // Fresh at once. When the ceiling is less than a step ahead of the clock,
      // raise it in the background, so that steady traffic never waits for a sync.
      if (t + this.#step > this.#ceiling && this.#inflight === undefined) {
        const batch = this.#batch();
        batch.ceiling = Math.max(batch.ceiling, t + 2 * this.#step);
        void this.#flush();
      }
      return "fresh";
    }
    if (this.#inflight !== undefined && timestamp <= this.#inflight.ceiling) {
      return this.#inflight.done.promise;
    }
    const batch = this.#batch();
    if (timestamp <= t + this.#step) {
      batch.ceiling = Math.max(batch.ceiling, t + 2 * this.#step);
    } else {
      batch.lines.push(`${nonce} ${t}\n`); // dated ahead: keep the nonce itself
    }
    if (this.#inflight === undefined) void this.#flush();
    return batch.done.promise;
  }

  /** The batch collecting the next write. */
  #batch(): Batch {
    if (this.#next === undefined) {
      const done = Promise.withResolvers<ClaimResult>();
      // a background raise has no waiter: its failure is seen by the next claim that needs it
      done.promise.catch(() => {});
      this.#next = { lines: [], ceiling: this.#ceiling, done };
    }
    return this.#next;
  }

  async #flush(): Promise<void> {
    while (this.#next !== undefined && !this.#closed) {
      const batch = this.#inflight = this.#next;
      this.#next = undefined;
      try {
        const file = await this.#current();
        let text = batch.lines.join("");
        if (batch.ceiling > this.#ceiling) text += `ceiling ${batch.ceiling}\n`;
        const bytes = encoder.encode(text);
        let off = 0;
        while (off < bytes.length) off += await file.write(bytes.subarray(off));
        await file.syncData();
        this.#ceiling = Math.max(this.#ceiling, batch.ceiling);
        batch.done.resolve("fresh");
      } catch (e) {
        batch.done.reject(e);
      }
    }
    this.#inflight = undefined;
    if (this.#closed) {
      this.#next?.done.reject(new Error("the nonce store is closed"));
      this.#next = undefined;
      this.#closeFile();
    }
  }

  /** The segment file for now, rotating (and syncing the directory) when due. */
  async #current(): Promise<Deno.FsFile> {
    const start = Math.floor(this.#now() / this.#retention) * this.#retention;
    if (this.#file !== undefined && start === this.#segment) return this.#file;
    this.#closeFile();
    const path = `${this.#dir}/${this.#base}.${start}`;
    const file = await Deno.open(path, { append: true, create: true, mode: 0o600 });
    const dir = await Deno.open(this.#dir!, { read: true });
    try {
      await dir.sync(); // the new segment's directory entry survives a power cut
    } finally {
      dir.close();
    }
    // each segment carries the ceiling in force, so deleting older ones never lowers it
    if (Number.isFinite(this.#ceiling)) {
      await file.write(encoder.encode(`ceiling ${this.#ceiling}\n`));
    }
    this.#file = file;
    this.#segment = start;
    return file;
  }

  #closeFile(): void {
    try {
      this.#file?.close();
    } catch {
      // already closed
    }
    this.#file = undefined;
    this.#segment = -1;
  }

  seen(nonce: string): boolean {
    return this.#seen.has(nonce);
  }

  prune(): number {
    const now = this.#now();
    this.#lastPrune = now;
    const cutoff = now - this.#retention;
    let n = 0;
    for (const [nonce, at] of this.#seen) {
      if (at > cutoff) break; // insertion order is time order
      this.#seen.delete(nonce);
      n++;
    }
    if (this.#dir !== undefined) {
      for (const { name, start } of this.#segments()) {
        if (start + 2 * this.#retention <= now && start !== this.#segment) {
          try {
            Deno.removeSync(`${this.#dir}/${name}`);
          } catch {
            // removed already; the next prune retries otherwise
          }
        }
      }
    }
    return n;
  }

  size(): number {
    return this.#seen.size;
  }

  close(): void {
    this.#closed = true;
    if (this.#inflight === undefined) {
      this.#next?.done.reject(new Error("the nonce store is closed"));
      this.#next = undefined;
      this.#closeFile();
    }
  }
}
