/**
 * One watched condition as a sequence of episodes: a condition goes bad, stays
 * bad past a threshold (a number of consecutive bad checks, a duration, or
 * both) and is told once; when it is good again, the recovery is told once.
 * An episode that ends before its threshold is never told. The state is saved
 * in the {@link WatchLedger} at every change, so a restart neither forgets an
 * open episode nor tells it again.
 *
 * ```ts
 * const link = new Episode(ledger, "link", { count: 3 });
 * const t = link.observe(false, Date.now(), "mesh did not answer");
 * if (t?.kind === "started") tell(`down since ${t.since}`);
 * ```
 *
 * Time is whatever the caller passes (an injected clock in tests).
 *
 * @module
 */
import type { WatchLedger } from "./ledger.ts";

/** When a bad condition is told. Both figures must be reached (default: 1 check, 0 ms). */
export interface Threshold {
  /** Consecutive bad observations. */
  count?: number;
  /** Time since the first bad observation (or the `since` the caller gives), ms. */
  durationMs?: number;
}

/** The saved state of one watch. */
export interface EpisodeState {
  /** The condition is bad now. */
  bad: boolean;
  /** Start of the current (or last) bad stretch, ms. */
  since: number | null;
  /** Consecutive bad observations. */
  count: number;
  /** The current episode was told. */
  told: boolean;
  /** Id of the current (or last told) episode. */
  id: string | null;
  /** The last bad observation's detail (for messages and /health). */
  detail: string | null;
  /** When the last told episode ended, ms (null while open or never). */
  endedAt: number | null;
}

/** A change worth telling. */
export type Transition =
  | { kind: "started"; id: string; since: number; count: number; detail: string | null }
  | { kind: "ended"; id: string; since: number; until: number; detail: string | null };

const FRESH: EpisodeState = {
  bad: false,
  since: null,
  count: 0,
  told: false,
  id: null,
  detail: null,
  endedAt: null,
};

/** A watched condition with durable episodes. */
export class Episode {
  readonly #ledger: WatchLedger;
  readonly #watch: string;
  readonly #threshold: Required<Threshold>;
  #state: EpisodeState;

  /** Loads the state of `watch` (fresh when none was saved). */
  constructor(ledger: WatchLedger, watch: string, threshold: Threshold = {}) {
    this.#ledger = ledger;
    this.#watch = watch;
    this.#threshold = {
      count: Math.max(1, threshold.count ?? 1),
      durationMs: Math.max(0, threshold.durationMs ?? 0),
    };
    this.#state = { ...FRESH, ...(ledger.load<EpisodeState>(watch) ?? {}) };
  }

  /** The watch's name. */
  get watch(): string {
    return this.#watch;
  }

  /** A copy of the current state. */
  get state(): EpisodeState {
    return { ...this.#state };
  }

  /** The open, told episode, if any. */
  get open(): { id: string; since: number } | null {
    const s = this.#state;
    return s.told && s.id !== null && s.since !== null ? { id: s.id, since: s.since } : null;
  }

  /**
   * Records one observation at `at`. `since` overrides the start of a new
   * bad stretch (e.g. the last heartbeat, when silence is what is observed).
   * Returns the transition to tell, or null.
   */
  observe(
    bad: boolean,
    at: number,
    detail: string | null = null,
    since?: number,
  ): Transition | null {
    const s = this.#state;
    if (!bad) {
      if (!s.bad && s.count === 0) return null;
      const told = s.told && s.id !== null && s.since !== null;
      const out: Transition | null = told
        ? { kind: "ended", id: s.id!, since: s.since!, until: at, detail: s.detail }
        : null;
      this.#save({
        ...FRESH,
        id: told ? s.id : null,
        endedAt: told ? at : s.endedAt,
      });
      return out;
    }
    const start = s.bad && s.since !== null ? s.since : since ?? at;
    const next: EpisodeState = {
      ...s,
      bad: true,
      since: start,
      count: s.count + 1,
      detail,
      endedAt: s.bad ? s.endedAt : null,
    };
    if (!s.bad) {
      next.told = false;
      next.id = `${this.#watch}-${start}`;
    }
    const due = next.count >= this.#threshold.count && at - start >= this.#threshold.durationMs;
    if (due && !next.told) {
      next.told = true;
      this.#save(next);
      return { kind: "started", id: next.id!, since: start, count: next.count, detail };
    }
    this.#save(next);
    return null;
  }

  /** Ends the current stretch without telling anything (e.g. the condition no longer applies). */
  reset(): void {
    this.#save({ ...FRESH, endedAt: this.#state.endedAt });
  }

  #save(next: EpisodeState): void {
    this.#state = next;
    this.#ledger.save(this.#watch, next);
  }
}
