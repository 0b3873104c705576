/**
 * What is not an alarm becomes context for the agent: presence changes,
 * batched sensor summaries, weather, non-critical alerts, thing status.
 * {@link ContextBuffer} is a bounded in-memory ring the agent reads (and may
 * replace with its own {@link ContextSink}); every text in it is already
 * cleaned and quoted, never raw event strings.
 *
 * @module
 */

/** One item of home context. */
export interface ContextItem {
  /** `event`, `reading_batch`, `weather_summary`, `cleared`. */
  kind: string;
  /** Device or topic. */
  device: string;
  /** A short fixed-template line with cleaned values. */
  summary: string;
  /** When it happened (ms). */
  at: number;
}

/** Receives context items. */
export interface ContextSink {
  push(item: ContextItem): void;
}

/** A bounded ring of the latest context items. */
export class ContextBuffer implements ContextSink {
  #items: ContextItem[] = [];
  #max: number;

  constructor(max = 500) {
    this.#max = max;
  }

  push(item: ContextItem): void {
    this.#items.push(item);
    if (this.#items.length > this.#max) this.#items.splice(0, this.#items.length - this.#max);
  }

  /** The latest items, newest last, at most `n`. */
  latest(n = 50): ContextItem[] {
    return this.#items.slice(-n);
  }

  /** Number of items held. */
  get size(): number {
    return this.#items.length;
  }
}
