/**
 * IoT flood protection, per device (contracts.md, "IoT flood protection"):
 *
 * - deduplication: a report of the state the device is already in is dropped;
 * - transition counting over a sliding window: more than
 *   `flapping_transitions` marks the device flapping (one "possible sensor
 *   malfunction" message, then silence until the window passes); more than
 *   `suppress_transitions` is suppressed with a security warning;
 * - the confirmation loop of critical device types: critical alerts at
 *   `alert_minutes` (0, 5, 15) while unacknowledged, then one reminder demoted
 *   to the direct channel; an owner's acknowledgement stops it; the device
 *   returning to a clear state resets it.
 *
 * State lives in SQLite (one row per device, in the caller's database), so a
 * restart neither forgets an alarm nor repeats one. The guard is the only
 * writer of its table and keeps a write-through cache: a duplicate report
 * costs no I/O. {@link FloodGuard.tick} fires the loop's timers when no event
 * arrives; the caller drives it with a real or a test clock.
 *
 * @module
 */
import type { DatabaseSync, StatementSync } from "node:sqlite";
import type { DeviceEvent } from "../ingest/types.ts";
import type { Logger } from "../../common/log.ts";
import { AlarmLog, type AlarmRecord } from "./alarms.ts";
import type { Policy } from "../../common/policy/policy.ts";

/** policy.yaml `iot`, as the guard uses it (its rules are checked at load). */
export type IotPolicy = Policy["iot"];

/** What the guard decided about one event or timer. */
export type GuardAction =
  | {
    type: "critical_alert";
    device: string;
    deviceType: string;
    state: string;
    label?: string;
    /** 1-based number of this alert in its confirmation loop (1 for one-shot alerts). */
    alertNumber: number;
    /** Alerts the loop sends at most (1 for alert types without a loop). */
    alertsMax: number;
    /** When the triggered state began (ms). */
    triggeredAt: number;
    /** When the device observed it (ms). */
    observedAt: number;
    /** The alarm this alert belongs to (the alarm record, `alarms.ts`). */
    alarmId: number;
  }
  | {
    type: "demoted_reminder";
    device: string;
    deviceType: string;
    alertsSent: number;
    triggeredAt: number;
  }
  | { type: "malfunction"; device: string; deviceType: string; transitions: number }
  | { type: "cleared"; device: string; deviceType: string; event: DeviceEvent }
  | { type: "context"; event: DeviceEvent };

/** One device's persisted state, as {@link FloodGuard.devices} reports it. */
export interface DeviceState {
  device: string;
  deviceType: string;
  state: string | null;
  stateAt: number | null;
  /** Transition times inside the window, oldest first (bounded). */
  transitions: number[];
  flapping: boolean;
  suppressed: boolean;
  malfunctionSentAt: number | null;
  suppressWarnedAt: number | null;
  /** A critical triggered state is active. */
  alerting: boolean;
  alertStartedAt: number | null;
  alertsSent: number;
  nextAlertAt: number | null;
  acknowledgedAt: number | null;
  demoted: boolean;
  /** Alerts with an end time (weather, alert endpoint) clear themselves then. */
  clearAt: number | null;
  /** When confirmation loops began inside the window (caps re-triggers of a bouncing device). */
  loopStarts: number[];
  label: string | null;
  updatedAt: number;
  /** The current alarm's id in the alarm record, while one is active. */
  alarmId: number | null;
}

