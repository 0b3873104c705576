/**
 * Certificates and versions that stop working on a date. Nebula node
 * certificates last 90 days, and when one expires its VM drops off the
 * overlay; Signal refuses a signal-cli older than about 90 days. joi learns
 * each node's certificate from where it already talks to it (its own
 * credential, the mesh's link answers, the relay's heartbeats) and tells the
 * owner:
 *
 * - at each of `watch.cert_warn_days` before a certificate's end (once each;
 *   a certificate first seen late gets only the most urgent warning), and
 *   when it has expired; the last day and expiry are about safety (no quiet
 *   hours); a renewed certificate after a warning is confirmed once;
 * - signal-cli older than mesh.yaml's `version_warn_days`: then every
 *   `watch.signal_cli_remind_days` while it stands.
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";
import type { WatchLedger } from "../../common/watch/ledger.ts";
import { timeText } from "../../common/watch/time_text.ts";
import type { WatchAlerts } from "./alerts.ts";

/** The three nodes. */
export type Node = "joi" | "mesh" | "openhab";

const VM: Record<Node, string> = { joi: "joi VM", mesh: "mesh VM", openhab: "openHAB VM" };
const EFFECT: Record<Node, string> = {
  joi: "joi drops off the overlay: no message or alarm gets in or out",
  mesh: "the mesh drops off the overlay: joi cannot reach Signal",
  openhab: "the house's alarms stop reaching joi",
};
const DAY = 86_400_000;

/** Options of {@link ExpiryWatch}. */
export interface ExpiryWatchOptions {
  ledger: WatchLedger;
  alerts: WatchAlerts;
  /** `watch.cert_warn_days`, decreasing. */
  warnDays: () => readonly number[];
  /** `watch.signal_cli_remind_days`. */
  remindDays: () => number;
  timeZone: () => string;
  log: Logger;
  now: () => number;
}

/** What is known of one node's certificate. */
interface CertSeen {
  notAfter: number;
  at: number;
}

/** The expiry watch. */
export class ExpiryWatch {
  readonly #o: ExpiryWatchOptions;
  readonly #certs = new Map<Node, CertSeen | { error: string }>();
  #signal: { version: string; ageDays: number; warnDays: number } | undefined;

  /** Creates the watch. */
  constructor(o: ExpiryWatchOptions) {
    this.#o = o;
  }

  /** `node`'s certificate ends at `notAfter` (ms); call whenever it is seen. */
  cert(node: Node, notAfter: number): void {
    const now = this.#o.now();
    this.#certs.set(node, { notAfter, at: now });
    const days = Math.floor((notAfter - now) / DAY);
    const warn = this.#o.warnDays();
    const key = `cert-${node}-warned`;
    const warned = this.#o.ledger.load<number | null>(key) ?? null;
    const tz = this.#o.timeZone();
    if (warned !== null && warned !== notAfter && days > (warn[0] ?? 30)) {
      this.#o.ledger.save(key, null);
      this.#o.alerts.send({
        watch: `cert-${node}`,
        episode: String(warned),
        phase: "renewed",
        safety: false,
        to: "owner",
        text: `The Nebula certificate of the ${VM[node]} was renewed: valid until ` +
          `${timeText(notAfter, now, tz)}.`,
      });
      return;
    }
    const expired = notAfter <= now;
    const threshold = expired ? undefined : [...warn].reverse().find((d) => days < d);
    if (!expired && threshold === undefined) return;
    this.#o.ledger.save(key, notAfter);
    const phase = expired ? "expired" : `${threshold}d`;
    const when = timeText(notAfter, now, tz);
    const left = days < 1 ? "in less than a day" : `in ${days} day${days === 1 ? "" : "s"}`;
    this.#o.alerts.send({
      watch: `cert-${node}`,
      episode: String(notAfter),
      phase,
      safety: expired || threshold === warn.at(-1),
      to: "owner",
      text: expired
        ? `The Nebula certificate of the ${VM[node]} expired at ${when}: ${EFFECT[node]}. ` +
          `Renew it now: on the build host, deno task nebula ... --rotate, then install the new ` +
          `bundle on that VM (README, Day-2 operations).`
        : `The Nebula certificate of the ${VM[node]} expires ${left} (${when}). Then ` +
          `${EFFECT[node]}. Renew it before: on the build host, deno task nebula ... --rotate, ` +
          `then install the new bundle on that VM (README, Day-2 operations).`,
    });
  }

  /** `node`'s certificate could not be read (shown on /health, not told: validate reports it). */
  certError(node: Node, error: string): void {
    this.#certs.set(node, { error });
  }

  /** signal-cli's version and age, as the mesh reports them. */
  signalCli(s: { version: string; ageDays: number; warnDays: number }): void {
    this.#signal = s;
    if (s.ageDays <= s.warnDays) return;
    const week = Math.floor((s.ageDays - s.warnDays - 1) / this.#o.remindDays());
    this.#o.alerts.send({
      watch: "signal-cli",
      episode: s.version,
      phase: `reminder-${week}`,
      safety: false,
      to: "owner",
      text: `signal-cli ${s.version} on the mesh is ${s.ageDays} days old. Signal stops ` +
        `accepting clients older than about 90 days, and then no message reaches you. Update ` +
        `signal-cli on the mesh VM (README, Day-2 operations).`,
    });
  }

  /** For `/health`: days left per node, signal-cli's age. */
  status(): Record<string, unknown> {
    const now = this.#o.now();
    const certs: Record<string, unknown> = {};
    for (const [node, c] of this.#certs) {
      certs[node] = "error" in c ? { error: c.error } : {
        not_after: new Date(c.notAfter).toISOString(),
        days_left: Math.floor((c.notAfter - now) / DAY),
      };
    }
    return {
      certs,
      signal_cli: this.#signal
        ? { version: this.#signal.version, age_days: this.#signal.ageDays }
        : null,
    };
  }
}
