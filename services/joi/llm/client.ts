/**
 * The LLM client: Ollama's OpenAI-compatible `/v1/chat/completions`, with the
 * GPU failure handling of the architecture document.
 *
 * Ollama's OpenAI-compatible endpoint ignores `options` (num_gpu, num_ctx):
 * the context of a normal call is the Ollama service's own
 * (`OLLAMA_CONTEXT_LENGTH`, set it to llm.yaml's `context_tokens`). The calls
 * whose options must take effect (CPU inference, a shrunk context) therefore
 * go to Ollama's native `POST /api/chat`, which honours them.
 *
 * - GPU error (CUDA / device text in an HTTP error): the same request is sent
 *   again with Ollama's `options.num_gpu: 0` (CPU inference). joi stays on CPU
 *   for the rest of the degradation episode and {@link LlmClient.onDegraded}
 *   fires once per episode. If the CPU attempt fails with a GPU error too, the
 *   fallback models of llm.yaml are tried in order.
 * - Out of memory: the context (`options.num_ctx`) is halved and the prompt
 *   trimmed to fit, then retried, down to {@link MIN_CONTEXT_TOKENS}.
 * - Timeout, connection refused or closed, 502/503: retried up to
 *   `max_retries` times with exponential backoff.
 * - Every call takes one unit of its channel's fair share of the rolling-hour
 *   call budget first ({@link LlmCallBudget}); when that is refused the call
 *   fails with kind `busy` without touching the server.
 *
 * Errors never carry prompt text; log lines carry kinds, models and sizes.
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";
import type { Llm } from "../../common/policy/llm.ts";
import type { LlmCallBudget } from "./budget.ts";
import { classifyHttpError, LlmError } from "./errors.ts";
import { type ChatMessage, promptTokens, trimToBudget } from "./tokens.ts";

/** The smallest context joi will shrink to on out-of-memory. */
export const MIN_CONTEXT_TOKENS = 1024;

/** Figures of llm.yaml (its trust rules are checked at load: local endpoint, no banned model). */
export type LlmConfig = Llm;

/** Inference mode. */
export type InferenceMode = "gpu" | "cpu";

/** A successful chat completion. */
export interface ChatResult {
  /** The assistant's text. */
  content: string;
  /** Model that answered. */
  model: string;
  /** Where it ran. */
  mode: InferenceMode;
  /** Context size used. */
  contextTokens: number;
  /** Wall time of the successful request, ms. */
  elapsedMs: number;
  /** Attempts made (1 = first try). */
  attempts: number;
}

/** Information passed to {@link LlmClient.onDegraded}. */
export interface DegradedInfo {
  /** The error kind that caused it. */
  cause: "gpu";
  /** The model in use. */
  model: string;
}

/** Options of {@link LlmClient}. */
export interface LlmClientOptions {
  /** llm.yaml. */
  config: LlmConfig;
  /** Overrides `config.endpoint` (the `--llm-url` flag). */
  endpoint?: string | undefined;
  /** Call budget (policy.yaml `rate_limits.llm`). */
  budget?: LlmCallBudget | undefined;
  /** Logger. */
  log?: Logger | undefined;
  /** fetch, for tests. */
  fetch?: typeof fetch | undefined;
  /** Sleep, for tests (backoff). */
  sleep?: ((ms: number) => Promise<void>) | undefined;
  /** Clock, ms. */
  now?: (() => number) | undefined;
}

/** Options of one chat call. */
export interface ChatOptions {
  /** The channel the call is for: the budget's fair share is per channel. */
  channel?: string | undefined;
  /** Upper bound on the answer's tokens. */
  maxTokens?: number;
  /** Skip the call budget (internal health probes only). */
  unbudgeted?: boolean;
  /** Force GPU mode (health probe while degraded). */
  forceGpu?: boolean;
}

const defaultSleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** OpenAI-compatible chat client with GPU fallback. */
export class LlmClient {
  #cfg: LlmConfig;
  #url: string;
  /** Ollama's root (the endpoint without `/v1`), for the native API. */
  #root: string;
  #opts: LlmClientOptions;
  #fetch: typeof fetch;
  #sleep: (ms: number) => Promise<void>;
  #now: () => number;
  #cpu = false;
  #lastError: string | undefined;
  #lastInferenceMs: number | undefined;
  #lastModel: string | undefined;
  #lastOkAt: number | undefined;
  #consecutiveFailures = 0;
  #onDegraded: ((info: DegradedInfo) => void)[] = [];
  #onRecovered: (() => void)[] = [];

