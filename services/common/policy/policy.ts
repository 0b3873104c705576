/**
 * Schema of `policy.yaml`: every limit, window and rule joi's code enforces.
 * The defaults of contracts.md live in the shipped file, never in code.
 *
 * @module
 */
import { z } from "zod";
import {
  channelName,
  hhmm,
  hostOrIp,
  identifier,
  nonEmpty,
  nonNegativeInt,
  positiveInt,
  regexPattern,
  timeZone,
} from "./primitives.ts";
import type { RuleIssue } from "./source.ts";
import { ALARM_CLASSES, KNOWN_CLASSES } from "../device_classes.ts";

const outboundLimit = z.object({
  per_hour: positiveInt,
  per_minute: positiveInt,
  cooldown_seconds: nonNegativeInt,
}).strict();

const inboundLimit = z.object({
  per_hour: positiveInt,
  per_minute: positiveInt,
}).strict();

const window = z.object({ start: hhmm, end: hhmm }).strict();

/** A named blocked pattern of outbound content. */
export const BlockedPatternSchema = z.object({
  name: identifier("pattern name"),
  pattern: regexPattern,
  proactive_only: z.boolean().optional(),
}).strict();

/** The languages joi may reply in (`household.language`). */
export const LANGUAGES = ["en", "sk"] as const;

/** The whole `policy.yaml`. */
export const PolicySchema = z.object({
  household: z.object({
    /** The zone of every time a person reads (alerts, replies, summaries, quiet hours). */
    timezone: timeZone,
    /** `en` (phase 1) or `sk` (phase 2, after `deno task language-check` passes). */
    language: z.enum(LANGUAGES, {
      error: (iss) =>
        `${JSON.stringify(iss.input)} is not a language joi speaks (${LANGUAGES.join(", ")})`,
    }),
  }).strict(),
  security: z.object({
    timestamp_tolerance_minutes: positiveInt,
    nonce_retention_minutes: positiveInt,
    max_body_bytes: positiveInt,
    clock_offset_alert_seconds: positiveInt,
  }).strict(),
  rate_limits: z.object({
    outbound: z.object({
      owner_dm: outboundLimit,
      other_dm: outboundLimit,
      regular_group: outboundLimit,
      critical_escalated: outboundLimit,
    }).strict(),
    inbound: z.object({ others: inboundLimit }).strict(),
    openhab: z.object({
      presence: positiveInt,
      sensors: positiveInt,
      weather: positiveInt,
      alert: positiveInt,
      state: positiveInt,
      events: positiveInt,
    }).strict(),
    llm: z.object({ calls_per_hour: positiveInt, pause_minutes: positiveInt }).strict(),
    proactive: z.object({ per_day: nonNegativeInt }).strict(),
  }).strict(),
  quiet_hours: z.object({
    weekday: window,
    weekend: window,
  }).strict(),
  content: z.object({
    max_outbound_chars: positiveInt,
    max_inbound_chars: positiveInt,
    /** Refuse any link in outbound text, with or without a scheme (judged after normalising). */
    block_links: z.boolean().default(true),
    blocked_patterns: z.array(BlockedPatternSchema),
    ack_words: z.array(nonEmpty).min(1),
  }).strict(),
  iot: z.object({
    dedup: z.boolean(),
    flapping: z.object({
      window_minutes: positiveInt,
      flapping_transitions: positiveInt,
      suppress_transitions: positiveInt,
    }).strict(),
    confirmation: z.object({ alert_minutes: z.array(nonNegativeInt).min(1) }).strict(),
    critical_device_types: z.array(nonEmpty),
    /**
     * Item glob -> device class, before the name's words are read (first
     * match in file order): for names that tell their class in no word joi
     * knows (`"Dym_*": smoke`) or tell a wrong one (`"*_Batt": battery`).
     */
    device_classes: z.record(nonEmpty, identifier("device class")).default({}),
    critical_alert_types: z.array(nonEmpty),
    clear_states: z.array(nonEmpty),
  }).strict(),
  ingest: z.object({
    allowed_sources: z.array(hostOrIp).min(1),
    max_event_bytes: positiveInt,
    max_readings: positiveInt,
    event_id_window_minutes: positiveInt,
    items: z.object({ allow: z.array(nonEmpty), block: z.array(nonEmpty) }).strict(),
    batch_minutes: positiveInt,
    string_max_chars: positiveInt,
    summaries: z.array(hhmm),
  }).strict(),
  outbox: z.object({
    ttl_minutes: z.object({ normal: positiveInt, proactive: positiveInt }).strict(),
    retry: z.object({ initial_seconds: positiveInt, max_seconds: positiveInt }).strict(),
    circuit_breaker: z.object({ failures: positiveInt, open_seconds: positiveInt }).strict(),
  }).strict(),
  memory: z.object({
    context_tokens: positiveInt,
    summarize_after_turns: positiveInt,
    retention_days: z.record(channelName, positiveInt),
  }).strict(),
  gpu_health: z.object({
    check_interval_seconds: positiveInt,
    alert_on_fallback: z.boolean(),
  }).strict(),
  /** The link watch: joi and the mesh check each other over the overlay. */
  nebula_health: z.object({
    check_interval_seconds: positiveInt,
    /** One check's deadline: no answer within it is a failure. */
    lighthouse_ping_timeout_ms: positiveInt,
    /** Consecutive failed checks before the household is told. */
    alert_after_failures: positiveInt,
  }).strict(),
  /** What the other watches tell, and when. */
  watch: z.object({
    /** The relay's heartbeat period. */
    heartbeat_seconds: positiveInt,
    /** No heartbeat for this long: the critical group is told the house is silent. */
    house_silent_seconds: positiveInt,
    /** Ollama unreachable, or inference on CPU, this long: the owner is told. */
    model_alert_minutes: positiveInt,
    /** Days before a Nebula certificate expires when the owner is warned. */
    cert_warn_days: z.array(positiveInt).min(1),
    /** The signal-cli age warning is repeated this often while it stands. */
    signal_cli_remind_days: positiveInt,
    /** Watch messages that are not about safety, per rolling hour; more wait. */
    alerts_per_hour: positiveInt,
    /** This many requests refused for their timestamp within the window: the owner is told. */
    timestamp_refusals: z.object({ count: positiveInt, window_minutes: positiveInt }).strict(),
  }).strict(),
  /** Every listening port (joi 8443/8445, mesh 8444): see services/common/wire/serve.ts. */
  server: z.object({
    headers_timeout_seconds: positiveInt,
    body_timeout_seconds: positiveInt,
    idle_timeout_seconds: positiveInt,
    max_connections_per_peer: positiveInt,
    max_connections: positiveInt,
  }).strict(),
}).strict();

