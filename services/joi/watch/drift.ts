/**
 * The drift watch: reads the report the daily `joi-validate-config` leaves
 * for joi (`common/watch/drift_report.ts`) and tells the owner which checks
 * failed, once per failing set (a different set of failures is told again),
 * and when validation passes again. A report that cannot be read is shown on
 * `/health`, not told (doctor reports it).
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";
import { type DriftReport, readDriftReport } from "../../common/watch/drift_report.ts";
import { Episode } from "../../common/watch/episode.ts";
import type { WatchLedger } from "../../common/watch/ledger.ts";
import { timeText } from "../../common/watch/time_text.ts";
import type { WatchAlerts } from "./alerts.ts";

/** Options of {@link DriftWatch}. */
export interface DriftWatchOptions {
  /** The report's path (absent: the watch is off, e.g. the local run). */
  path: string | undefined;
  ledger: WatchLedger;
  alerts: WatchAlerts;
  timeZone: () => string;
  log: Logger;
  now: () => number;
}

/** The drift watch. */
export class DriftWatch {
  readonly #o: DriftWatchOptions;
  readonly #episode: Episode;
  #report: DriftReport | undefined;
  #error: string | null = null;

  /** Loads the saved episode. */
  constructor(o: DriftWatchOptions) {
    this.#o = o;
    this.#episode = new Episode(o.ledger, "drift");
  }

  /** Reads the report and acts on a new one. */
  async check(): Promise<void> {
    const o = this.#o;
    if (o.path === undefined) return;
    let r: DriftReport | undefined;
    try {
      r = await readDriftReport(o.path);
      this.#error = null;
    } catch (e) {
      if (this.#error === null) o.log.warn("drift_report_unreadable", { error: String(e) });
      this.#error = (e as Error).message;
      return;
    }
    if (r === undefined || r.at === this.#report?.at) return;
    this.#report = r;
    const failed = r.failed.filter((f) => f.severity !== "WARNING");
    const codes = [...new Set(failed.map((f) => f.code))].sort();
    const now = o.now();
    const tz = o.timeZone();
    const t = this.#episode.observe(!r.ok, r.at, codes.join(","));
    if (!r.ok) {
      const id = t?.kind === "started" ? t.id : this.#episode.open?.id;
      if (id === undefined) return;
      o.alerts.send({
        watch: "drift",
        episode: id,
        // a new set of failures in the same episode is told too
        phase: `failed:${codes.join(",")}`.slice(0, 200),
        safety: false,
        to: "owner",
        text: `The daily configuration check (joi-validate-config, ${timeText(r.at, now, tz)}) ` +
          `failed: ${r.summary.critical} critical, ${r.summary.errors} error` +
          `${r.summary.errors === 1 ? "" : "s"}. Failed checks: ${codes.slice(0, 8).join(", ")}` +
          `${codes.length > 8 ? ` and ${codes.length - 8} more` : ""}. Run joi-validate-config ` +
          `on the joi VM to see each problem and its fix.`,
      });
    } else if (t?.kind === "ended") {
      o.alerts.send({
        watch: "drift",
        episode: t.id,
        phase: "recovered",
        safety: false,
        to: "owner",
        text: `The daily configuration check passes again (${timeText(r.at, now, tz)}).`,
      });
    }
  }

  /** For `/health`. */
  status(): Record<string, unknown> {
    const r = this.#report;
    return {
      report: this.#o.path ?? null,
      last_run: r ? new Date(r.at).toISOString() : null,
      ok: r ? r.ok : null,
      failed: r ? r.failed.filter((f) => f.severity !== "WARNING").map((f) => f.code) : [],
      error: this.#error,
    };
  }
}
