/**
 * What is not an alarm becomes context for the agent: presence changes,
 * batched sensor summaries, weather, non-critical alerts, thing status.
 * {@link ContextBuffer} is a bounded in-memory ring the agent reads (and may
 * replace with its own {@link ContextSink}). A summary is a fixed template
 * over identifiers and numbers; text from outside (a String item's value, a
 * trigger's event, a label) is never in it but beside it in `data`, cleaned
 * and capped, which the prompt shows quoted inside `<untrusted_data>`.
 * (Alarms are not context items: the agent reads them from the alarm record.)
 *
 * @module
 */

/** One item of home context. */
export interface ContextItem {
  /** `event`, `reading_batch`, `weather_summary`, `cleared`. */
  kind: string;
  /** Device or topic. */
  device: string;
  /** A short fixed-template line: identifiers, numbers, state words. */
  summary: string;
  /** Untrusted text that goes with it (cleaned, capped): shown quoted and tagged, never inline. */
  data?: string;
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
