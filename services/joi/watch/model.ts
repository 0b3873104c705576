/**
 * The model watch: after each GPU health check (every
 * `gpu_health.check_interval_seconds`, whether anyone writes or not), joi's
 * language model is bad when Ollama does not answer, or when inference runs
 * on the CPU (a GPU request failed and joi fell back, or Ollama holds a model
 * with nothing in VRAM after it had used the GPU; CPU only counts with
 * `gpu_health.alert_on_fallback`). Bad for `watch.model_alert_minutes` is
 * told to the owner once per episode, and the recovery too. Alarms never
 * depend on the model, and the messages say so.
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";
import { Episode } from "../../common/watch/episode.ts";
import type { WatchLedger } from "../../common/watch/ledger.ts";
import { durationText, timeText } from "../../common/watch/time_text.ts";
import type { GpuHealth } from "../llm/health.ts";
import type { WatchAlerts } from "./alerts.ts";

/** Options of {@link ModelWatch}. */
export interface ModelWatchOptions {
  ledger: WatchLedger;
  alerts: WatchAlerts;
  /** `watch.model_alert_minutes`, ms. */
  afterMs: number;
  /** `gpu_health.alert_on_fallback`. */
  cpuCounts: () => boolean;
  timeZone: () => string;
  log: Logger;
  now: () => number;
}

const GPU_SEEN = "model-gpu-seen";

/** The model watch. */
export class ModelWatch {
  readonly #o: ModelWatchOptions;
  readonly #episode: Episode;
  #last: GpuHealth | undefined;

  /** Loads the saved episode. */
  constructor(o: ModelWatchOptions) {
    this.#o = o;
    this.#episode = new Episode(o.ledger, "model", { durationMs: o.afterMs });
  }

  /** One GPU health check's snapshot. */
  observe(h: GpuHealth): void {
    const o = this.#o;
    const now = o.now();
    this.#last = h;
    if ((h.vram_used_mb ?? 0) > 0 && o.ledger.load<boolean>(GPU_SEEN) !== true) {
      o.ledger.save(GPU_SEEN, true);
    }
    const gpuLost = h.degraded || (h.cpu_loaded && o.ledger.load<boolean>(GPU_SEEN) === true);
    const cause = !h.ollama_reachable ? "unreachable" : gpuLost && o.cpuCounts() ? "cpu" : null;
    const t = this.#episode.observe(cause !== null, now, cause === "unreachable" ? h.error : cause);
    const tz = o.timeZone();
    if (t?.kind === "started") {
      const since = timeText(t.since, now, tz);
      const text = cause === "unreachable"
        ? `My language model (Ollama) has not answered since ${since} ` +
          `(${durationText(now - t.since)}): I cannot reply to messages. Alarms and critical ` +
          `alerts still work. On the joi VM, check systemctl status ollama.`
        : `I have been running on the CPU since ${since} (${durationText(now - t.since)}): ` +
          `replies are slow. Check the eGPU connection. Alarms are not affected.`;
      o.alerts.send({
        watch: "model",
        episode: t.id,
        phase: "alert",
        safety: false,
        to: "owner",
        text,
      });
    } else if (t?.kind === "ended") {
      o.alerts.send({
        watch: "model",
        episode: t.id,
        phase: "recovered",
        safety: false,
        to: "owner",
        text: `My language model works again: it was down ` +
          `or slow from ${timeText(t.since, now, tz)} to ${timeText(t.until, now, tz)} ` +
          `(${durationText(t.until - t.since)}).`,
      });
    }
  }

  /** For `/health`. */
  status(): Record<string, unknown> {
    const s = this.#episode.state;
    return {
      bad_since: s.bad && s.since !== null ? new Date(s.since).toISOString() : null,
      cause: s.bad ? s.detail : null,
      told: s.told && s.bad,
      ollama_reachable: this.#last?.ollama_reachable ?? null,
    };
  }
}