  /** Creates the client; throws for a banned or missing model. */
  constructor(opts: LlmClientOptions) {
    this.#cfg = opts.config;
    this.#url = (opts.endpoint ?? opts.config.endpoint).replace(/\/+$/, "");
    this.#root = this.#url.replace(/\/v1$/, "");
    this.#opts = opts;
    this.#fetch = opts.fetch ?? fetch;
    this.#sleep = opts.sleep ?? defaultSleep;
    this.#now = opts.now ?? Date.now;
  }

  /** The OpenAI-compatible base URL in use. */
  get endpoint(): string {
    return this.#url;
  }

  /** Whether joi runs degraded (CPU inference). */
  get degraded(): boolean {
    return this.#cpu;
  }

  /** State for /health. Never contains prompt text. */
  state(): {
    mode: InferenceMode;
    degraded: boolean;
    last_model: string | undefined;
    last_inference_ms: number | undefined;
    last_ok_at: string | undefined;
    last_error: string | undefined;
    consecutive_failures: number;
    budget_paused: boolean;
  } {
    return {
      mode: this.#cpu ? "cpu" : "gpu",
      degraded: this.#cpu,
      last_model: this.#lastModel,
      last_inference_ms: this.#lastInferenceMs,
      last_ok_at: this.#lastOkAt ? new Date(this.#lastOkAt).toISOString() : undefined,
      last_error: this.#lastError,
      consecutive_failures: this.#consecutiveFailures,
      budget_paused: this.#opts.budget?.paused ?? false,
    };
  }

