/**
 * Client side of the wire protocol: {@link SignedClient} (mesh <-> joi,
 * relay -> joi) and {@link JsonClient} (unsigned: the local run's relay).
 *
 * Retries: network errors, per-try timeouts, 5xx answers and answers that
 * fail verification are retried with exponential backoff with "equal jitter"
 * (`random(0.5..1) x baseDelayMs x 2^try`, capped at `maxDelayMs`); a 429 is
 * retried after its `retry_after` when that is at most `maxRetryAfterMs`,
 * otherwise returned to the caller (who may queue the message for later);
 * other 4xx are never retried. Every try of a signed request carries a fresh
 * nonce and timestamp; the `X-Request-ID` stays the same across tries, so logs
 * on both sides correlate.
 *
 * **Signed answers.** A {@link SignedClient} acts only on answers it could
 * verify (response.ts): signed under the direction's response key, bound to
 * the nonce and MAC of the try they answer, every non-transport header signed,
 * and the server's clock within the tolerance of ours. An answer that fails
 * any of that is a failed try (retried as above; `kind: "unverified"` when
 * none is left), logged as a security event. The server clock of each
 * verified answer gives the offset to the peer ({@link SignedClient.clock}).
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { type Envelope, parseEnvelope } from "./envelope.ts";
import { HEADERS } from "./headers.ts";
import type { WireKey } from "./keys.ts";
import { PeerClock } from "./clock.ts";
import { readResponseCapped } from "./read_capped.ts";
import { checkAnswer } from "./response.ts";
import { type Direction, signedHeaders, type SignedRequest } from "./sign.ts";

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

/** Why no usable answer was obtained. */
export type WireFailureKind = "network" | "unverified" | "bad_answer";

/** Anything that sends one request and returns its answer ({@link SignedClient}, a test double). */
export interface WireRequester {
  request(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<WireResponse>;
}

/** A request that could not get a usable answer (after all retries). */
export class WireClientError extends Error {
  /** HTTP status of the last answer, if any arrived. */
  readonly status: number | undefined;
  /** Tries made. */
  readonly attempts: number;
  /** `network`: no answer; `unverified`: an answer that failed verification; `bad_answer`: not an envelope. */
  readonly kind: WireFailureKind;
  /** Creates the error. */
  constructor(
    message: string,
    status: number | undefined,
    attempts: number,
    kind: WireFailureKind,
    cause?: unknown,
  ) {
    super(message, { cause });
    this.name = "WireClientError";
    this.status = status;
    this.attempts = attempts;
    this.kind = kind;
  }
}

/** Options of {@link JsonClient}. */
export interface JsonClientOptions {
  /** Origin of the server, e.g. `http://10.42.0.10:8443` (a path part is ignored). */
  baseUrl: string;
  /** Retries after the first try (default 3). */
  maxRetries?: number | undefined;
  /** First backoff delay (default 250 ms). */
  baseDelayMs?: number | undefined;
  /** Longest backoff delay (default 10 000 ms). */
  maxDelayMs?: number | undefined;
  /** Longest `retry_after` waited for before retrying a 429 (default 60 000 ms). */
  maxRetryAfterMs?: number | undefined;
  /** Per-try timeout (default 10 000 ms). */
  timeoutMs?: number | undefined;
  /** Largest accepted response body (default 1 MiB). */
  maxResponseBytes?: number | undefined;
  /** Where refused answers are logged (security stream). */
  log?: Logger | undefined;
  /** fetch, for tests. */
  fetch?: typeof fetch | undefined;
  /** Clock (epoch ms), for tests. */
  now?: (() => number) | undefined;
  /** Sleep, for tests (records backoff delays). */
  sleep?: ((ms: number) => Promise<void>) | undefined;
  /** Random in [0, 1), for tests. */
  random?: (() => number) | undefined;
}

/** Options of {@link SignedClient}. */
export interface SignedClientOptions extends JsonClientOptions {
  /** The key of `direction` (`loadWireKey`). */
  key: WireKey;
  /** The direction of the requests this client sends. */
  direction: Direction;
  /**
   * Largest accepted `|server clock - ours|` in an answer (policy
   * `security.timestamp_tolerance_minutes`; default 5 minutes).
   */
  toleranceMs?: number | undefined;
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();
const defaultSleep = (ms: number) => new Promise<void>((resolve) => setTimeout(resolve, ms));

/** Signs one try and checks its answer (a signed client), or neither (a JSON client). */
interface Signer {
  sign(
    method: string,
    path: string,
    body: Uint8Array,
    headers: Record<string, string>,
    timestamp: number,
  ): SignedRequest;
  check(
    request: SignedRequest,
    answer: { status: number; headers: Headers; body: Uint8Array },
    sentAt: number,
    receivedAt: number,
  ): string | undefined;
}

type Try =
  | {
    kind: "answer";
    status: number;
    envelope: Envelope;
    headers: Headers;
    retryAfterMs?: number | undefined;
  }
  | { kind: "bad_answer"; status: number; problem: string }
  | { kind: "unverified"; status: number; problem: string }
  | { kind: "network"; error: unknown };

/** An unsigned JSON client with the retry rules of this module. */
export class JsonClient {
  readonly #origin: URL;
  readonly #opts: {
    [K in keyof Omit<JsonClientOptions, "baseUrl" | "log">]-?: Exclude<
      JsonClientOptions[K],
      undefined
    >;
  };
  readonly #signer: Signer | undefined;
  readonly #targets = new Map<string, { url: URL; signedPath: string }>();

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
   * `extraHeaders` are sent (and, by a signed client, signed) with it; an
   * `X-Request-ID` among them replaces the generated one.
   * Throws {@link WireClientError} when no usable envelope could be obtained.
   */
  async request(
    method: string,
    path: string,
    body?: unknown,
    extraHeaders: Record<string, string> = {},
  ): Promise<WireResponse> {
    const { url, signedPath } = this.#target(path);
    const bytes = body === undefined ? new Uint8Array(0) : encoder.encode(JSON.stringify(body));
    // A caller may pass its own X-Request-ID (an outbox id, stable across its retries).
    let requestId: string = crypto.randomUUID();
    const headers: Record<string, string> = {};
    for (const [name, value] of Object.entries(extraHeaders)) {
      if (name.toLowerCase() === "x-request-id") requestId = value;
      else headers[name] = value;
    }
    const o = this.#opts;
    let last: Try | undefined;
    for (let attempt = 0; attempt <= o.maxRetries; attempt++) {
      if (attempt > 0) {
        await o.sleep(this.#delay(attempt, last!));
      }
      last = await this.#try(method, url, signedPath, bytes, requestId, headers);
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
          "bad_answer",
        );
      }
    }
    const tries = o.maxRetries + 1;
    if (last?.kind === "bad_answer" || last?.kind === "unverified") {
      throw new WireClientError(
        `${method} ${url.origin}${signedPath}: HTTP ${last.status} after ${tries} tries, ${last.problem}`,
        last.status,
        tries,
        last.kind,
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
      "network",
      error,
    );
  }

