/**
 * The LLM call budget (the "circuit breaker" of the rate-limit table): at most
 * `calls_per_hour` calls in any rolling hour; when it is spent, every call is
 * refused for `pause_minutes` and the user is told "I need a moment".
 *
 * @module
 */
import type { Policy } from "../../common/policy/policy.ts";
import { RateLimiter } from "../../common/rate_limit.ts";

/** Figures of policy.yaml `rate_limits.llm`. */
export type LlmBudgetPolicy = Policy["rate_limits"]["llm"];

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
