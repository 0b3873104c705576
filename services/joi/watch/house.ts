/**
 * The house watch: the openHAB relay's heartbeat (every
 * `watch.heartbeat_seconds`, see `common/watch/heartbeat.ts`) must keep
 * arriving. Two conditions, each told to the critical group once per episode
 * and again when it ends (both about safety: alarms no longer get through):
 *
 * - **the house is silent**: no heartbeat for `watch.house_silent_seconds`.
 *   While silent, joi cannot tell a stopped relay from a cut link (both look
 *   the same from here); the message says what was last heard and where to
 *   look. When heartbeats resume, the relay's report tells them apart: it
 *   restarted after the silence began (it had stopped), or it ran throughout
 *   and its posts failed since some time (the link was cut);
 * - **openHAB is dead**: heartbeats arrive, but the relay reports openHAB's
 *   event stream unreachable for `house_silent_seconds`.
 *
 * The watch is armed in production from the start (a relay that never
 * speaks is a fault) and in the local run only once a relay has been heard.
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";
import { Episode } from "../../common/watch/episode.ts";
import type { Heartbeat } from "../../common/watch/heartbeat.ts";
import type { WatchLedger } from "../../common/watch/ledger.ts";
import { durationText, timeText } from "../../common/watch/time_text.ts";
import type { WatchAlerts } from "./alerts.ts";

/** Options of {@link HouseWatch}. */
export interface HouseWatchOptions {
  ledger: WatchLedger;
  alerts: WatchAlerts;
  /** `watch.house_silent_seconds`, ms. */
  silentMs: () => number;
  /** Armed before any heartbeat was heard (production). */
  expectRelay: boolean;
  /** The household's time zone. */
  timeZone: () => string;
  log: Logger;
  now: () => number;
}

/** The last heartbeat, as saved. */
interface Last {
  /** joi's receive time. */
  at: number;
  hb: Heartbeat;
}

const LAST = "house-last";

/** The house watch. */
export class HouseWatch {
  readonly #o: HouseWatchOptions;
  readonly #silent: Episode;
  readonly #openhab: Episode;
  readonly #armedAt: number;
  #last: Last | undefined;

  /** Loads what was last heard. */
  constructor(o: HouseWatchOptions) {
    this.#o = o;
    this.#silent = new Episode(o.ledger, "house");
    this.#openhab = new Episode(o.ledger, "openhab");
    this.#last = o.ledger.load<Last>(LAST);
    this.#armedAt = o.now();
  }

  /** The last heartbeat (for the clock and certificate watches, and /health). */
  get last(): Last | undefined {
    return this.#last;
  }

  /** A heartbeat arrived at `at` (joi's clock). */
  heartbeat(hb: Heartbeat, at: number): void {
    const before = this.#last;
    this.#last = { at, hb };
    this.#o.ledger.save(LAST, this.#last);
    const t = this.#silent.observe(false, at);
    if (t?.kind === "ended") this.#back(t.id, t.since, at, hb, before);
    this.#observeOpenhab(at);
  }

