/**
 * The LLM call budget (the "circuit breaker" of the rate-limit table): at most
 * `calls_per_hour` calls in any rolling hour; when it is spent, every call is
 * refused for `pause_minutes` and the user is told "I need a moment".
 *
 * @module
 */
import { RateLimiter } from "../../common/rate_limit.ts";

/** Figures of policy.yaml `rate_limits.llm`. */
export interface LlmBudgetPolicy {
  /** Calls per rolling 60 minutes. */
  calls_per_hour: number;
  /** Pause once spent, in minutes. */
  pause_minutes: number;
}

/** Verdict of {@link LlmCallBudget.take}. */
export interface BudgetVerdict {
  /** Whether the call may go ahead (and was counted). */
  allowed: boolean;
  /** When refused: seconds until calls resume. */
  retryAfterSeconds: number;
}

/** Rolling-hour call budget with a pause once spent. */
export class LlmCallBudget {
  #limiter: RateLimiter;
  #pauseMs: number;
  #pausedUntil = 0;
  #now: () => number;

  /** Creates the budget from the policy figures. */
  constructor(policy: LlmBudgetPolicy, now: () => number = Date.now) {
    if (!(policy.calls_per_hour > 0)) {
      throw new RangeError(
        `rate_limits.llm.calls_per_hour must be > 0, got ${policy.calls_per_hour}`,
      );
    }
    this.#limiter = new RateLimiter({ per_hour: policy.calls_per_hour }, { now });
    this.#pauseMs = policy.pause_minutes * 60_000;
    this.#now = now;
  }

  /** Takes one call from the budget, or refuses and starts/continues the pause. */
  take(): BudgetVerdict {
    const now = this.#now();
    if (now < this.#pausedUntil) {
      return { allowed: false, retryAfterSeconds: Math.ceil((this.#pausedUntil - now) / 1000) };
    }
    const v = this.#limiter.check("llm", now);
    if (v.allowed) return { allowed: true, retryAfterSeconds: 0 };
    this.#pausedUntil = now + this.#pauseMs;
    return { allowed: false, retryAfterSeconds: Math.max(1, Math.ceil(this.#pauseMs / 1000)) };
  }

  /** Whether calls are currently paused. */
  get paused(): boolean {
    return this.#now() < this.#pausedUntil;
  }
}