const SCHEMA = `
CREATE TABLE IF NOT EXISTS guard_devices (
  device TEXT PRIMARY KEY,
  device_type TEXT NOT NULL,
  state TEXT,
  state_at INTEGER,
  transitions TEXT NOT NULL DEFAULT '[]',
  flapping INTEGER NOT NULL DEFAULT 0,
  suppressed INTEGER NOT NULL DEFAULT 0,
  malfunction_sent_at INTEGER,
  suppress_warned_at INTEGER,
  alerting INTEGER NOT NULL DEFAULT 0,
  alert_started_at INTEGER,
  alerts_sent INTEGER NOT NULL DEFAULT 0,
  next_alert_at INTEGER,
  acknowledged_at INTEGER,
  demoted INTEGER NOT NULL DEFAULT 0,
  clear_at INTEGER,
  loop_starts TEXT NOT NULL DEFAULT '[]',
  label TEXT,
  updated_at INTEGER NOT NULL,
  alarm_id INTEGER
);
CREATE INDEX IF NOT EXISTS guard_devices_due ON guard_devices(next_alert_at)
  WHERE next_alert_at IS NOT NULL;
CREATE INDEX IF NOT EXISTS guard_devices_clear ON guard_devices(clear_at)
  WHERE clear_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS guard_group_members (
  grp TEXT NOT NULL,
  member TEXT NOT NULL,
  PRIMARY KEY (grp, member)
) WITHOUT ROWID;
`;

/** Creates the guard's tables in `db` (idempotent; adds columns a older joi lacked). */
export function ensureGuardSchema(db: DatabaseSync): void {
  db.exec(SCHEMA);
  const cols = (db.prepare("PRAGMA table_info(guard_devices)").all() as Row[]).map((r) =>
    String(r.name)
  );
  if (!cols.includes("alarm_id")) db.exec("ALTER TABLE guard_devices ADD COLUMN alarm_id INTEGER");
}

type Row = Record<string, unknown>;

const ALL_DEVICES = "SELECT * FROM guard_devices ORDER BY device";

function fromRow(r: Row): DeviceState {
  const n = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    device: String(r.device),
    deviceType: String(r.device_type),
    state: r.state === null ? null : String(r.state),
    stateAt: n(r.state_at),
    transitions: JSON.parse(String(r.transitions)),
    flapping: Number(r.flapping) === 1,
    suppressed: Number(r.suppressed) === 1,
    malfunctionSentAt: n(r.malfunction_sent_at),
    suppressWarnedAt: n(r.suppress_warned_at),
    alerting: Number(r.alerting) === 1,
    alertStartedAt: n(r.alert_started_at),
    alertsSent: Number(r.alerts_sent),
    nextAlertAt: n(r.next_alert_at),
    acknowledgedAt: n(r.acknowledged_at),
    demoted: Number(r.demoted) === 1,
    clearAt: n(r.clear_at),
    loopStarts: JSON.parse(String(r.loop_starts ?? "[]")),
    label: r.label === null ? null : String(r.label),
    updatedAt: Number(r.updated_at),
    alarmId: n(r.alarm_id),
  };
}

/** Options of {@link FloodGuard}. */
export interface FloodGuardOptions {
  db: DatabaseSync;
  /** The alarm record over the same database (default: one of its own). */
  alarms?: AlarmLog | undefined;
  policy: IotPolicy;
  log: Logger;
}

/** Per-device flood protection and the critical confirmation loop. */
export class FloodGuard {
  #db: DatabaseSync;
  #p: IotPolicy;
  #log: Logger;
  #cache = new Map<string, DeviceState>();
  #clear: Set<string>;
  #criticalDevices: Set<string>;
  #criticalAlerts: Set<string>;
  #windowMs: number;
  #keep: number;
  #upsert: StatementSync;
  #get: StatementSync;
  #all: StatementSync;
  /** Devices whose timers are due: run by {@link tick} every second, so prepared once. */
  #due: StatementSync;
  #addMember: StatementSync;
  /** group -> members and member -> groups, learned from group item events. */
  #members = new Map<string, Set<string>>();
  #groupsOf = new Map<string, Set<string>>();
  /** The alarm record (one row per confirmation loop, the messages that carried it). */
  readonly alarms: AlarmLog;

