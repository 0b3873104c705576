/**
 * joi's end of the link watch. Every `nebula_health.check_interval_seconds`
 * joi checks the mesh (the Nebula lighthouse, and joi's only way out) with a
 * signed round trip. joi cannot tell anyone while the link is down (the mesh
 * holds Signal, and it tells the household after `alert_after_failures`
 * checks of its own); joi keeps queueing, and when the link is back it sends
 * the one summary: down from/to, how many alerts were delayed and are now
 * delivered, how many messages expired. The summary goes at a check after
 * the return, once alarms held elsewhere meanwhile (the relay's, which reach
 * joi over the same overlay) have arrived and are counted: the relay's next
 * heartbeat says its critical lane is empty (or ten checks have passed).
 *
 * The outage summarised is the union of what joi saw (its own failed checks)
 * and what the mesh told (the mesh's answer carries the outage it reported,
 * until joi acknowledges it in a later check), so a joi that was stopped
 * (and saw nothing) still sends it. The mesh's answer also carries its own
 * facts (certificate, signal-cli age, its clock), which it hands to
 * {@link LinkWatchOptions.onMeshFacts}.
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
import { durationText, timeText } from "../../common/watch/time_text.ts";
import type { OutboxStore } from "../outbox/store.ts";
import type { WatchAlerts } from "./alerts.ts";

/** An outage the mesh told the household about. */
export interface MeshOutage {
  id: string;
  since: number;
  until: number | null;
}

/** What the mesh says about itself in its answer. */
export interface MeshFacts {
  /** The outage of joi the mesh reported and joi has not acknowledged. */
  joiOutage: MeshOutage | null;
  /** The mesh's Nebula certificate: valid until (ms), or why it could not be read. */
  cert: { notAfter: number; name: string } | { error: string } | null;
  /** signal-cli's version and age. */
  signalCli: { version: string; ageDays: number; warnDays: number } | null;
  /** The mesh's clock minus joi's, as the mesh measured it. */
  meshClock: ClockSample | null;
}

/** Options of {@link LinkWatch}. */
export interface LinkWatchOptions {
  /** Signed client to the mesh (joi->mesh key), with the check's deadline as its timeout. */
  client: LinkRequester;
  ledger: WatchLedger;
  alerts: WatchAlerts;
  /** The outbox's store (what was delayed, delivered, expired). */
  outbox: OutboxStore;
  /**
   * Whether what other nodes held for joi since `t` has arrived (the relay
   * reported an empty critical lane in a heartbeat after `t`); the summary
   * waits for it, at most a few checks. Default: nothing to wait for.
   */
  settled?: ((t: number) => boolean) | undefined;
  /** Sends what is due now; resolves when the queue has been tried. */
  flush: () => Promise<unknown>;
  /** policy `nebula_health.alert_after_failures`. */
  failures: () => number;
  /**
   * policy `nebula_health.check_interval_seconds`, in ms: an alert that
   * waited longer than one check before it went out was held by the outage
   * (default 30 s).
   */
  checkIntervalMs?: (() => number) | undefined;
  /** The household's time zone. */
  timeZone: () => string;
  /** Each answer's clock sample. */
  onClock?: ((s: ClockSample) => void) | undefined;
  /** Each answer's mesh facts. */
  onMeshFacts?: ((f: MeshFacts) => void) | undefined;
  log: Logger;
  now: () => number;
}

/** The link watch's part of joi's `/health`. */
export interface LinkStatus {
  reachable: boolean | null;
  last_ok: string | null;
  failures: number;
  down_since: string | null;
  last_error: string | null;
  clock: { offset_ms: number; rtt_ms: number; measured_at: string } | null;
}

const ACK = "link-ack";
const PENDING = "link-summary";
const SUMMARISED = "link-summarised";

/** A stretch of time (ms). */
interface Window {
  since: number;
  until: number;
}

/** An outage to summarise at a later successful check. */
interface Pending extends Window {
  /** The summary's episode id. */
  id: string;
  /** The mesh's id of it, acknowledged once summarised; null when only joi saw it. */
  mesh: string | null;
  /** Checks since the return (the summary waits at most {@link MAX_WAIT_CHECKS}). */
  checks: number;
}