/** A validated `policy.yaml`. */
export type Policy = z.infer<typeof PolicySchema>;

/**
 * Single-file rules: the replay window invariant of contracts.md
 * (`nonce_retention_minutes > 2 x timestamp_tolerance_minutes`) and the
 * orderings the code relies on.
 */
export function policyRules(p: Policy): RuleIssue[] {
  const issues: RuleIssue[] = [];
  const { timestamp_tolerance_minutes: tol, nonce_retention_minutes: ret } = p.security;
  if (!(ret > 2 * tol)) {
    issues.push({
      path: ["security", "nonce_retention_minutes"],
      message: `must be more than 2 x timestamp_tolerance_minutes (${tol}), got ${ret}: ` +
        `a nonce forgotten while its timestamp is still accepted can be replayed`,
    });
  }
  const server = p.server;
  if (server.max_connections_per_peer > server.max_connections) {
    issues.push({
      path: ["server", "max_connections_per_peer"],
      message: `cannot exceed max_connections (${server.max_connections}), ` +
        `got ${server.max_connections_per_peer}`,
    });
  }
  for (const [name, limit] of Object.entries(p.rate_limits.outbound)) {
    if (limit.per_minute > limit.per_hour) {
      issues.push({
        path: ["rate_limits", "outbound", name, "per_minute"],
        message: `per_minute (${limit.per_minute}) cannot exceed per_hour (${limit.per_hour})`,
      });
    }
  }
  const inbound = p.rate_limits.inbound.others;
  if (inbound.per_minute > inbound.per_hour) {
    issues.push({
      path: ["rate_limits", "inbound", "others", "per_minute"],
      message: `per_minute (${inbound.per_minute}) cannot exceed per_hour (${inbound.per_hour})`,
    });
  }
  issues.push(...deviceClassIssues(p.iot));
  const f = p.iot.flapping;
  if (f.suppress_transitions <= f.flapping_transitions) {
    issues.push({
      path: ["iot", "flapping", "suppress_transitions"],
      message:
        `must be more than flapping_transitions (${f.flapping_transitions}), got ${f.suppress_transitions}`,
    });
  }
  p.iot.confirmation.alert_minutes.forEach((m, i, all) => {
    if (i === 0 && m !== 0) {
      issues.push({
        path: ["iot", "confirmation", "alert_minutes", 0],
        message: `the first critical alert goes out at once: must be 0, got ${m} ` +
          `(e.g. [0, 5, 15])`,
      });
    }
    if (i > 0 && m <= all[i - 1]!) {
      issues.push({
        path: ["iot", "confirmation", "alert_minutes", i],
        message: `alert times must increase, got ${m} after ${all[i - 1]}`,
      });
    }
  });
  if (p.outbox.retry.initial_seconds > p.outbox.retry.max_seconds) {
    issues.push({
      path: ["outbox", "retry", "initial_seconds"],
      message:
        `cannot exceed max_seconds (${p.outbox.retry.max_seconds}), got ${p.outbox.retry.initial_seconds}`,
    });
  }
  if (p.ingest.max_event_bytes > p.security.max_body_bytes) {
    issues.push({
      path: ["ingest", "max_event_bytes"],
      message: `cannot exceed security.max_body_bytes (${p.security.max_body_bytes}), ` +
        `got ${p.ingest.max_event_bytes}`,
    });
  }
  const nh = p.nebula_health;
  if (nh.lighthouse_ping_timeout_ms >= nh.check_interval_seconds * 1000) {
    issues.push({
      path: ["nebula_health", "lighthouse_ping_timeout_ms"],
      message: `must be less than check_interval_seconds (${nh.check_interval_seconds} s), got ` +
        `${nh.lighthouse_ping_timeout_ms} ms: a check must end before the next begins`,
    });
  }
  const w = p.watch;
  if (w.house_silent_seconds < 2 * w.heartbeat_seconds) {
    issues.push({
      path: ["watch", "house_silent_seconds"],
      message: `must be at least 2 x heartbeat_seconds (${2 * w.heartbeat_seconds}), got ` +
        `${w.house_silent_seconds}: one late heartbeat must not raise "house silent"`,
    });
  }
  w.cert_warn_days.forEach((d, i, all) => {
    if (i > 0 && d >= all[i - 1]!) {
      issues.push({
        path: ["watch", "cert_warn_days", i],
        message: `warning days must decrease (e.g. [30, 7, 1]), got ${d} after ${all[i - 1]}`,
      });
    }
  });
  const names = new Set<string>();
  p.content.blocked_patterns.forEach((bp, i) => {
    if (names.has(bp.name)) {
      issues.push({
        path: ["content", "blocked_patterns", i, "name"],
        message: `pattern name ${JSON.stringify(bp.name)} is used twice`,
      });
    }
    names.add(bp.name);
  });
  return issues;
}

