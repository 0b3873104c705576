/**
 * The fixed texts of critical alerts, malfunction warnings and demoted
 * reminders. They need no LLM, so a dead LLM never delays an alarm. The only
 * foreign text they carry is a device identifier (already reduced to
 * `[\p{L}\p{N}_\-.:@]`) and labels cleaned and quoted by
 * {@link ../ingest/untrusted.ts}.
 *
 * @module
 */
import type { LocalTime } from "../../common/local_time.ts";
import type { AlarmRecord } from "./alarms.ts";
import type { GuardAction } from "./flood.ts";

const NAMES: Record<string, string> = {
  smoke: "Smoke",
  fire: "Fire",
  co: "Carbon monoxide",
  gas: "Gas",
  water_leak: "Water leak",
  security_breach: "Security breach",
  intrusion: "Intrusion",
  storm: "Storm",
  medical: "Medical emergency",
};

/** A human name for a device or alert type. */
export function typeName(t: string): string {
  return NAMES[t] ?? t.replace(/_/g, " ");
}

/**
 * The critical alert text of a guard action. The time is the household's
 * (`at 15:28`, with the date when it is not today).
 */
export function criticalAlertText(
  a: Extract<GuardAction, { type: "critical_alert" }>,
  time: LocalTime,
  ackWord: string,
  now: number = a.observedAt,
): string {
  const what = typeName(a.deviceType);
  const where = a.device.startsWith("alert:") ? "" : ` by ${a.device}`;
  const label = a.label ? ` ${a.label.startsWith("“") ? a.label : `“${a.label}”`}` : "";
  const n = a.alertsMax > 1 ? ` Alert ${a.alertNumber} of ${a.alertsMax}.` : "";
  const state = a.device.startsWith("alert:") ? "" : ` (state ${a.state})`;
  return `ALERT: ${what}${where}${state}${label} ${at(a.observedAt, time, now)}.${n}` +
    ` Reply "${ackWord}" to acknowledge.`;
}

/** The reminder sent to the direct channel after the last critical alert. */
export function demotedReminderText(a: Extract<GuardAction, { type: "demoted_reminder" }>): string {
  return `I've sent ${a.alertsSent} alerts about ${typeName(a.deviceType).toLowerCase()} at ` +
    `${a.device}. Please check or acknowledge.`;
}

/** The one warning about a flapping device. */
export function malfunctionText(
  a: Extract<GuardAction, { type: "malfunction" }>,
  windowMinutes: number,
): string {
  return `Possible sensor malfunction: ${a.device} changed state ${a.transitions} times within ` +
    `${windowMinutes} minutes. I will ignore it until it settles.`;
}

/** The prefix of a critical alert delivered late (mesh was unreachable). */
export function delayedPrefix(createdAt: number, time: LocalTime, now: number): string {
  return `[delayed; first raised ${at(createdAt, time, now)}] `;
}

/** `at 15:28` today, else `yesterday at 23:10`, `Sat 28 Mar at 09:05`. */
function at(ms: number, time: LocalTime, now: number): string {
  const day = time.day(ms, now);
  return day === time.day(now, now) ? `at ${time.clock(ms)}` : time.when(ms, now);
}

/** The reply to an acknowledgement: which alarms it stopped (device and household time). */
export function acknowledgedText(
  alarms: readonly AlarmRecord[],
  time: LocalTime,
  now: number,
): string {
  const each = alarms.map((a) =>
    `${typeName(a.deviceType)} at ${a.device} (raised ${at(a.startedAt, time, now)})`
  );
  const what = alarms.length === 1 ? "alarm" : `${alarms.length} alarms`;
  return `Acknowledged ${what}: ${each.join("; ")}. No more reminders about ${
    alarms.length === 1 ? "it" : "them"
  } unless ${alarms.length === 1 ? "it triggers" : "one triggers"} again.`;
}
