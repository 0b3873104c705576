/**
 * When joi may start a conversation: at most `rate_limits.proactive.per_day`
 * proactive messages in any rolling 24 hours, and none in quiet hours
 * (`quiet_hours` of policy.yaml, in its time zone) unless critical.
 *
 * @module
 */
import type { Policy } from "../../common/policy/policy.ts";
import { RateLimiter } from "../../common/rate_limit.ts";

/** policy.yaml `quiet_hours`: weekday and weekend `HH:MM` windows in an IANA time zone. */
export type QuietHours = Policy["quiet_hours"];

function minutes(hhmm: string): number {
  const [h, m] = hhmm.split(":").map(Number);
  if (h === undefined || m === undefined) throw new RangeError(`"${hhmm}" is not HH:MM`);
  return h * 60 + m;
}

/** Whether `at` (Unix ms) falls in quiet hours. A window may span midnight. */
export function inQuietHours(q: QuietHours, at: number): boolean {
  const parts = new Intl.DateTimeFormat("en-GB", {
    timeZone: q.timezone,
    weekday: "short",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).formatToParts(new Date(at));
  const get = (t: string) => parts.find((p) => p.type === t)?.value ?? "";
  const day = get("weekday");
  const now = Number(get("hour")) * 60 + Number(get("minute"));
  const w = day === "Sat" || day === "Sun" ? q.weekend : q.weekday;
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
