/**
 * When joi may start a conversation: at most `rate_limits.proactive.per_day`
 * proactive messages in any rolling 24 hours, and none in quiet hours
 * (`quiet_hours` of policy.yaml, on the household's clock) unless critical.
 *
 * @module
 */
import { LocalTime } from "../../common/local_time.ts";
import type { Policy } from "../../common/policy/policy.ts";
import { RateLimiter } from "../../common/rate_limit.ts";

/** policy.yaml `quiet_hours` (weekday and weekend `HH:MM` windows) in `household.timezone`. */
export type QuietHours = Policy["quiet_hours"] & { timezone: Policy["household"]["timezone"] };

function minutes(hhmm: string): number {
  const [h, m] = hhmm.split(":").map(Number);
  if (h === undefined || m === undefined) throw new RangeError(`"${hhmm}" is not HH:MM`);
  return h * 60 + m;
}

/**
 * Whether `at` (Unix ms) falls in quiet hours, on the household's wall clock
 * (so 23:00 stays 23:00 across a daylight saving change). A window may span
 * midnight; the weekend window applies on Saturday and Sunday.
 */
export function inQuietHours(q: QuietHours, at: number): boolean {
  const t = new LocalTime(q.timezone).parts(at);
  const now = t.hour * 60 + t.minute;
  const w = t.weekday === 0 || t.weekday === 6 ? q.weekend : q.weekday;
  const start = minutes(w.start);
  const end = minutes(w.end);
  if (start === end) return false;
  return start < end ? now >= start && now < end : now >= start || now < end;
}

/** Verdict of {@link ProactiveGate.allow}. */
export type ProactiveVerdict = { allowed: true } | {
  allowed: false;
  reason: "quiet_hours" | "per_day";
};

/** The proactive limits. */
export class ProactiveGate {
  #limiter: RateLimiter;
  #quiet: () => QuietHours;
  #now: () => number;

  /** `perDay` from policy; `quiet` read at each decision (reloadable). */
  constructor(perDay: number, quiet: () => QuietHours, now: () => number = Date.now) {
    this.#limiter = new RateLimiter({ per_day: perDay }, { now });
    this.#perDay = perDay;
    this.#quiet = quiet;
    this.#now = now;
  }

  #perDay: number;

  /** Checks and, when allowed, counts one proactive message. */
  allow(critical = false): ProactiveVerdict {
    const now = this.#now();
    if (!critical && inQuietHours(this.#quiet(), now)) {
      return { allowed: false, reason: "quiet_hours" };
    }
    if (this.#perDay === 0) return { allowed: false, reason: "per_day" };
    const v = this.#limiter.check("proactive", now);
    return v.allowed ? { allowed: true } : { allowed: false, reason: "per_day" };
  }
}
