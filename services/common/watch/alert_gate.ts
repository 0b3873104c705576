/**
 * When a watch's message may go out. Every watch alert passes here once:
 *
 * - **once per episode**: a (watch, episode, phase) decided before is a
 *   duplicate and is dropped (the ledger keeps decisions across restarts);
 * - **quiet hours**: an alert that is not about safety waits for their end;
 * - **hourly cap**: at most `perHour` non-safety alerts in any hour; the next
 *   one waits until the oldest of the hour has aged out (deferred, never
 *   dropped);
 * - **safety** alerts (the house gone silent, joi cut off, a clock that makes
 *   alarms fail) go at once, whatever the hour and the cap.
 *
 * The gate only decides; the caller commits its message with the send time
 * in the same transaction ({@link WatchLedger.atomically}), so an alert is
 * either decided and queued, or neither.
 *
 * @module
 */
import type { LedgerAlert, WatchLedger } from "./ledger.ts";

/** Options of {@link AlertGate}. */
export interface AlertGateOptions {
  ledger: WatchLedger;
  /** Non-safety alerts per rolling hour (policy `watch.alerts_per_hour`). */
  perHour: () => number;
  /** The end of the quiet hours `at` falls in (ms), or null when `at` is not in them. */
  quietUntil?: ((at: number) => number | null) | undefined;
}

/** The gate's verdict. */
export type GateVerdict = { send: true; at: number } | { send: false; reason: "duplicate" };

const HOUR = 3_600_000;

/** Decides when each watch alert is sent. */
export class AlertGate {
  readonly #o: AlertGateOptions;

  /** Creates the gate. */
  constructor(o: AlertGateOptions) {
    this.#o = o;
  }

  /** Decides `alert` at `now` and records the decision. Call inside a transaction. */
  decide(alert: LedgerAlert, now: number): GateVerdict {
    const at = alert.safety ? now : this.#sendTime(now);
    if (!this.#o.ledger.record(alert, now, at)) return { send: false, reason: "duplicate" };
    return { send: true, at };
  }

  #sendTime(now: number): number {
    let at = this.#o.quietUntil?.(now) ?? now;
    // first in, first out: never before an alert already waiting, so no later
    // hour can end up over the cap
    const waiting = this.#o.ledger.scheduledAfter(at);
    at = Math.max(at, waiting.at(-1) ?? at);
    const cap = Math.max(1, this.#o.perHour());
    // each pass moves `at` past the oldest alert of its hour; it ends within
    // as many passes as there are alerts scheduled
    for (let guard = 0; guard < 10_000; guard++) {
      const inHour = this.#o.ledger.scheduledAfter(at - HOUR).filter((t) => t <= at);
      if (inHour.length < cap) break;
      at = inHour[inHour.length - cap]! + HOUR;
      at = this.#o.quietUntil?.(at) ?? at;
    }
    return at;
  }
}
