/**
 * Sliding-window rate limiting, keyed by string.
 *
 * One {@link RateLimiter} enforces one {@link RateLimit} (figures from
 * `policy.yaml`: `per_day`, `per_hour`, `per_minute`, `cooldown_seconds`) for
 * any number of keys (a conversation, a sender, an endpoint). Every window
 * slides: the limiter keeps the times of the accepted hits of each key, never
 * more than the largest limit, so a flood of refused requests costs nothing.
 * Refused attempts are not recorded (a sender that keeps knocking is not
 * punished beyond the window). Time is passed in (or taken from an injected
 * clock), so tests never sleep.
 *
 * ```ts
 * const limiter = new RateLimiter({ per_hour: 120, per_minute: 20, cooldown_seconds: 5 });
 * const verdict = limiter.check("owner_private_dm");
 * if (!verdict.allowed) console.log(`retry in ${verdict.retryAfterSeconds} s`);
 * ```
 *
 * @module
 */

/** A limit as policy.yaml states it. Absent or zero fields do not limit. */
export interface RateLimit {
  /** Hits per rolling 24 hours. */
  per_day?: number;
  /** Hits per rolling 60 minutes. */
  per_hour?: number;
  /** Hits per rolling 60 seconds. */
  per_minute?: number;
  /** Minimum seconds between two accepted hits. */
  cooldown_seconds?: number;
}

/** The verdict of {@link RateLimiter.check}. */
export interface RateVerdict {
  /** Whether the hit is within the limit (and, for `check`, was recorded). */
  allowed: boolean;
  /** When refused: whole seconds (at least 1) until a retry can succeed; 0 when allowed. */
  retryAfterSeconds: number;
  /** When refused: which rule refused it. */
  reason?: "per_day" | "per_hour" | "per_minute" | "cooldown";
}

/** Options of {@link RateLimiter}. */
export interface RateLimiterOptions {
  /** Clock (ms since the epoch) used when `check` gets no time. Default `Date.now`. */
  now?: (() => number) | undefined;
  /** Keys idle longer than the largest window are forgotten once this many keys exist. */
  maxIdleKeys?: number | undefined;
}

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

interface Window {
  reason: "per_day" | "per_hour" | "per_minute";
  limit: number;
  spanMs: number;
}

/** Times of accepted hits of one key, oldest first, as a compacting queue. */
class HitQueue {
  times: number[] = [];
  head = 0;

  get size(): number {
    return this.times.length - this.head;
  }

  /** The i-th newest hit (0 = newest); callers keep `i < size`. */
  fromEnd(i: number): number {
    const t = this.times[this.times.length - 1 - i];
    if (t === undefined) throw new RangeError(`hit ${i} of ${this.size} does not exist`);
    return t;
  }

  last(): number | undefined {
    return this.size > 0 ? this.times[this.times.length - 1] : undefined;
  }

  push(t: number): void {
    this.times.push(t);
  }

  dropBefore(cutoff: number): void {
    while (this.head < this.times.length && this.times[this.head]! <= cutoff) this.head++;
    if (this.head > 64 && this.head * 2 > this.times.length) {
      this.times = this.times.slice(this.head);
      this.head = 0;
    }
  }

  dropOldest(keep: number): void {
    if (this.size > keep) this.head = this.times.length - keep;
  }
}

/** Validates a limit, naming the bad field. */
export function validateRateLimit(limit: RateLimit, where = "rate limit"): void {
  for (const field of ["per_day", "per_hour", "per_minute", "cooldown_seconds"] as const) {
    const v = limit[field];
    if (v === undefined) continue;
    if (typeof v !== "number" || !Number.isFinite(v) || v < 0) {
      throw new RangeError(
        `${where}: ${field} must be a non-negative number, got ${JSON.stringify(v)}; ` +
          `fix it in policy.yaml`,
      );
    }
  }
}

/** A sliding-window limiter enforcing one {@link RateLimit} per key. */
export class RateLimiter {
  readonly limit: Readonly<RateLimit>;
  #windows: Window[];
  #cooldownMs: number;
  #keep: number;
  #horizonMs: number;
  #hits = new Map<string, HitQueue>();
  #now: () => number;
  #maxIdleKeys: number;