/**
 * `iot.critical_device_types` and `iot.device_classes` name classes that
 * exist: a critical class no name's words tell and no pattern maps to makes
 * no item critical, and a pattern mapping items to a class no rule knows
 * (`"Rauchmelder_*": smok`) would silence the alarms it was written for.
 */
function deviceClassIssues(iot: Policy["iot"]): RuleIssue[] {
  const issues: RuleIssue[] = [];
  const critical = new Set(iot.critical_device_types);
  const mapped = new Set(Object.values(iot.device_classes));
  const examples = `e.g. ${ALARM_CLASSES.join(", ")}`;
  iot.critical_device_types.forEach((t, i) => {
    if (KNOWN_CLASSES.has(t) || mapped.has(t)) return;
    issues.push({
      path: ["iot", "critical_device_types", i],
      message: `${JSON.stringify(t)} is no device class, so no item would ever be critical by ` +
        `it: use a class joi reads from item names (${examples}), or map items to it in ` +
        `iot.device_classes`,
    });
  });
  for (const [glob, cls] of Object.entries(iot.device_classes)) {
    if (KNOWN_CLASSES.has(cls) || critical.has(cls)) continue;
    issues.push({
      path: ["iot", "device_classes", glob],
      message: `${JSON.stringify(cls)} is no device class joi knows and not in ` +
        `iot.critical_device_types: items matching ${JSON.stringify(glob)} would be of a class ` +
        `nothing acts on (${examples}; a class of your own must be listed as critical)`,
    });
  }
  return issues;
}