/** How far apart two outages may be and still be one (ms): the two ends see it at different checks. */
const SLACK_MS = 60_000;

function overlaps(a: Window, b: Window): boolean {
  return a.since <= b.until + SLACK_MS && b.since <= a.until + SLACK_MS;
}

function merge(p: Pending, w: Window, mesh: string | null): Pending {
  return {
    ...p,
    since: Math.min(p.since, w.since),
    until: Math.max(p.until, w.until),
    mesh: mesh ?? p.mesh,
  };
}

/** Checks the summary waits at most for the relay's held alarms. */
const MAX_WAIT_CHECKS = 10;

/** joi's end of the link watch. */
export class LinkWatch {
  readonly #o: LinkWatchOptions;
  readonly #episode: Episode;
  #running: Promise<void> | null = null;
  #last: PingOutcome | null = null;
  #lastOk: number | null = null;
  #clock: ClockSample | null = null;

  /** Loads the saved episode. */
  constructor(o: LinkWatchOptions) {
    this.#o = o;
    this.#episode = new Episode(o.ledger, "link", { count: o.failures() });
  }

  /** One check (single flight). */
  check(): Promise<void> {
    this.#running ??= this.#check().finally(() => (this.#running = null));
    return this.#running;
  }

  async #check(): Promise<void> {
    const o = this.#o;
    const ack = o.ledger.load<string>(ACK);
    const r = await linkPing(o.client, ack ? { ack_outage: ack } : {}, o.now);
    this.#last = r;
    if (!r.ok) {
      const t = this.#episode.observe(true, r.at, r.error);
      if (t?.kind === "started") {
        o.log.error("mesh_unreachable", {
          since: new Date(t.since).toISOString(),
          checks: t.count,
          error: r.error,
          effect: "messages stay queued; the mesh tells the household",
        });
      } else o.log.warn("link_check_failed", { error: r.error, status: r.status });
      return;
    }
    this.#lastOk = r.at;
    if (r.clock) {
      this.#clock = r.clock;
      o.onClock?.(r.clock);
    }
    const facts = meshFacts(r.data);
    o.onMeshFacts?.(facts);
    if (ack && facts.joiOutage?.id !== ack) o.ledger.save(ACK, null);
    const mine = this.#episode.observe(false, r.at);
    const own = mine?.kind === "ended" ? mine : null;
    const reported = facts.joiOutage && facts.joiOutage.id !== ack ? facts.joiOutage : null;
    const old = o.ledger.load<Pending | null>(PENDING) ?? null;
    let pending = old;
    // what joi saw and what the mesh told are one outage when they overlap: one summary
    if (reported && pending?.mesh !== reported.id) {
      const window = { since: reported.since, until: reported.until ?? r.at };
      const told = o.ledger.load<Window | null>(SUMMARISED) ?? null;
      if (pending) pending = merge(pending, window, reported.id);
      else if (told && overlaps(told, window)) o.ledger.save(ACK, reported.id); // already told
      else pending = { id: reported.id, ...window, mesh: reported.id, checks: 0 };
    }
    if (own) {
      const window = { since: own.since, until: own.until };
      pending = pending
        ? merge(pending, window, pending.mesh)
        : { id: own.id, ...window, mesh: null, checks: 0 };
    }
    if (!pending) return;
    if (old === null) {
      // the link just came back: retry what waited for the mesh now (not at its backoff's
      // end), and summarise at a later check, once what was held elsewhere (the relay's
      // alarms, over the same overlay) has arrived
      o.ledger.save(PENDING, pending);
      await o.flush().catch(() => {});
      return;
    }
    const checks = pending.checks + 1;
    if (checks < MAX_WAIT_CHECKS && !(o.settled?.(pending.until) ?? true)) {
      o.ledger.save(PENDING, { ...pending, checks });
      return;
    }
    o.ledger.save(PENDING, null);
    o.ledger.save(SUMMARISED, { since: pending.since, until: pending.until } satisfies Window);
    await this.#summarise(pending.id, pending.since, pending.until);
    if (pending.mesh) o.ledger.save(ACK, pending.mesh);
  }

  async #summarise(id: string, since: number, until: number): Promise<void> {
    const o = this.#o;
    try {
      await o.flush();
    } catch (e) {
      o.log.warn("link_summary_flush_failed", { error: (e as Error).message });
    }
    const c = o.outbox.windowCounts(since, until, o.checkIntervalMs?.() ?? 30_000);
    const tz = o.timeZone();
    const now = o.now();
    const parts = [
      `joi is back in touch. It was cut off from ${timeText(since, now, tz)} to ` +
      `${timeText(until, now, tz)} (${durationText(until - since)}).`,
      c.criticalDelivered > 0
        ? `${plural(c.criticalDelivered, "alert was", "alerts were")} delayed and ` +
          `${c.criticalDelivered === 1 ? "is" : "are"} now delivered.`
        : "No alert was delayed.",
    ];
    if (c.expired > 0) {
      parts.push(`${plural(c.expired, "message", "messages")} expired and will not be sent.`);
    }
    if (c.stillQueued > 0) {
      parts.push(`${plural(c.stillQueued, "message", "messages")} still queued.`);
    }
    o.log.info("link_restored", {
      since: new Date(since).toISOString(),
      until: new Date(until).toISOString(),
      delivered_late: c.criticalDelivered,
      expired: c.expired,
      queued: c.stillQueued,
    });
    o.alerts.send({
      watch: "link",
      episode: id,
      phase: "recovered",
      safety: true,
      to: "both",
      text: parts.join(" "),
    });
  }

  /** For `/health`. */
  status(): LinkStatus {
    const s = this.#episode.state;
    const last = this.#last;
    return {
      reachable: last === null ? null : last.ok,
      last_ok: this.#lastOk === null ? null : new Date(this.#lastOk).toISOString(),
      failures: s.bad ? s.count : 0,
      down_since: s.bad && s.since !== null ? new Date(s.since).toISOString() : null,
      last_error: last && !last.ok ? last.error : null,
      clock: this.#clock
        ? {
          offset_ms: this.#clock.offsetMs,
          rtt_ms: this.#clock.rttMs,
          measured_at: new Date(this.#clock.at).toISOString(),
        }
        : null,
    };
  }
}

