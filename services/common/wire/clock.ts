/**
 * The measured clock offset to a peer, from the server timestamps of signed
 * answers (`X-Timestamp` of a verified response): offset = server clock -
 * the midpoint of the request's send and the answer's arrival, as NTP does.
 * Each client keeps the last sample and shows it in its service's `/health`
 * (the clock watch of the health monitoring reads it from there).
 *
 * @module
 */

/** One measurement. */
export interface ClockSample {
  /** Peer clock minus ours (ms); positive when the peer is ahead. */
  offsetMs: number;
  /** Round trip of the exchange it came from (ms): the offset's uncertainty is half of it. */
  rttMs: number;
  /** When it was taken (our clock, epoch ms). */
  at: number;
}

/** The clock offset to one peer, as last measured. */
export class PeerClock {
  #last: ClockSample | undefined;

  /** Records an authenticated server time `serverMs` seen between `sentMs` and `receivedMs`. */
  record(serverMs: number, sentMs: number, receivedMs: number): ClockSample {
    const sample = {
      offsetMs: Math.round(serverMs - (sentMs + receivedMs) / 2),
      rttMs: Math.max(0, receivedMs - sentMs),
      at: receivedMs,
    };
    this.#last = sample;
    return sample;
  }

  /** The last sample, if any. */
  get last(): ClockSample | undefined {
    return this.#last;
  }

  /** The `/health` form: `{offset_ms, rtt_ms, measured_at}` or null before the first answer. */
  health(): { offset_ms: number; rtt_ms: number; measured_at: string } | null {
    const s = this.#last;
    return s === undefined
      ? null
      : { offset_ms: s.offsetMs, rtt_ms: s.rttMs, measured_at: new Date(s.at).toISOString() };
  }
}