  /** Evaluates silence and openHAB's state at `now` (called every few seconds). */
  tick(now: number): void {
    const last = this.#last;
    if (!last && !this.#o.expectRelay) return;
    // joi itself may have been down: silence counts from its own start at the earliest
    const since = Math.max(last?.at ?? 0, this.#armedAt);
    const silent = now - since > this.#o.silentMs();
    if (!silent) {
      this.#observeOpenhab(now);
      return;
    }
    const t = this.#silent.observe(true, now, "no heartbeat", since);
    if (t?.kind === "started") this.#silence(t.id, t.since, now);
  }

  #observeOpenhab(now: number): void {
    const last = this.#last;
    if (!last) return;
    const oh = last.hb.openhab;
    // openHAB's state is the relay's, as of its last heartbeat; its `since` is the relay's clock
    const downSince = Math.min(now, last.at - (last.hb.sent_at - oh.since));
    const bad = !oh.reachable && now - downSince > this.#o.silentMs();
    const t = this.#openhab.observe(bad, now, oh.error, downSince);
    const tz = this.#o.timeZone();
    if (t?.kind === "started") {
      this.#o.alerts.send({
        watch: "openhab",
        episode: t.id,
        phase: "alert",
        safety: true,
        to: "critical",
        text: `openHAB is not answering the relay since ${timeText(t.since, now, tz)}` +
          `${oh.error ? ` (${oh.error.slice(0, 120)})` : ""}. The relay and its link to joi ` +
          `work, but no event comes from the house, alarms included. Check openHAB on its VM ` +
          `(systemctl status openhab).`,
      });
    } else if (t?.kind === "ended") {
      this.#o.alerts.send({
        watch: "openhab",
        episode: t.id,
        phase: "recovered",
        safety: true,
        to: "critical",
        text: `openHAB answers the relay again (it was down from ${timeText(t.since, now, tz)} ` +
          `to ${timeText(t.until, now, tz)}, ${durationText(t.until - t.since)}).`,
      });
    }
  }

  #silence(id: string, since: number, now: number): void {
    const last = this.#last;
    const tz = this.#o.timeZone();
    const heard = last && last.at >= since
      ? `no heartbeat from the openHAB relay since ${timeText(since, now, tz)}`
      : `no heartbeat from the openHAB relay since joi started at ${timeText(since, now, tz)}` +
        (last ? ` (last heard ${timeText(last.at, now, tz)})` : "");
    const clue = last && !last.hb.openhab.reachable
      ? " Its last heartbeat said openHAB was not answering."
      : last && last.hb.relay.failing_since !== null
      ? " Its last heartbeat said its posts to joi were failing."
      : "";
    this.#o.log.error("house_silent", { since: new Date(since).toISOString() });
    this.#o.alerts.send({
      watch: "house",
      episode: id,
      phase: "alert",
      safety: true,
      to: "critical",
      text: `The house is silent: ${heard} (${durationText(now - since)}). Alarms from the house ` +
        `may not reach joi.${clue} Either the relay stopped or the openHAB VM's link to joi is ` +
        `cut: on the openHAB VM, check systemctl status joi-openhab-relay nebula.`,
    });
  }

  #back(id: string, since: number, at: number, hb: Heartbeat, before: Last | undefined): void {
    const tz = this.#o.timeZone();
    // the relay's times in joi's clock, through this heartbeat's offset
    const skew = at - hb.sent_at;
    const started = hb.relay.started_at + skew;
    const failing = hb.relay.failing_since === null ? null : hb.relay.failing_since + skew;
    const why = started > since
      ? `The relay restarted at ${timeText(started, at, tz)}: it had stopped.`
      : failing !== null
      ? `The relay ran throughout; its posts to joi failed from ${timeText(failing, at, tz)}: ` +
        `the link from the openHAB VM was cut.`
      : before === undefined
      ? "This is the first heartbeat joi has heard."
      : "The relay ran throughout.";
    this.#o.log.info("house_back", { since: new Date(since).toISOString(), cause: why });
    this.#o.alerts.send({
      watch: "house",
      episode: id,
      phase: "recovered",
      safety: true,
      to: "critical",
      text: `The house is back: the openHAB relay's heartbeat arrived again at ` +
        `${timeText(at, at, tz)} (silent from ${timeText(since, at, tz)}, ` +
        `${durationText(at - since)}). ${why}`,
    });
  }

  /** For `/health`. */
  status(): Record<string, unknown> {
    const last = this.#last;
    const iso = (t: number | null | undefined) =>
      t === null || t === undefined ? null : new Date(t).toISOString();
    const s = this.#silent.state;
    return {
      last_heartbeat: iso(last?.at),
      silent: s.told && s.bad,
      silent_since: s.bad ? iso(s.since) : null,
      openhab_reachable: last ? last.hb.openhab.reachable : null,
      openhab_error: last?.hb.openhab.error ?? null,
      relay_started_at: iso(last?.hb.relay.started_at),
      relay_failing_since: iso(last?.hb.relay.failing_since),
    };
  }
}