function plural(n: number, one: string, many: string): string {
  return `${n} ${n === 1 ? one : many}`;
}

const num = (v: unknown): number | null => typeof v === "number" && Number.isFinite(v) ? v : null;
const obj = (v: unknown): Record<string, unknown> | null =>
  v !== null && typeof v === "object" && !Array.isArray(v) ? v as Record<string, unknown> : null;

/** Reads the mesh's answer defensively: a missing or odd field is null. */
export function meshFacts(data: Record<string, unknown>): MeshFacts {
  const outage = obj(data.joi_outage);
  const cert = obj(data.cert);
  const sc = obj(data.signal_cli);
  const clock = obj(data.mesh_clock);
  const since = num(outage?.since);
  const notAfter = num(cert?.not_after);
  const age = num(sc?.age_days);
  const offset = num(clock?.offset_ms);
  return {
    joiOutage: outage && typeof outage.id === "string" && since !== null
      ? { id: outage.id.slice(0, 100), since, until: num(outage.until) }
      : null,
    cert: notAfter !== null
      ? { notAfter, name: String(cert?.name ?? "mesh").slice(0, 64) }
      : typeof cert?.error === "string"
      ? { error: cert.error.slice(0, 200) }
      : null,
    signalCli: sc && typeof sc.version === "string" && age !== null
      ? { version: sc.version.slice(0, 40), ageDays: age, warnDays: num(sc.warn_days) ?? 75 }
      : null,
    meshClock: offset !== null
      ? { offsetMs: offset, rttMs: num(clock?.rtt_ms) ?? 0, at: num(clock?.at) ?? 0 }
      : null,
  };
}
