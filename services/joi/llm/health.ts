/**
 * The GPU health monitor: every `check_interval_seconds` it reads Ollama's
 * process list (`GET /api/ps`, VRAM in use per loaded model) and, while joi is
 * degraded, probes GPU inference so the episode ends when the eGPU is back.
 * Its snapshot feeds joi's `/health`.
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";
import type { LlmClient } from "./client.ts";

/** What /health shows about the GPU. */
export interface GpuHealth {
  /** GPU inference believed to work. */
  gpu_available: boolean;
  /** Duration of the last successful inference, ms. */
  inference_time_ms: number | null;
  /** VRAM in use by loaded models, MiB (null when Ollama did not answer). */
  vram_used_mb: number | null;
  /** Whether joi runs on CPU. */
  degraded: boolean;
  /** Whether Ollama answered the last check. */
  ollama_reachable: boolean;
  /** A model is loaded with no layer in VRAM: Ollama runs it on the CPU. */
  cpu_loaded: boolean;
  /** Why Ollama could not be asked (null when it answered). */
  error: string | null;
  /** Time of the last check (ISO), null before the first. */
  checked_at: string | null;
}

/** Options of {@link GpuHealthMonitor}. */
export interface GpuHealthOptions {
  /** The client whose state is reported (and probed while degraded). */
  client: LlmClient;
  /** policy.yaml `gpu_health.check_interval_seconds`. */
  intervalSeconds: number;
  /** fetch, for tests. */
  fetch?: typeof fetch | undefined;
  /** Clock. */
  now?: (() => number) | undefined;
  /** Logger. */
  log?: Logger | undefined;
}

/** Periodic GPU health checks. */
export class GpuHealthMonitor {
  #o: GpuHealthOptions;
  #fetch: typeof fetch;
  #now: () => number;
  #timer: ReturnType<typeof setInterval> | undefined;
  #snap: GpuHealth = {
    gpu_available: true,
    inference_time_ms: null,
    vram_used_mb: null,
    degraded: false,
    ollama_reachable: false,
    cpu_loaded: false,
    error: null,
    checked_at: null,
  };
  #listeners: ((h: GpuHealth) => void)[] = [];

  /** Creates the monitor (not started). */
  constructor(o: GpuHealthOptions) {
    this.#o = o;
    this.#fetch = o.fetch ?? fetch;
    this.#now = o.now ?? Date.now;
  }

  /** Ollama's native API origin (the endpoint without `/v1`). */
  get origin(): string {
    return new URL(this.#o.client.endpoint).origin;
  }

  /** Called after every check with its snapshot (the model watch). */
  onCheck(listener: (h: GpuHealth) => void): void {
    this.#listeners.push(listener);
  }

  /** Runs one check now. */
  async check(): Promise<GpuHealth> {
    let vram: number | null = null;
    let reachable = false;
    let cpuLoaded = false;
    let error: string | null = null;
    try {
      const res = await this.#fetch(`${this.origin}/api/ps`, { signal: AbortSignal.timeout(5000) });
      if (res.ok) {
        const json = await res.json() as { models?: { size?: unknown; size_vram?: unknown }[] };
        let bytes = 0;
        for (const m of json.models ?? []) {
          if (typeof m.size_vram === "number") bytes += m.size_vram;
          if (m.size_vram === 0 && typeof m.size === "number" && m.size > 0) cpuLoaded = true;
        }
        vram = Math.round(bytes / (1024 * 1024));
        reachable = true;
      } else {
        await res.body?.cancel();
        error = `Ollama answered HTTP ${res.status} to GET /api/ps`;
      }
    } catch (e) {
      error = `${this.origin}: ${ollamaError(e)}`;
    }
    if (error !== null && this.#snap.error === null) {
      // once per episode: it is on /health (and told by the model watch) while it lasts
      this.#o.log?.warn("ollama_unreachable", { url: this.origin, error });
    } else if (error === null && this.#snap.error !== null) {
      this.#o.log?.info("ollama_reachable", { url: this.origin });
    }
    if (this.#o.client.degraded && reachable) await this.#o.client.probeGpu();
    const state = this.#o.client.state();
    this.#snap = {
      gpu_available: reachable && !state.degraded,
      inference_time_ms: state.last_inference_ms ?? null,
      vram_used_mb: vram,
      degraded: state.degraded,
      ollama_reachable: reachable,
      cpu_loaded: cpuLoaded,
      error,
      checked_at: new Date(this.#now()).toISOString(),
    };
    for (const listener of this.#listeners) listener(this.snapshot());
    return this.#snap;
  }

  /** The latest snapshot, with the client's current inference time. */
  snapshot(): GpuHealth {
    const state = this.#o.client.state();
    return {
      ...this.#snap,
      degraded: state.degraded,
      inference_time_ms: state.last_inference_ms ?? null,
    };
  }

  /** Starts periodic checks (first one immediately). */
  start(): void {
    if (this.#timer !== undefined) return;
    const tick = () => void this.check().catch(() => {});
    tick();
    this.#timer = setInterval(tick, this.#o.intervalSeconds * 1000);
  }

  /** Stops the checks. */
  stop(): void {
    if (this.#timer !== undefined) clearInterval(this.#timer);
    this.#timer = undefined;
  }
}

/** Why Ollama could not be asked, in a few words (no stack, no error class name). */
export function ollamaError(e: unknown): string {
  return fetchError(e);
}

/**
 * A failed fetch in a few words: Deno's `TypeError: fetch failed` carries the
 * reason in its `cause` (`... tcp connect error: Connection refused ...`).
 */
export function fetchError(e: unknown): string {
  const cause = e instanceof Error && e.cause instanceof Error ? e.cause.message : "";
  const m = `${e instanceof Error ? e.message : String(e)} ${cause}`;
  if (e instanceof DOMException && e.name === "TimeoutError") return "no answer in time";
  if (/connection refused/i.test(m)) return "connection refused: nothing listens there";
  if (/timed out|deadline/i.test(m)) return "no answer in time";
  if (e instanceof Deno.errors.NotCapable || /requires net access/i.test(m)) {
    return "this process's sandbox may not dial it";
  }
  const detail = (cause || m).replace(/^error sending request for url \([^)]*\): /, "");
  return detail.trim().slice(0, 160);
}