  /** Creates a limiter; throws a `RangeError` naming the field for a bad limit. */
  constructor(limit: RateLimit, options: RateLimiterOptions = {}) {
    validateRateLimit(limit);
    this.limit = Object.freeze({ ...limit });
    const windows: Window[] = [];
    if (limit.per_day) windows.push({ reason: "per_day", limit: limit.per_day, spanMs: DAY });
    if (limit.per_hour) windows.push({ reason: "per_hour", limit: limit.per_hour, spanMs: HOUR });
    if (limit.per_minute) {
      windows.push({ reason: "per_minute", limit: limit.per_minute, spanMs: MINUTE });
    }
    this.#windows = windows;
    this.#cooldownMs = (limit.cooldown_seconds ?? 0) * 1000;
    this.#keep = Math.max(1, ...windows.map((w) => w.limit));
    this.#horizonMs = Math.max(this.#cooldownMs, ...windows.map((w) => w.spanMs), 0);
    this.#now = options.now ?? Date.now;
    this.#maxIdleKeys = options.maxIdleKeys ?? 10_000;
  }

  /** Whether `key` may act at `now`, without recording anything. */
  peek(key: string, now: number = this.#now()): RateVerdict {
    const q = this.#hits.get(key);
    if (!q) return { allowed: true, retryAfterSeconds: 0 };
    // no pruning here: a peek at a later time must not forget hits
    let waitMs = 0;
    let reason: RateVerdict["reason"];
    const last = q.last();
    if (this.#cooldownMs > 0 && last !== undefined && now - last < this.#cooldownMs) {
      waitMs = last + this.#cooldownMs - now;
      reason = "cooldown";
    }
    for (const w of this.#windows) {
      if (q.size < w.limit) continue;
      // the hit that must leave the window before another one fits
      const blocker = q.fromEnd(w.limit - 1);
      if (now - blocker < w.spanMs) {
        const wait = blocker + w.spanMs - now;
        if (wait > waitMs) {
          waitMs = wait;
          reason = w.reason;
        }
      }
    }
    if (reason === undefined) return { allowed: true, retryAfterSeconds: 0 };
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(waitMs / 1000)), reason };
  }

  /** Checks `key` at `now` and, when allowed, records the hit. */
  check(key: string, now: number = this.#now()): RateVerdict {
    const verdict = this.peek(key, now);
    if (verdict.allowed) this.record(key, now);
    return verdict;
  }

  /**
   * Takes up to `n` hits for `key` at `now`, as many as the limit admits, and
   * records them: a batch of `n` events counts `n`, never one. Returns how
   * many were granted and, when fewer than `n`, how long until the next fits.
   */
  take(key: string, n: number, now: number = this.#now()): { granted: number } & RateVerdict {
    let granted = 0;
    while (granted < n) {
      const v = this.peek(key, now);
      if (!v.allowed) return { granted, ...v };
      this.record(key, now);
      granted++;
    }
    return { granted, allowed: true, retryAfterSeconds: 0 };
  }

  /** Records a hit for `key` regardless of the limit (a send that bypassed it). */
  record(key: string, now: number = this.#now()): void {
    let q = this.#hits.get(key);
    if (!q) {
      if (this.#hits.size >= this.#maxIdleKeys) this.prune(now);
      q = new HitQueue();
      this.#hits.set(key, q);
    }
    q.push(now);
    q.dropBefore(now - this.#horizonMs);
    q.dropOldest(this.#keep);
  }

  /** Hits of `key` still inside its largest window. */
  count(key: string, now: number = this.#now()): number {
    const q = this.#hits.get(key);
    if (!q) return 0;
    let n = 0;
    while (n < q.size && q.fromEnd(n) > now - this.#horizonMs) n++;
    return n;
  }

  /** Forgets keys with no hit inside any window. */
  prune(now: number = this.#now()): void {
    for (const [key, q] of this.#hits) {
      q.dropBefore(now - this.#horizonMs);
      if (q.size === 0) this.#hits.delete(key);
    }
  }

  /** Forgets one key, or every key. */
  reset(key?: string): void {
    if (key === undefined) this.#hits.clear();
    else this.#hits.delete(key);
  }

  /** Number of keys tracked (for health and tests). */
  get keys(): number {
    return this.#hits.size;
  }
}
