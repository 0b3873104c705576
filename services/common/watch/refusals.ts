/**
 * Bursts of requests refused for their timestamp, per peer: a signed route's
 * `onTimestamp` hook records each refusal; `count` of them within `windowMs`
 * is a burst (the clock of one side is off by more than the tolerance, and
 * what that peer sends, alarms included, is refused). Used by joi's clock
 * watch and by the mesh, which tells the household when joi's requests are
 * refused (joi cannot: its messages are the ones refused).
 *
 * @module
 */

/** A burst: `count` refusals of `peer` since `first`, the last one `skewMs` off. */
export interface Burst {
  peer: string;
  count: number;
  first: number;
  /** The server's clock minus the peer's timestamp (ms) of the last refusal. */
  skewMs: number;
}

/** Options of {@link RefusalBursts}. */
export interface RefusalBurstsOptions {
  /** Refusals that make a burst (policy `watch.timestamp_refusals.count`). */
  count: () => number;
  /** Within this window (`watch.timestamp_refusals.window_minutes`), ms. */
  windowMs: () => number;
}

/** Counts refusals per peer in a sliding window. */
export class RefusalBursts {
  readonly #o: RefusalBurstsOptions;
  readonly #seen = new Map<string, { at: number; skewMs: number }[]>();
  readonly #listeners: ((b: Burst) => void)[] = [];

  /** Creates the counter. */
  constructor(o: RefusalBurstsOptions) {
    this.#o = o;
  }

  /** Calls `fn` with each burst (every refusal from the `count`-th on, within the window). */
  onBurst(fn: (b: Burst) => void): void {
    this.#listeners.push(fn);
  }

  /** Records one refusal of `peer` at `at`; returns the burst it completes, if any. */
  record(peer: string, skewMs: number, at: number): Burst | null {
    const windowMs = this.#o.windowMs();
    const list = (this.#seen.get(peer) ?? []).filter((r) => at - r.at <= windowMs);
    list.push({ at, skewMs });
    this.#seen.set(peer, list);
    if (list.length < this.#o.count()) return null;
    const burst = { peer, count: list.length, first: list[0]!.at, skewMs };
    for (const fn of this.#listeners) fn(burst);
    return burst;
  }

  /** Refusals of `peer` within the window before `now`. */
  recent(peer: string, now: number): number {
    const windowMs = this.#o.windowMs();
    return (this.#seen.get(peer) ?? []).filter((r) => now - r.at <= windowMs).length;
  }
}
