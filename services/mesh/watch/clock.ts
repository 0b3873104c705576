/**
 * The mesh's part of the clock watch: when joi's requests are refused for
 * their timestamp (a burst of `watch.timestamp_refusals`), joi's alerts and
 * replies are the very messages that cannot get through, so the mesh tells
 * the owner's DM and the critical group itself, once per episode, and again
 * when a whole window passed without a refusal.
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";
import { Episode } from "../../common/watch/episode.ts";
import type { WatchLedger } from "../../common/watch/ledger.ts";
import type { Burst, RefusalBursts } from "../../common/watch/refusals.ts";
import { durationText } from "../../common/watch/time_text.ts";
import type { MeshAlerts } from "./alerts.ts";

/** Options of {@link MeshRefusalWatch}. */
export interface MeshRefusalWatchOptions {
  ledger: WatchLedger;
  alerts: MeshAlerts;
  /** Fed by the signed routes' `onTimestamp` hook (peer `joi`). */
  refusals: RefusalBursts;
  /** `watch.timestamp_refusals.window_minutes`, ms. */
  windowMs: number;
  log: Logger;
  now: () => number;
}

/** Tells the household when the mesh refuses joi's requests for their clock. */
export class MeshRefusalWatch {
  readonly #o: MeshRefusalWatchOptions;
  readonly #episode: Episode;

  /** Subscribes to the refusal bursts. */
  constructor(o: MeshRefusalWatchOptions) {
    this.#o = o;
    this.#episode = new Episode(o.ledger, "clock-refusals-joi");
    o.refusals.onBurst((b) => {
      if (b.peer === "joi") this.#burst(b);
    });
  }

  #burst(b: Burst): void {
    const o = this.#o;
    const t = this.#episode.observe(true, o.now(), String(b.skewMs), b.first);
    if (t?.kind !== "started") return;
    o.log.security("timestamp_refusals", { peer: "joi", count: b.count, skew_ms: b.skewMs });
    const off = durationText(Math.abs(b.skewMs));
    o.alerts.raise({
      watch: "clock-refusals-joi",
      episode: t.id,
      phase: "alert",
      to: "both",
      text: `The mesh refused ${b.count} requests from joi in the last ` +
        `${durationText(o.windowMs)} because their time was ${off} ` +
        `${b.skewMs > 0 ? "behind" : "ahead of"} the mesh's clock: joi's alerts and replies are ` +
        `not getting through. Fix time synchronisation (chrony) on the joi VM and the mesh VM.`,
    });
  }

  /** Ends an episode after a window without a refusal (called every few seconds). */
  tick(now: number): void {
    const o = this.#o;
    if (!this.#episode.open || o.refusals.recent("joi", now) > 0) return;
    const t = this.#episode.observe(false, now);
    if (t?.kind !== "ended") return;
    o.alerts.raise({
      watch: "clock-refusals-joi",
      episode: t.id,
      phase: "recovered",
      to: "both",
      text: `joi's requests get through again: none was refused for its time for ` +
        `${durationText(o.windowMs)}.`,
    });
  }
}
