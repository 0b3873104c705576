/**
 * Client side of the wire protocol: {@link SignedClient} (mesh <-> joi) and
 * {@link JsonClient} (unsigned, e.g. relay -> joi ingest).
 *
 * Retries: network errors, per-try timeouts and 5xx answers are retried with
 * exponential backoff with "equal jitter" (`random(0.5..1) x baseDelayMs x 2^try`,
 * capped at `maxDelayMs`); a 429 is retried after its `retry_after` when that
 * is at most `maxRetryAfterMs`, otherwise returned to the caller (who may
 * queue the message for later); other 4xx are never retried. Every try of a
 * signed request carries a fresh nonce and timestamp; the `X-Request-ID`
 * stays the same across tries, so logs on both sides correlate.
 *
 * @module
 */
import { type Envelope, parseEnvelope } from "./envelope.ts";
import { readCapped } from "./read_capped.ts";
import { type Direction, HEADERS, signedHeaders } from "./sign.ts";

/** The answer to one request. */
export interface WireResponse {
  /** HTTP status of the last try. */
  status: number;
  /** Its parsed envelope. */
  envelope: Envelope;
  /** The `X-Request-ID` sent. */
  requestId: string;
  /** How many tries were made (1 = no retry). */
  attempts: number;
}

/** A request that could not get a usable answer (after all retries). */
export class WireClientError extends Error {
  /** HTTP status of the last answer, if any arrived. */
  readonly status: number | undefined;
  /** Tries made. */
  readonly attempts: number;
  /** Creates the error. */
  constructor(message: string, status: number | undefined, attempts: number, cause?: unknown) {
    super(message, { cause });
    this.name = "WireClientError";
    this.status = status;
    this.attempts = attempts;
  }
}

/** Options of {@link JsonClient}. */
export interface JsonClientOptions {
  /** Origin of the server, e.g. `http://10.42.0.10:8443` (a path part is ignored). */
  baseUrl: string;
  /** Retries after the first try (default 3). */
  maxRetries?: number;
  /** First backoff delay (default 250 ms). */
  baseDelayMs?: number;
  /** Longest backoff delay (default 10 000 ms). */
  maxDelayMs?: number;
  /** Longest `retry_after` waited for before retrying a 429 (default 60 000 ms). */
  maxRetryAfterMs?: number;
  /** Per-try timeout (default 10 000 ms). */
  timeoutMs?: number;
  /** Largest accepted response body (default 1 MiB). */
  maxResponseBytes?: number;
  /** fetch, for tests. */
  fetch?: typeof fetch;
  /** Clock (epoch ms), for tests. */
  now?: () => number;
  /** Sleep, for tests (records backoff delays). */
  sleep?: (ms: number) => Promise<void>;
  /** Random in [0, 1), for tests. */
  random?: () => number;
}

/** Options of {@link SignedClient}. */
export interface SignedClientOptions extends JsonClientOptions {
  /** HMAC key of `direction`. */
  key: CryptoKey;
  /** The direction of the requests this client sends. */
  direction: Direction;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

type Signer = (
  method: string,
  path: string,
  body: Uint8Array,
  timestamp: number,
) => Promise<Record<string, string>>;

type Try =
  | { kind: "answer"; status: number; envelope: Envelope; retryAfterMs?: number | undefined }
  | { kind: "bad_answer"; status: number; problem: string }
  | { kind: "network"; error: unknown };

/** An unsigned JSON client with the retry rules of this module. */
export class JsonClient {
  readonly #origin: URL;
  readonly #opts: Required<Omit<JsonClientOptions, "baseUrl">>;
  readonly #signer: Signer | undefined;

  /** Creates a client for `options.baseUrl`. */
  constructor(options: JsonClientOptions, signer?: Signer) {
    let origin: URL;
    try {
      origin = new URL(options.baseUrl);
    } catch {
      throw new TypeError(`baseUrl "${options.baseUrl}" is not a URL, e.g. http://10.42.0.10:8443`);
    }
    if (origin.protocol !== "http:" && origin.protocol !== "https:") {
      throw new TypeError(`baseUrl "${options.baseUrl}" must be http: or https:`);
    }
    this.#origin = new URL(origin.origin);
    this.#signer = signer;
    this.#opts = {
      maxRetries: options.maxRetries ?? 3,
      baseDelayMs: options.baseDelayMs ?? 250,
      maxDelayMs: options.maxDelayMs ?? 10_000,
      maxRetryAfterMs: options.maxRetryAfterMs ?? 60_000,
      timeoutMs: options.timeoutMs ?? 10_000,
      maxResponseBytes: options.maxResponseBytes ?? 1 << 20,
      fetch: options.fetch ?? fetch,
      now: options.now ?? Date.now,
      sleep: options.sleep ?? defaultSleep,
      random: options.random ?? Math.random,
    };
  }