  constructor(options: FloodGuardOptions) {
    this.#db = options.db;
    this.#p = options.policy;
    this.#log = options.log;
    ensureGuardSchema(this.#db);
    this.#clear = new Set(options.policy.clear_states.map((s) => s.toUpperCase()));
    this.#criticalDevices = new Set(options.policy.critical_device_types);
    this.#criticalAlerts = new Set(options.policy.critical_alert_types);
    this.#windowMs = options.policy.flapping.window_minutes * 60_000;
    this.#keep = options.policy.flapping.suppress_transitions + 1;
    this.#get = this.#db.prepare("SELECT * FROM guard_devices WHERE device = ?");
    this.#all = this.#db.prepare(ALL_DEVICES);
    this.#due = this.#db.prepare(
      "SELECT device FROM guard_devices WHERE (next_alert_at IS NOT NULL AND next_alert_at <= ?) " +
        "OR (clear_at IS NOT NULL AND clear_at <= ?)",
    );
    this.alarms = options.alarms ?? new AlarmLog(this.#db);
    this.#addMember = this.#db.prepare(
      "INSERT OR IGNORE INTO guard_group_members (grp, member) VALUES (?, ?)",
    );
    for (
      const r of this.#db.prepare("SELECT grp, member FROM guard_group_members").all() as Row[]
    ) {
      this.#learn(String(r.grp), String(r.member));
    }
    this.#upsert = this.#db.prepare(`
      INSERT INTO guard_devices (device, device_type, state, state_at, transitions, flapping,
        suppressed, malfunction_sent_at, suppress_warned_at, alerting, alert_started_at,
        alerts_sent, next_alert_at, acknowledged_at, demoted, clear_at, loop_starts, label,
        updated_at, alarm_id)
      VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT(device) DO UPDATE SET device_type = excluded.device_type,
        state = excluded.state, state_at = excluded.state_at,
        transitions = excluded.transitions, flapping = excluded.flapping,
        suppressed = excluded.suppressed, malfunction_sent_at = excluded.malfunction_sent_at,
        suppress_warned_at = excluded.suppress_warned_at, alerting = excluded.alerting,
        alert_started_at = excluded.alert_started_at, alerts_sent = excluded.alerts_sent,
        next_alert_at = excluded.next_alert_at, acknowledged_at = excluded.acknowledged_at,
        demoted = excluded.demoted, clear_at = excluded.clear_at,
        loop_starts = excluded.loop_starts, label = excluded.label,
        updated_at = excluded.updated_at, alarm_id = excluded.alarm_id`);
  }

  /** True when `deviceType` gets the confirmation loop. */
  isCriticalDevice(deviceType: string): boolean {
    return this.#criticalDevices.has(deviceType);
  }

  /**
   * True when an event of this kind/type goes to the critical group: its
   * device's class is critical, or its group's (a group item event), or it is
   * a critical alert type.
   */
  isCritical(
    ev: Pick<DeviceEvent, "kind" | "deviceType" | "alertType" | "groupType">,
  ): boolean {
    if (this.#criticalDevices.has(ev.deviceType)) return true;
    if (ev.groupType !== undefined && this.#criticalDevices.has(ev.groupType)) return true;
    return ev.kind === "alert" && ev.alertType !== undefined &&
      this.#criticalAlerts.has(ev.alertType);
  }

  /**
   * The class a device gets from an event: its own when critical, else its
   * group's when that is critical, else its own; a critical class learned
   * before (from a group) is kept when the device's own name tells none.
   */
  #typeOf(ev: DeviceEvent, existing: DeviceState | undefined): string {
    if (this.#criticalDevices.has(ev.deviceType)) return ev.deviceType;
    if (ev.groupType !== undefined && this.#criticalDevices.has(ev.groupType)) {
      return ev.groupType;
    }
    if (existing && this.#criticalDevices.has(existing.deviceType)) return existing.deviceType;
    return ev.deviceType;
  }

  #learn(group: string, member: string): boolean {
    let m = this.#members.get(group);
    if (!m) this.#members.set(group, m = new Set());
    if (m.has(member)) return false;
    m.add(member);
    let g = this.#groupsOf.get(member);
    if (!g) this.#groupsOf.set(member, g = new Set());
    g.add(group);
    return true;
  }

  /**
   * Whether an alarm of `device` is already covered by a related device's
   * active loop: a group whose member is alerting, or a member whose group is
   * alerting with a loop of its own (an alarm raised for a group item whose
   * members were not known yet). One physical device, one alarm.
   */
  #coveredBy(device: string): string | undefined {
    for (const member of this.#members.get(device) ?? []) {
      if (this.#load(member)?.alerting) return member;
    }
    for (const group of this.#groupsOf.get(device) ?? []) {
      if (this.#load(group)?.alerting) return group;
    }
    return undefined;
  }

  /** True when `state` is one of the policy's clear states. */
  isClear(state: string): boolean {
    return this.#clear.has(state.toUpperCase());
  }

  #load(device: string): DeviceState | undefined {
    let s = this.#cache.get(device);
    if (s) return s;
    const row = this.#get.get(device) as Row | undefined;
    if (!row) return undefined;
    s = fromRow(row);
    this.#cache.set(device, s);
    return s;
  }

  #save(s: DeviceState): void {
    this.#upsert.run(
      s.device,
      s.deviceType,
      s.state,
      s.stateAt,
      JSON.stringify(s.transitions),
      s.flapping ? 1 : 0,
      s.suppressed ? 1 : 0,
      s.malfunctionSentAt,
      s.suppressWarnedAt,
      s.alerting ? 1 : 0,
      s.alertStartedAt,
      s.alertsSent,
      s.nextAlertAt,
      s.acknowledgedAt,
      s.demoted ? 1 : 0,
      s.clearAt,
      JSON.stringify(s.loopStarts),
      s.label,
      s.updatedAt,
      s.alarmId,
    );
    this.#cache.set(s.device, s);
  }

  /** Drops the cache (after a rolled-back transaction, the rows are the truth). */
  invalidate(): void {
    this.#cache.clear();
  }

  #fresh(ev: DeviceEvent, now: number): DeviceState {
    return {
      device: ev.device,
      deviceType: ev.deviceType,
      state: null,
      stateAt: null,
      transitions: [],
      flapping: false,
      suppressed: false,
      malfunctionSentAt: null,
      suppressWarnedAt: null,
      alerting: false,
      alertStartedAt: null,
      alertsSent: 0,
      nextAlertAt: null,
      acknowledgedAt: null,
      demoted: false,
      clearAt: null,
      loopStarts: [],
      label: null,
      updatedAt: now,
      alarmId: null,
    };
  }

  #resetAlert(s: DeviceState, now: number): void {
    if (s.alarmId !== null) this.alarms.clear(s.alarmId, now);
    s.alarmId = null;
    s.alerting = false;
    s.alertStartedAt = null;
    s.alertsSent = 0;
    s.nextAlertAt = null;
    s.acknowledgedAt = null;
    s.demoted = false;
    s.clearAt = null;
  }

  /** Minutes of the confirmation loop for a device type (one alert for alert types). */
  #schedule(deviceType: string): number[] {
    return this.#criticalDevices.has(deviceType) ? this.#p.confirmation.alert_minutes : [0];
  }

  /**
   * Decides what one event causes. Must run inside the caller's transaction
   * when its actions are enqueued, so state and messages commit together.
   * `expiresAt` is an alert's end time, if it has one.
   */
  observe(ev: DeviceEvent, now: number, expiresAt?: number): GuardAction[] {
    if (ev.state === null) return []; // NULL/UNDEF: unknown, never a state change
    if (ev.group !== undefined && this.#learn(ev.group, ev.device)) {
      this.#addMember.run(ev.group, ev.device);
    }
    const existing = this.#load(ev.device);
    const type = this.#typeOf(ev, existing);
    const critical = this.#criticalDevices.has(type) || this.isCritical(ev);
    const changed = !existing || existing.state !== ev.state;
    // a report of the state the device is in is dropped, unless it is a critical
    // triggered state with no loop yet (the device's class was just learned from
    // its group, or a flapping spell kept the loop from starting)
    const untriggered = critical && !this.isClear(ev.state) && existing !== undefined &&
      !existing.alerting;
    if (this.#p.dedup && !changed && !untriggered) return [];
    const s = existing
      ? {
        ...existing,
        transitions: [...existing.transitions],
        loopStarts: [...existing.loopStarts],
      }
      : this.#fresh(ev, now);
    s.deviceType = type;
    const first = !existing || existing.state === null;
    const cutoff = now - this.#windowMs;
    s.transitions = s.transitions.filter((t) => t > cutoff);
    // the first report of a device is its initial state, not a transition
    if (!first && changed) s.transitions.push(now);
    if (s.transitions.length > this.#keep) s.transitions = s.transitions.slice(-this.#keep);
    s.state = ev.state;
    s.stateAt = ev.observedAt;
    s.updatedAt = now;
    if (ev.label !== undefined) s.label = ev.label;
    const count = s.transitions.length;
    const f = this.#p.flapping;
    const actions: GuardAction[] = [];

    if (count > f.flapping_transitions) {
      if (!s.flapping) {
        s.flapping = true;
        s.nextAlertAt = null; // a malfunctioning device's loop goes silent
      }
      if (count > f.suppress_transitions && !s.suppressed) {
        s.suppressed = true;
        s.suppressWarnedAt = now;
        this.#log.security("iot_device_suppressed", {
          device: s.device,
          device_type: s.deviceType,
          transitions: count,
          window_minutes: f.window_minutes,
        });
      }
      if (s.malfunctionSentAt === null || s.malfunctionSentAt <= cutoff) {
        s.malfunctionSentAt = now;
        actions.push({
          type: "malfunction",
          device: s.device,
          deviceType: s.deviceType,
          transitions: count,
        });
        this.#log.warn("iot_device_flapping", {
          device: s.device,
          device_type: s.deviceType,
          transitions: count,
        });
      }
      this.#save(s);
      return actions;
    }
    if (s.flapping) {
      s.flapping = false;
      s.suppressed = false;
      this.#log.info("iot_device_settled", { device: s.device, transitions: count });
    }

    if (critical) {
      if (this.isClear(ev.state)) {
        const was = s.alerting;
        this.#resetAlert(s, now);
        this.#save(s);
        return was
          ? [{ type: "cleared", device: s.device, deviceType: s.deviceType, event: ev }]
          : [
            { type: "context", event: ev },
          ];
      }
      if (!s.alerting) {
        const cover = this.#coveredBy(s.device);
        if (cover !== undefined) {
          // the same physical device already alarms under another name (its group item)
          this.#log.info("iot_alarm_covered", { device: s.device, by: cover });
          this.#save(s);
          return [{ type: "context", event: { ...ev, deviceType: type } }];
        }
        const schedule = this.#schedule(type);
        s.loopStarts = s.loopStarts.filter((t) => t > cutoff);
        const record = { device: s.device, deviceType: type, state: ev.state, label: s.label };
        if (s.loopStarts.length >= schedule.length) {
          // a device re-triggering after quick clears gets no fresh budget in the window
          s.alarmId = this.alarms.open(record, now);
          s.alerting = true;
          s.alertStartedAt = now;
          s.alertsSent = schedule.length;
          s.nextAlertAt = null;
          s.demoted = true;
          this.#log.security("iot_critical_retrigger_capped", {
            device: s.device,
            device_type: s.deviceType,
            loops_in_window: s.loopStarts.length,
          });
          this.#save(s);
          return actions;
        }
        s.loopStarts.push(now);
        s.alarmId = this.alarms.open(record, now);
        s.alerting = true;
        s.alertStartedAt = now;
        s.alertsSent = 1;
        s.acknowledgedAt = null;
        s.demoted = false;
        s.nextAlertAt = schedule.length > 1 ? now + schedule[1]! * 60_000 : null;
        s.clearAt = ev.kind === "alert" ? (expiresAt ?? now + this.#windowMs) : null;
        actions.push({
          type: "critical_alert",
          device: s.device,
          deviceType: s.deviceType,
          state: ev.state,
          ...(s.label ? { label: s.label } : {}),
          alertNumber: 1,
          alertsMax: schedule.length,
          triggeredAt: now,
          observedAt: ev.observedAt,
          alarmId: s.alarmId,
        });
      }
      this.#save(s);
      return actions;
    }
    this.#save(s);
    return [{ type: "context", event: ev }];
  }

  /**
   * Fires due timers at `now`: the loop's next alert, the demoted reminder, the
   * expiry of time-limited alerts. Call it every second or so.
   */
  tick(now: number): GuardAction[] {
    const actions: GuardAction[] = [];
    const due = this.#due.all(now, now) as Row[];
    for (const r of due) {
      const cur = this.#load(String(r.device));
      if (!cur) continue;
      const s = { ...cur };
      if (s.clearAt !== null && s.clearAt <= now) {
        this.#resetAlert(s, now);
        s.state = null; // the next report of this alert is new again
        this.#save(s);
        continue;
      }
      if (!s.alerting || s.acknowledgedAt !== null || s.flapping || s.nextAlertAt === null) {
        s.nextAlertAt = null;
        this.#save(s);
        continue;
      }
      const schedule = this.#schedule(s.deviceType);
      const started = s.alertStartedAt ?? now;
      if (s.alertsSent < schedule.length) {
        s.alertsSent++;
        // a loop begun by an older joi has no alarm record yet
        s.alarmId ??= this.alarms.open(
          { device: s.device, deviceType: s.deviceType, state: s.state ?? "", label: s.label },
          started,
        );
        actions.push({
          type: "critical_alert",
          device: s.device,
          deviceType: s.deviceType,
          state: s.state ?? "",
          ...(s.label ? { label: s.label } : {}),
          alertNumber: s.alertsSent,
          alertsMax: schedule.length,
          triggeredAt: started,
          observedAt: s.stateAt ?? started,
          alarmId: s.alarmId,
        });
        // the next step; after a restart, never a burst of catch-up alerts
        const k = s.alertsSent;
        const at = (i: number): number => schedule[i] ?? 0; // minute 0 before the schedule
        const gap = k < schedule.length ? at(k) - at(k - 1) : at(k - 1) - at(k - 2);
        const planned = k < schedule.length
          ? started + at(k) * 60_000
          : started + (at(k - 1) + gap) * 60_000;
        s.nextAlertAt = Math.max(planned, now + gap * 60_000);
      } else if (!s.demoted) {
        s.demoted = true;
        s.nextAlertAt = null;
        actions.push({
          type: "demoted_reminder",
          device: s.device,
          deviceType: s.deviceType,
          alertsSent: s.alertsSent,
          triggeredAt: started,
        });
      } else {
        s.nextAlertAt = null;
      }
      s.updatedAt = now;
      this.#save(s);
    }
    return actions;
  }

  /**
   * Acknowledges the given alarms (ids of the alarm record) that are still
   * active and unacknowledged: their loops stop. Returns those acknowledged.
   */
  acknowledge(alarmIds: readonly number[], now: number): AlarmRecord[] {
    const out: AlarmRecord[] = [];
    for (const id of new Set(alarmIds)) {
      const a = this.alarms.get(id);
      if (!a || a.clearedAt !== null || a.acknowledgedAt !== null) continue;
      const cur = this.#load(a.device);
      if (cur && cur.alarmId === id) {
        this.#save({ ...cur, acknowledgedAt: now, nextAlertAt: null, updatedAt: now });
      }
      this.alarms.acknowledge(id, now);
      out.push({ ...a, acknowledgedAt: now });
    }
    return out;
  }

  /** Every device's state, for the operator view and health. */
  devices(): DeviceState[] {
    return (this.#all.all() as Row[]).map(fromRow);
  }

  /** One device's state. */
  device(name: string): DeviceState | undefined {
    return this.#load(name);
  }
}

/** Reads device states from a joi database without a guard (the operator view). */
export function readDeviceStates(db: DatabaseSync): DeviceState[] {
  const has = db.prepare(
    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'guard_devices'",
  ).get();
  if (!has) return [];
  return (db.prepare(ALL_DEVICES).all() as Row[]).map(fromRow);
}