  /** Sends a chat; see the module doc for the failure handling. */
  async chat(messages: readonly ChatMessage[], options: ChatOptions = {}): Promise<ChatResult> {
    if (!options.unbudgeted && this.#opts.budget) {
      const v = this.#opts.budget.take(options.channel);
      if (!v.allowed) {
        throw new LlmError(
          "busy",
          `LLM call budget spent; calls resume in ${v.retryAfterSeconds} s`,
          v.retryAfterSeconds,
        );
      }
    }
    const models = [this.#cfg.primary_model, ...this.#cfg.fallback_models];
    let modelIndex = 0;
    let ctx = this.#cfg.context_tokens;
    let cpu = options.forceGpu ? false : this.#cpu;
    let retries = 0;
    let attempts = 0;
    while (true) {
      attempts++;
      const model = models[modelIndex]!; // modelIndex only grows while below models.length
      const reserve = Math.min(options.maxTokens ?? 512, Math.floor(ctx / 4));
      const prompt = trimToBudget(messages, ctx - reserve);
      const started = this.#now();
      try {
        const content = await this.#request(model, prompt, ctx, cpu, options.maxTokens);
        const elapsedMs = this.#now() - started;
        this.#lastInferenceMs = elapsedMs;
        this.#lastModel = model;
        this.#lastOkAt = this.#now();
        this.#lastError = undefined;
        this.#consecutiveFailures = 0;
        if (options.forceGpu && this.#cpu) this.#recover();
        return {
          content,
          model,
          mode: cpu ? "cpu" : "gpu",
          contextTokens: ctx,
          elapsedMs,
          attempts,
        };
      } catch (e) {
        const err = e instanceof LlmError
          ? e
          : new LlmError("down", `LLM request failed: ${(e as Error).message}`);
        this.#lastError = err.kind;
        this.#opts.log?.warn("llm_call_failed", {
          kind: err.kind,
          model,
          mode: cpu ? "cpu" : "gpu",
          ctx,
          attempts,
        });
        if (err.kind === "gpu") {
          if (options.forceGpu) throw this.#failed(err);
          if (!cpu) {
            cpu = true;
            this.#degrade(model);
            continue;
          }
          if (modelIndex + 1 < models.length) {
            modelIndex++;
            continue;
          }
          throw this.#failed(err);
        }
        if (err.kind === "oom") {
          const smaller = Math.floor(ctx / 2);
          if (smaller < MIN_CONTEXT_TOKENS) throw this.#failed(err);
          ctx = smaller;
          this.#opts.log?.info("llm_context_reduced", {
            model,
            ctx,
            prompt_tokens: promptTokens(messages),
          });
          continue;
        }
        if (err.kind === "timeout" || err.kind === "down") {
          if (retries >= this.#cfg.max_retries) throw this.#failed(err);
          retries++;
          await this.#sleep(Math.min(30_000, 1000 * 2 ** (retries - 1)));
          continue;
        }
        throw this.#failed(err);
      }
    }
  }

  /**
   * While degraded: one small GPU request, outside the budget. Success ends
   * the episode (and {@link LlmClient.onRecovered} fires).
   */
  async probeGpu(): Promise<boolean> {
    if (!this.#cpu) return true;
    try {
      await this.chat([{ role: "user", content: "ping" }], {
        maxTokens: 1,
        unbudgeted: true,
        forceGpu: true,
      });
      return true;
    } catch {
      return false;
    }
  }

  #failed(err: LlmError): LlmError {
    this.#consecutiveFailures++;
    return err;
  }

  #degrade(model: string): void {
    if (this.#cpu) return;
    this.#cpu = true;
    this.#opts.log?.warn("llm_degraded_cpu", { model });
    for (const listener of this.#onDegraded) listener({ cause: "gpu", model });
  }

  #recover(): void {
    this.#cpu = false;
    this.#opts.log?.info("llm_gpu_recovered", {});
    for (const listener of this.#onRecovered) listener();
  }

  /** Calls `listener` once per degradation episode, when joi falls back to CPU. */
  onDegraded(listener: (info: DegradedInfo) => void): void {
    this.#onDegraded.push(listener);
  }

  /** Calls `listener` when GPU inference works again after an episode. */
  onRecovered(listener: () => void): void {
    this.#onRecovered.push(listener);
  }

  async #request(
    model: string,
    messages: ChatMessage[],
    ctx: number,
    cpu: boolean,
    maxTokens: number | undefined,
  ): Promise<string> {
    // Options only take effect on Ollama's native API (see the module doc).
    const native = cpu || ctx !== this.#cfg.context_tokens;
    const url = native ? `${this.#root}/api/chat` : `${this.#url}/chat/completions`;
    const body = native
      ? {
        model,
        messages,
        stream: false,
        options: {
          num_ctx: ctx,
          temperature: this.#cfg.temperature,
          ...(cpu ? { num_gpu: 0 } : {}),
          ...(maxTokens ? { num_predict: maxTokens } : {}),
        },
      }
      : {
        model,
        messages,
        temperature: this.#cfg.temperature,
        stream: false,
        ...(maxTokens ? { max_tokens: maxTokens } : {}),
      };
    const controller = new AbortController();
    const timer = setTimeout(() => controller.abort(), this.#cfg.timeout_seconds * 1000);
    let res: Response;
    try {
      res = await this.#fetch(url, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
        signal: controller.signal,
      });
    } catch (e) {
      clearTimeout(timer);
      if (controller.signal.aborted) {
        throw new LlmError(
          "timeout",
          `LLM ${model}: no answer within ${this.#cfg.timeout_seconds} s`,
        );
      }
      throw new LlmError("down", `LLM at ${this.#url} unreachable: ${(e as Error).message}`);
    }
    let text: string;
    try {
      text = await res.text();
    } catch (e) {
      if (controller.signal.aborted) {
        throw new LlmError(
          "timeout",
          `LLM ${model}: no answer within ${this.#cfg.timeout_seconds} s`,
        );
      }
      throw new LlmError(
        "down",
        `LLM ${model}: connection lost while reading: ${(e as Error).message}`,
      );
    } finally {
      clearTimeout(timer);
    }
    if (!res.ok) {
      const kind = classifyHttpError(res.status, text);
      throw new LlmError(kind, `LLM ${model}: HTTP ${res.status} (${kind})`);
    }
    let json: {
      choices?: { message?: { content?: unknown } }[];
      message?: { content?: unknown };
    };
    try {
      json = JSON.parse(text);
    } catch {
      throw new LlmError("bad_response", `LLM ${model}: response is not JSON`);
    }
    const content = native ? json.message?.content : json.choices?.[0]?.message?.content;
    if (typeof content !== "string") {
      throw new LlmError(
        "bad_response",
        `LLM ${model}: response has no ${
          native ? "message.content" : "choices[0].message.content"
        }`,
      );
    }
    return content;
  }
}
