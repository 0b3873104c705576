/**
 * The clock watch. Every signed exchange carries a clock: the mesh's answers
 * to joi's link checks (server time, midpoint rule) and the relay's
 * heartbeats (their send time: a one-way sample, good to the network's delay).
 * joi keeps the last offset to each peer for `/health`, and:
 *
 * - tells the owner when a peer's clock is more than
 *   `security.clock_offset_alert_seconds` off joi's in two samples running,
 *   and again when it is back in line (before the offset reaches the
 *   signature tolerance and signed requests, alarms included, start failing);
 * - tells the owner (as a safety message: it is already happening) when
 *   `watch.timestamp_refusals.count` requests of one peer were refused for
 *   their timestamp within `window_minutes`, naming the peer.
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";
import { Episode } from "../../common/watch/episode.ts";
import type { WatchLedger } from "../../common/watch/ledger.ts";
import type { ClockSample } from "../../common/watch/link_ping.ts";
import { durationText } from "../../common/watch/time_text.ts";
import type { WatchAlerts } from "./alerts.ts";
import { RefusalBursts } from "../../common/watch/refusals.ts";

/** The peers whose clocks joi sees. */
export type Peer = "mesh" | "openhab";

const NAMES: Record<Peer, string> = { mesh: "the mesh VM", openhab: "the openHAB VM" };
const CONSEQUENCE: Record<Peer, string> = {
  mesh: "messages between joi and Signal",
  openhab: "alarms from the house",
};

/** Options of {@link ClockWatch}. */
export interface ClockWatchOptions {
  ledger: WatchLedger;
  alerts: WatchAlerts;
  /** `security.clock_offset_alert_seconds`, ms. */
  alertMs: () => number;
  /** `security.timestamp_tolerance_minutes`, ms. */
  toleranceMs: () => number;
  /** `watch.timestamp_refusals`. */
  refusals: () => { count: number; window_minutes: number };
  log: Logger;
  now: () => number;
}

/** The clock watch. */
export class ClockWatch {
  readonly #o: ClockWatchOptions;
  readonly #offset: Record<Peer, Episode>;
  readonly #burst: Record<Peer, Episode>;
  readonly #samples = new Map<Peer, ClockSample>();
  readonly #bursts: RefusalBursts;

  /** Loads the saved episodes. */
  constructor(o: ClockWatchOptions) {
    this.#o = o;
    this.#offset = {
      mesh: new Episode(o.ledger, "clock-mesh", { count: 2 }),
      openhab: new Episode(o.ledger, "clock-openhab", { count: 2 }),
    };
    this.#burst = {
      mesh: new Episode(o.ledger, "clock-refusals-mesh"),
      openhab: new Episode(o.ledger, "clock-refusals-openhab"),
    };
    this.#bursts = new RefusalBursts({
      count: () => o.refusals().count,
      windowMs: () => o.refusals().window_minutes * 60_000,
    });
  }

  /** A measured offset to `peer` (its clock minus joi's). */
  sample(peer: Peer, s: ClockSample): void {
    this.#samples.set(peer, s);
    const limit = this.#o.alertMs();
    const off = s.offsetMs;
    const t = this.#offset[peer].observe(Math.abs(off) > limit, s.at, String(off));
    if (t?.kind === "started") {
      this.#o.log.warn("clock_offset", { peer, offset_ms: off });
      this.#o.alerts.send({
        watch: `clock-${peer}`,
        episode: t.id,
        phase: "alert",
        safety: false,
        to: "owner",
        text: `The clock of ${NAMES[peer]} is ${seconds(off)} ${off > 0 ? "ahead of" : "behind"} ` +
          `joi's (I warn above ${seconds(limit)}). At ${durationText(this.#o.toleranceMs())} ` +
          `apart, ${CONSEQUENCE[peer]} will be refused: check time synchronisation (chrony) ` +
          `on both VMs.`,
      });
    } else if (t?.kind === "ended") {
      this.#o.alerts.send({
        watch: `clock-${peer}`,
        episode: t.id,
        phase: "recovered",
        safety: false,
        to: "owner",
        text: `The clocks of joi and ${NAMES[peer]} agree again (${seconds(off)} apart).`,
      });
    }
  }

  /** A request of `peer` was refused for its timestamp (`skewMs`: joi's clock minus its). */
  refused(peer: Peer, skewMs: number): void {
    const now = this.#o.now();
    const window_minutes = this.#o.refusals().window_minutes;
    const burst = this.#bursts.record(peer, skewMs, now);
    if (!burst) return;
    const t = this.#burst[peer].observe(true, now, String(skewMs), burst.first);
    if (t?.kind !== "started") return;
    this.#o.log.security("timestamp_refusals", { peer, count: burst.count, skew_ms: skewMs });
    this.#o.alerts.send({
      watch: `clock-refusals-${peer}`,
      episode: t.id,
      phase: "alert",
      safety: true,
      to: "owner",
      text: `joi refused ${burst.count} requests from ${NAMES[peer]} in the last ` +
        `${window_minutes} min because their time was ${seconds(Math.abs(skewMs))} ` +
        `${skewMs > 0 ? "behind" : "ahead of"} joi's clock: ${CONSEQUENCE[peer]} are not ` +
        `getting through. Fix time synchronisation (chrony) on ${NAMES[peer]} and joi.`,
    });
  }

  /** Ends refusal bursts that went quiet (called every few seconds). */
  tick(now: number): void {
    const windowMs = this.#o.refusals().window_minutes * 60_000;
    for (const peer of Object.keys(this.#burst) as Peer[]) {
      const ep = this.#burst[peer];
      if (!ep.open || this.#bursts.recent(peer, now) > 0) continue;
      const t = ep.observe(false, now);
      if (t?.kind === "ended") {
        this.#o.alerts.send({
          watch: `clock-refusals-${peer}`,
          episode: t.id,
          phase: "recovered",
          safety: true,
          to: "owner",
          text: `No request from ${NAMES[peer]} has been refused for its time for ` +
            `${durationText(windowMs)}: its requests get through again.`,
        });
      }
    }
  }

  /** For `/health`: the last offset to each peer. */
  status(): Record<string, unknown> {
    const out: Record<string, unknown> = {};
    for (const peer of ["mesh", "openhab"] as Peer[]) {
      const s = this.#samples.get(peer);
      out[peer] = s
        ? {
          offset_ms: s.offsetMs,
          rtt_ms: s.rttMs,
          measured_at: new Date(s.at).toISOString(),
          alerting: this.#offset[peer].open !== null,
        }
        : null;
      out[`${peer}_refusals`] = this.#bursts.recent(peer, this.#o.now());
    }
    return out;
  }
}

function seconds(ms: number): string {
  const s = Math.abs(ms) / 1000;
  return s < 10 ? `${s.toFixed(1)} s` : durationText(Math.abs(ms));
}