  /**
   * Sends `body` (JSON-serialised; omitted when undefined) to `path` and
   * returns the parsed envelope of the answer, retrying per the module rules.
   * Throws {@link WireClientError} when no envelope could be obtained.
   */
  async request(
    method: string,
    path: string,
    body?: unknown,
    extraHeaders: Record<string, string> = {},
  ): Promise<WireResponse> {
    const url = new URL(path, this.#origin);
    if (url.origin !== this.#origin.origin) {
      throw new TypeError(
        `path "${path}" leaves ${this.#origin.origin}; pass a path like /api/v1/x`,
      );
    }
    const signedPath = url.pathname + url.search;
    const bytes = body === undefined ? new Uint8Array(0) : encoder.encode(JSON.stringify(body));
    const requestId = crypto.randomUUID();
    const o = this.#opts;
    let last: Try | undefined;
    for (let attempt = 0; attempt <= o.maxRetries; attempt++) {
      if (attempt > 0) {
        await o.sleep(this.#delay(attempt, last!));
      }
      last = await this.#try(method, url, signedPath, bytes, requestId, extraHeaders);
      if (last.kind === "answer") {
        const retry = this.#shouldRetry(last);
        if (!retry || attempt === o.maxRetries) {
          return {
            status: last.status,
            envelope: last.envelope,
            requestId,
            attempts: attempt + 1,
          };
        }
      } else if (last.kind === "bad_answer" && last.status < 500) {
        throw new WireClientError(
          `${method} ${url.origin}${signedPath}: HTTP ${last.status}, ${last.problem}`,
          last.status,
          attempt + 1,
        );
      }
    }
    const tries = o.maxRetries + 1;
    if (last?.kind === "bad_answer") {
      throw new WireClientError(
        `${method} ${url.origin}${signedPath}: HTTP ${last.status} after ${tries} tries, ${last.problem}`,
        last.status,
        tries,
      );
    }
    const error = last?.kind === "network" ? last.error : undefined;
    throw new WireClientError(
      `${method} ${url.origin}${signedPath}: no answer after ${tries} tries ` +
        `(${
          error instanceof Error ? error.message : String(error)
        }); is the peer up and reachable?`,
      undefined,
      tries,
      error,
    );
  }

  #shouldRetry(t: Try & { kind: "answer" }): boolean {
    if (t.status >= 500) return true;
    if (t.status === 429) {
      return t.retryAfterMs !== undefined && t.retryAfterMs <= this.#opts.maxRetryAfterMs;
    }
    return false;
  }

  #delay(attempt: number, last: Try): number {
    const o = this.#opts;
    if (last.kind === "answer" && last.status === 429 && last.retryAfterMs !== undefined) {
      return last.retryAfterMs;
    }
    const ceiling = Math.min(o.maxDelayMs, o.baseDelayMs * 2 ** (attempt - 1));
    return Math.round(ceiling * (0.5 + 0.5 * o.random()));
  }

  async #try(
    method: string,
    url: URL,
    signedPath: string,
    bytes: Uint8Array,
    requestId: string,
    extraHeaders: Record<string, string>,
  ): Promise<Try> {
    const o = this.#opts;
    const headers: Record<string, string> = {
      ...extraHeaders,
      "Accept": "application/json",
      [HEADERS.requestId]: requestId,
    };
    if (bytes.length > 0) headers["Content-Type"] = "application/json";
    const timestamp = o.now();
    if (this.#signer) {
      Object.assign(headers, await this.#signer(method, signedPath, bytes, timestamp));
    } else {
      headers[HEADERS.timestamp] = String(timestamp);
    }
    let response: Response;
    try {
      response = await o.fetch(url, {
        method,
        headers,
        body: bytes.length > 0 ? (bytes as Uint8Array<ArrayBuffer>) : null,
        signal: AbortSignal.timeout(o.timeoutMs),
      });
    } catch (error) {
      return { kind: "network", error };
    }
    let answer: Uint8Array | undefined;
    try {
      answer = await readCapped(response.body, o.maxResponseBytes);
    } catch (error) {
      return { kind: "network", error };
    }
    if (answer === undefined) {
      return {
        kind: "bad_answer",
        status: response.status,
        problem: `response larger than ${o.maxResponseBytes} bytes`,
      };
    }
    const parsed = parseEnvelope(decoder.decode(answer));
    if (!parsed.ok) return { kind: "bad_answer", status: response.status, problem: parsed.problem };
    let retryAfterMs: number | undefined;
    if (response.status === 429) {
      const env = parsed.envelope;
      const seconds = env.status === "error" && env.error.retry_after !== undefined
        ? env.error.retry_after
        : Number(response.headers.get("retry-after") ?? NaN);
      if (Number.isFinite(seconds) && seconds >= 0) retryAfterMs = seconds * 1000;
    }
    return { kind: "answer", status: response.status, envelope: parsed.envelope, retryAfterMs };
  }
}

/**
 * A client signing every try of every request under the key of its direction
 * (fresh nonce and timestamp per try), with the retry rules of this module.
 */
export class SignedClient extends JsonClient {
  /** Creates a signed client; `options.key` must be the key of `options.direction`. */
  constructor(options: SignedClientOptions) {
    const { key, direction } = options;
    super(
      options,
      (method, path, body, timestamp) =>
        signedHeaders({ key, direction, method, path, body, timestamp }),
    );
  }
}
