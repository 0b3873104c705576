/**
 * LLM failures, classified the way the GPU failure table of the architecture
 * document needs them: a GPU error falls back to CPU, out-of-memory shrinks
 * the context, a timeout or a dead server retries with backoff.
 *
 * @module
 */

/** What kind of failure an LLM call met. */
export type LlmErrorKind =
  | "gpu" // CUDA / device errors: fall back to CPU, then to the fallback models
  | "oom" // out of (V)RAM: retry with a smaller context
  | "timeout" // no answer in time: retry with backoff
  | "down" // connection refused / closed: retry with backoff
  | "http" // another HTTP error
  | "bad_response" // not the OpenAI format
  | "busy"; // the call budget is spent: "I need a moment"

/** A failed LLM call. Messages never contain prompt text. */
export class LlmError extends Error {
  /** The classified kind. */
  readonly kind: LlmErrorKind;
  /** When `busy`: seconds until calls resume. */
  readonly retryAfterSeconds: number | undefined;

  /** Creates the error. */
  constructor(kind: LlmErrorKind, message: string, retryAfterSeconds?: number) {
    super(message);
    this.name = "LlmError";
    this.kind = kind;
    this.retryAfterSeconds = retryAfterSeconds;
  }
}

const OOM =
  /out of memory|cudaMalloc failed|requires more system memory|insufficient memory|\boom\b/i;
const GPU =
  /cuda|no cuda-capable device|gpu|nvml|rocm|hip error|vulkan|llama runner process has terminated|device lost/i;

/** Classifies an HTTP error response of Ollama from its status and body text. */
export function classifyHttpError(status: number, body: string): LlmErrorKind {
  if (OOM.test(body)) return "oom";
  if (GPU.test(body)) return "gpu";
  if (status === 408 || status === 504) return "timeout";
  if (status === 502 || status === 503) return "down";
  return "http";
}