  /** The URL of `path` on this origin and the path as signed; cached, callers reuse a few paths. */
  #target(path: string): { url: URL; signedPath: string } {
    let t = this.#targets.get(path);
    if (t === undefined) {
      const url = new URL(path, this.#origin);
      if (url.origin !== this.#origin.origin) {
        throw new TypeError(
          `path "${path}" leaves ${this.#origin.origin}; pass a path like /api/v1/x`,
        );
      }
      t = { url, signedPath: url.pathname + url.search };
      if (this.#targets.size < 64) this.#targets.set(path, t);
    }
    return t;
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
    const toSign: Record<string, string> = { ...extraHeaders, [HEADERS.requestId]: requestId };
    if (bytes.length > 0) toSign["Content-Type"] = "application/json";
    const sentAt = o.now();
    let signed: SignedRequest | undefined;
    let headers: Record<string, string>;
    if (this.#signer) {
      signed = this.#signer.sign(method, signedPath, bytes, toSign, sentAt);
      headers = signed.headers;
    } else {
      headers = { ...toSign, [HEADERS.timestamp]: String(sentAt) };
    }
    // JSON answers are small: never spend CPU compressing them.
    headers["accept-encoding"] = "identity";
    // One controller and timer per try (AbortSignal.timeout measured 20 us dearer per request).
    const abort = new AbortController();
    const timer = setTimeout(
      () => abort.abort(new DOMException(`no answer within ${o.timeoutMs} ms`, "TimeoutError")),
      o.timeoutMs,
    );
    let response: Response;
    let answer: Uint8Array | undefined;
    try {
      response = await o.fetch(url, {
        method,
        headers,
        body: bytes.length > 0 ? (bytes as Uint8Array<ArrayBuffer>) : null,
        signal: abort.signal,
      });
      answer = await readResponseCapped(response, o.maxResponseBytes);
    } catch (error) {
      return { kind: "network", error };
    } finally {
      clearTimeout(timer);
    }
    if (answer === undefined) {
      return {
        kind: "bad_answer",
        status: response.status,
        problem: `response larger than ${o.maxResponseBytes} bytes`,
      };
    }
    if (this.#signer && signed) {
      const problem = this.#signer.check(
        signed,
        { status: response.status, headers: response.headers, body: answer },
        sentAt,
        o.now(),
      );
      if (problem !== undefined) return { kind: "unverified", status: response.status, problem };
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
    return {
      kind: "answer",
      status: response.status,
      envelope: parsed.envelope,
      headers: response.headers,
      retryAfterMs,
    };
  }
}

/**
 * A client signing every try of every request under the key of its direction
 * (fresh nonce and timestamp per try) and acting only on answers it verified,
 * with the retry rules of this module.
 */
export class SignedClient extends JsonClient {
  /** The clock offset to the server, from the last verified answer. */
  readonly clock: PeerClock;

  /** Creates a signed client; `options.key` must be the key of `options.direction`. */
  constructor(options: SignedClientOptions) {
    const { key, direction } = options;
    if (key.direction !== direction) {
      throw new TypeError(`SignedClient: a ${key.direction} key cannot sign ${direction} requests`);
    }
    const tolerance = options.toleranceMs ?? 300_000;
    const clock = new PeerClock();
    const log = options.log?.child("wire");
    super(options, {
      sign: (method, path, body, headers, timestamp) =>
        signedHeaders({ key: key.request, direction, method, path, body, headers, timestamp }),
      check: (request, answer, sentAt, receivedAt) => {
        const verdict = checkAnswer(key.response, { direction, ...request }, answer);
        let problem: string | undefined;
        if (!verdict.ok) problem = verdict.problem;
        else {
          const { offsetMs } = clock.record(verdict.serverTime, sentAt, receivedAt);
          if (Math.abs(offsetMs) > tolerance) {
            problem = `the server's clock is ${Math.round(offsetMs / 1000)} s off ours ` +
              `(tolerance ${Math.round(tolerance / 1000)} s); check both clocks (NTP)`;
          }
        }
        if (problem !== undefined) {
          log?.security("wire.answer_refused", {
            base_url: options.baseUrl,
            status: answer.status,
            request_id: request.headers[HEADERS.requestId.toLowerCase()],
            problem,
          });
        }
        return problem;
      },
    });
    this.clock = clock;
  }
}
