/**
 * A circuit breaker for calls to a peer (joi -> mesh, joi -> LLM, relay -> joi).
 *
 * `closed`: calls go through; `failures` consecutive failures open it.
 * `open`: calls are refused for `openSeconds`, sparing a dead peer and our queue.
 * `half_open`: after that, at most `halfOpenProbes` trial calls go through at a
 * time; one success closes the breaker, one failure opens it again for another
 * full period. Time comes from an injected clock so tests never sleep.
 *
 * ```ts
 * const breaker = new CircuitBreaker({ failures: 5, openSeconds: 30 });
 * if (breaker.allow()) {
 *   try { await send(); breaker.success(); } catch { breaker.failure(); }
 * }
 * ```
 *
 * @module
 */

/** Breaker states. */
export type BreakerState = "closed" | "open" | "half_open";

/** Options of {@link CircuitBreaker} (figures from policy.yaml `outbox.circuit_breaker`). */
export interface CircuitBreakerOptions {
  /** Consecutive failures that open the breaker (>= 1). */
  failures: number;
  /** Seconds the breaker stays open before a trial call (> 0). */
  openSeconds: number;
  /** Concurrent trial calls allowed while half-open (default 1). */
  halfOpenProbes?: number;
  /** Clock, ms since the epoch. Default `Date.now`. */
  now?: () => number;
  /** Called on every state change (logging, health). */
  onStateChange?: (from: BreakerState, to: BreakerState) => void;
}

/** Thrown by {@link CircuitBreaker.call} when the breaker refuses the call. */
export class CircuitOpenError extends Error {
  /** Milliseconds until a trial call will be allowed. */
  readonly retryAfterMs: number;
  constructor(retryAfterMs: number) {
    super(`circuit breaker open: peer failing, next trial in ${Math.ceil(retryAfterMs / 1000)} s`);
    this.name = "CircuitOpenError";
    this.retryAfterMs = retryAfterMs;
  }
}

/** A three-state circuit breaker with an injectable clock. */
export class CircuitBreaker {
  #failuresToOpen: number;
  #openMs: number;
  #probes: number;
  #now: () => number;
  #onChange: ((from: BreakerState, to: BreakerState) => void) | undefined;
  #state: BreakerState = "closed";
  #consecutive = 0;
  #openedAt = 0;
  #inFlightProbes = 0;

  /** Creates a breaker; throws a `RangeError` naming the bad option. */
  constructor(options: CircuitBreakerOptions) {
    if (!Number.isInteger(options.failures) || options.failures < 1) {
      throw new RangeError(
        `circuit breaker: failures must be an integer >= 1, got ${options.failures}; ` +
          `fix outbox.circuit_breaker.failures in policy.yaml`,
      );
    }
    if (!Number.isFinite(options.openSeconds) || options.openSeconds <= 0) {
      throw new RangeError(
        `circuit breaker: openSeconds must be > 0, got ${options.openSeconds}; ` +
          `fix outbox.circuit_breaker.open_seconds in policy.yaml`,
      );
    }
    this.#failuresToOpen = options.failures;
    this.#openMs = options.openSeconds * 1000;
    this.#probes = Math.max(1, options.halfOpenProbes ?? 1);
    this.#now = options.now ?? Date.now;
    this.#onChange = options.onStateChange;
  }

  #set(to: BreakerState): void {
    if (to === this.#state) return;
    const from = this.#state;
    this.#state = to;
    this.#onChange?.(from, to);
  }

  /** The current state (an open breaker whose period has passed reads `half_open`). */
  get state(): BreakerState {
    if (this.#state === "open" && this.#now() - this.#openedAt >= this.#openMs) {
      this.#inFlightProbes = 0;
      this.#set("half_open");
    }
    return this.#state;
  }

  /** Consecutive failures counted so far. */
  get consecutiveFailures(): number {
    return this.#consecutive;
  }

  /** Milliseconds until the breaker lets a call through (0 when it does now). */
  retryAfterMs(): number {
    const s = this.state;
    if (s === "open") return Math.max(0, this.#openedAt + this.#openMs - this.#now());
    if (s === "half_open" && this.#inFlightProbes >= this.#probes) return this.#openMs;
    return 0;
  }

  /**
   * Whether a call may go now. In half-open state this reserves a probe slot,
   * so every `allow() === true` must be followed by `success()` or `failure()`.
   */
  allow(): boolean {
    const s = this.state;
    if (s === "closed") return true;
    if (s === "open") return false;
    if (this.#inFlightProbes >= this.#probes) return false;
    this.#inFlightProbes++;
    return true;
  }

  /** Reports a successful call: closes the breaker. */
  success(): void {
    this.#consecutive = 0;
    this.#inFlightProbes = 0;
    this.#set("closed");
  }

  /** Reports a failed call: counts it, opening the breaker at the threshold. */
  failure(): void {
    this.#consecutive++;
    const s = this.state;
    if (s === "half_open" || this.#consecutive >= this.#failuresToOpen) {
      this.#openedAt = this.#now();
      this.#inFlightProbes = 0;
      // re-entering open from open restarts the period; emit no duplicate change
      this.#set("open");
    }
  }

  /** Runs `fn` through the breaker; throws {@link CircuitOpenError} when refused. */
  async call<T>(fn: () => Promise<T>): Promise<T> {
    if (!this.allow()) throw new CircuitOpenError(this.retryAfterMs());
    try {
      const result = await fn();
      this.success();
      return result;
    } catch (e) {
      this.failure();
      throw e;
    }
  }

  /** Forces the breaker closed (operator action, tests). */
  reset(): void {
    this.success();
  }
}
