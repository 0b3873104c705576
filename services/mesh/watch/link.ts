/**
 * The mesh's end of the link watch. The mesh is the Nebula lighthouse and
 * holds Signal, so it is the one that tells the household when joi goes
 * quiet. Every `nebula_health.check_interval_seconds` it checks joi with a
 * signed round trip, and it also expects joi's own checks to arrive: a check
 * is bad when joi did not answer, or when joi's checks stopped arriving (joi
 * can no longer reach the mesh: its messages, alarms included, are stuck in
 * joi's queue). After `alert_after_failures` bad checks in a row, the owner's
 * DM and the critical group are told that joi is unreachable and since when.
 *
 * When the link is back, joi sends the summary (it knows its queue): the
 * outage stays in the mesh's answers to joi's checks until joi acknowledges
 * it. The answers also carry the mesh's facts joi's watches act on (its
 * certificate, signal-cli's age, the clock offset the mesh measured).
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";
import { Episode } from "../../common/watch/episode.ts";
import type { WatchLedger } from "../../common/watch/ledger.ts";
import {
  type ClockSample,
  linkPing,
  type LinkRequester,
  type PingOutcome,
} from "../../common/watch/link_ping.ts";
import { timeText } from "../../common/watch/time_text.ts";
import type { MeshAlerts } from "./alerts.ts";

/** An outage of joi the mesh told the household about. */
export interface Outage {
  id: string;
  since: number;
  until: number | null;
}

/** Options of {@link MeshLinkWatch}. */
export interface MeshLinkWatchOptions {
  /** Signed client to joi (mesh->joi key), with the check's deadline as its timeout. */
  client: LinkRequester;
  ledger: WatchLedger;
  alerts: MeshAlerts;
  /** policy `nebula_health`. */
  intervalMs: number;
  failures: number;
  /** The household's time zone. */
  timeZone: string;
  /** The mesh's own facts for joi (certificate, signal-cli). */
  facts: () => Record<string, unknown>;
  log: Logger;
  now: () => number;
}

const OUTAGE = "link-outage";

/** The mesh's end of the link watch. */
export class MeshLinkWatch {
  readonly #o: MeshLinkWatchOptions;
  readonly #episode: Episode;
  readonly #started: number;
  #lastJoiCheck: number | null = null;
  #last: PingOutcome | null = null;
  #clock: ClockSample | null = null;
  #running: Promise<void> | null = null;
  #timer: ReturnType<typeof setInterval> | undefined;

  /** Loads the saved episode and outage. */
  constructor(o: MeshLinkWatchOptions) {
    this.#o = o;
    this.#episode = new Episode(o.ledger, "link", { count: o.failures });
    this.#started = o.now();
  }

  /** Checks every interval (the first after one interval: joi may still be starting). */
  start(): void {
    this.#timer ??= setInterval(() => void this.check(), this.#o.intervalMs);
  }

  /** Stops the checks. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }

  /** One check (single flight). */
  check(): Promise<void> {
    this.#running ??= this.#check().finally(() => (this.#running = null));
    return this.#running;
  }

  async #check(): Promise<void> {
    const o = this.#o;
    const r = await linkPing(o.client, {}, o.now);
    this.#last = r;
    if (r.clock && r.ok) this.#clock = r.clock;
    const quietFor = r.at - (this.#lastJoiCheck ?? this.#started);
    const joiSilent = quietFor > 1.5 * o.intervalMs;
    const problem = !r.ok
      ? `joi does not answer (${r.error})`
      : joiSilent
      ? "joi answers, but its own checks no longer reach the mesh"
      : null;
    const t = this.#episode.observe(problem !== null, r.at, problem);
    if (t?.kind === "started") {
      o.ledger.save(OUTAGE, { id: t.id, since: t.since, until: null } satisfies Outage);
      o.log.error("joi_unreachable_alert", {
        since: new Date(t.since).toISOString(),
        checks: t.count,
        problem,
      });
      o.alerts.raise({
        watch: "link",
        episode: t.id,
        phase: "alert",
        to: "both",
        text: `joi is unreachable since ${timeText(t.since, r.at, o.timeZone)}: ${problem}. ` +
          `Alarms from the house and joi's replies cannot reach you until it is back; they ` +
          `stay queued. Check the joi VM (systemctl status joi nebula).`,
      });
    } else if (t?.kind === "ended") {
      const out = o.ledger.load<Outage | null>(OUTAGE);
      if (out && out.id === t.id) o.ledger.save(OUTAGE, { ...out, until: t.until });
      o.log.info("joi_reachable_again", { since: new Date(t.since).toISOString() });
    } else if (problem) {
      o.log.warn("joi_check_failed", { problem });
    }
    void o.alerts.pump();
  }

  /**
   * joi's check arrived (it proves joi reaches the mesh): records it,
   * applies joi's acknowledgement, and returns the answer's data.
   */
  answer(body: { ack_outage?: unknown }): Record<string, unknown> {
    const o = this.#o;
    const now = o.now();
    this.#lastJoiCheck = now;
    let outage = o.ledger.load<Outage | null>(OUTAGE) ?? null;
    if (outage && typeof body.ack_outage === "string" && body.ack_outage === outage.id) {
      o.ledger.save(OUTAGE, null);
      outage = null;
    }
    // the joi that reaches us again may end the episode: check at once rather
    // than at the next tick, so its summary comes one check sooner
    if (this.#episode.open) void this.check();
    return {
      time: now,
      // only an outage that is over: joi summarises it once
      joi_outage: outage && outage.until !== null ? outage : null,
      // the mesh's clock minus joi's, as the mesh measured it (joi's sign convention)
      mesh_clock: this.#clock
        ? { offset_ms: -this.#clock.offsetMs, rtt_ms: this.#clock.rttMs, at: this.#clock.at }
        : null,
      ...o.facts(),
    };
  }

  /** For the mesh's `/health`. */
  status(): Record<string, unknown> {
    const s = this.#episode.state;
    const last = this.#last;
    const iso = (t: number | null) => (t === null ? null : new Date(t).toISOString());
    return {
      joi_answers: last === null ? null : last.ok,
      last_check_from_joi: iso(this.#lastJoiCheck),
      failures: s.bad ? s.count : 0,
      down_since: s.bad ? iso(s.since) : null,
      alerted: s.told && s.bad,
      problem: s.bad ? s.detail : null,
      // joi's clock minus the mesh's
      joi_clock: this.#clock
        ? { offset_ms: this.#clock.offsetMs, rtt_ms: this.#clock.rttMs, at: iso(this.#clock.at) }
        : null,
      alerts_pending: this.#o.alerts.pending(),
    };
  }
}
