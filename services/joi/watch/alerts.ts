/**
 * How joi's watches speak: every watch message goes through the outbox (the
 * one way out), after the {@link AlertGate} decided when: once per episode
 * and phase, quiet hours and the hourly cap for what is not about safety.
 * The decision and the queued message commit in one transaction of `joi.db`,
 * so a restart neither loses an alert nor sends it twice.
 *
 * Safety messages (the house gone silent, joi cut off, alarms refused for
 * their clock) go as critical messages: never dropped as stale, never rate
 * limited. The others go as proactive messages to the owner, kept for a week
 * if the mesh cannot be reached.
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";
import type { HouseholdRoles } from "../../common/policy/household.ts";
import type { Policy } from "../../common/policy/policy.ts";
import { AlertGate } from "../../common/watch/alert_gate.ts";
import type { WatchLedger } from "../../common/watch/ledger.ts";
import { inQuietHours, type QuietHours } from "../agent/proactive.ts";
import type { Outbox } from "../outbox/outbox.ts";

/** Who is told. */
export type Audience = "owner" | "critical" | "both";

/** One watch message. */
export interface WatchMessage {
  /** The watch (`link`, `house`, `model`, `clock-mesh`, ...). */
  watch: string;
  /** The episode it is about (its id, from {@link Episode}). */
  episode: string;
  /** `alert`, `recovered`, or a reminder name; each is sent once per episode. */
  phase: string;
  /** Ignores quiet hours and the hourly cap. */
  safety: boolean;
  /** Who is told. */
  to: Audience;
  /** The text (a fixed template of ours, no links). */
  text: string;
}

/** What became of a message. */
export type AlertOutcome = "queued" | "duplicate";

/** Options of {@link WatchAlerts}. */
export interface WatchAlertsOptions {
  ledger: WatchLedger;
  outbox: Outbox;
  roles: HouseholdRoles;
  /** The policy in force (quiet hours and the household's zone, cap). */
  policy: () => Pick<Policy, "quiet_hours" | "watch" | "household">;
  log: Logger;
  now: () => number;
}

/** A non-safety watch message waits at most this long for the mesh (ms). */
const KEEP_MS = 7 * 86_400_000;
const MINUTE = 60_000;

/** The end of the quiet hours `at` falls in (to the minute), or null. */
export function quietHoursEnd(q: QuietHours, at: number): number | null {
  if (!inQuietHours(q, at)) return null;
  let t = Math.ceil((at + 1) / MINUTE) * MINUTE;
  for (let i = 0; i < 24 * 60 && inQuietHours(q, t); i++) t += MINUTE;
  return t;
}

/** The watches' voice. */
export class WatchAlerts {
  readonly #o: WatchAlertsOptions;
  readonly #gate: AlertGate;

  /** Creates it over joi's ledger and outbox. */
  constructor(o: WatchAlertsOptions) {
    this.#o = o;
    this.#gate = new AlertGate({
      ledger: o.ledger,
      perHour: () => o.policy().watch.alerts_per_hour,
      quietUntil: (at) => {
        const p = o.policy();
        return quietHoursEnd({ ...p.quiet_hours, timezone: p.household.timezone }, at);
      },
    });
  }

  /** Decides and queues `m`; kicks the outbox. */
  send(m: WatchMessage): AlertOutcome {
    const now = this.#o.now();
    const channels = this.#channels(m.to);
    const outcome = this.#o.ledger.atomically((): AlertOutcome => {
      const v = this.#gate.decide(m, now);
      if (!v.send) return "duplicate";
      for (const channel of channels) {
        const r = this.#o.outbox.enqueue({
          channel,
          text: m.text,
          priority: m.safety ? "critical" : "normal",
          kind: m.safety ? "event_critical" : "proactive",
          template: true,
          ttlMs: v.at - now + KEEP_MS,
          notBefore: v.at,
        });
        if (!r.accepted) {
          // our own template broke an output rule: a bug to fix, logged; the decision stands
          this.#o.log.error("watch_message_refused", { watch: m.watch, rule: r.rule, channel });
        }
      }
      this.#o.log.info("watch_message", {
        watch: m.watch,
        episode: m.episode,
        phase: m.phase,
        safety: m.safety,
        to: m.to,
        deferred_s: Math.round((v.at - now) / 1000),
      });
      return "queued";
    });
    if (outcome === "queued") this.#o.outbox.kick();
    return outcome;
  }

  #channels(to: Audience): string[] {
    const r = this.#o.roles;
    if (to === "owner") return [r.ownerDm];
    if (to === "critical") return [r.criticalChannel];
    return [r.ownerDm, r.criticalChannel];
  }
}
