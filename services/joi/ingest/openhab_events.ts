/**
 * openHAB's own bus events (`{topic, type, payload}`, payload a JSON string)
 * normalized into {@link DeviceEvent}s. Shapes and value encodings are those of
 * `design/openhab.md`: item events (`state`, `stateupdated`, `statechanged`,
 * `command`, group member events with five topic segments), thing status
 * (`statuschanged` with a `[new, old]` array), and channel triggers.
 *
 * @module
 */
import { IngestError } from "./errors.ts";
import type { DeviceEvent, EventKind } from "./types.ts";
import { cleanIdentifier } from "./identifier.ts";
import { cleanUntrusted } from "./untrusted.ts";
import { type DeviceClassifier, WORDS_ONLY } from "../../common/device_classes.ts";

/** One event of openHAB's bus as the REST stream delivers it. */
export interface BusEvent {
  /** e.g. `openhab/items/Kitchen_Smoke/statechanged`. */
  topic: string;
  /** The JSON-encoded payload. */
  payload: string;
  /** e.g. `ItemStateChangedEvent`. */
  type: string;
}

/** A decoded openHAB value. */
export interface DecodedValue {
  /** Normalized state; null for NULL/UNDEF (unknown). */
  state: string | null;
  /** Numeric value, for numbers and quantities. */
  value?: number;
  /** Unit of a quantity. */
  unit?: string;
  /** True for values that must not be stored at all (Raw images). */
  drop?: boolean;
  /** True for free text (String items, unknown types): untrusted, never an instruction. */
  free?: boolean;
}

const ENUM_TYPES = new Set([
  "OnOff",
  "OpenClosed",
  "UpDown",
  "StopMove",
  "PlayPause",
  "RewindFastforward",
  "NextPrevious",
  "IncreaseDecrease",
]);

/** Longest trigger event kept (characters, after cleaning). */
const TRIGGER_MAX = 64;

const QUANTITY = /^\s*(-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?)\s*(\S.{0,15})?\s*$/u;

/**
 * Decodes an openHAB `(type, value)` pair. `stringMax` bounds String items.
 * Throws {@link IngestError} naming `field` for a value its type cannot hold.
 */
export function decodeValue(
  type: string,
  raw: unknown,
  field: string,
  stringMax: number,
): DecodedValue {
  if (raw === null || raw === undefined) return { state: null };
  if (typeof raw === "number" && Number.isFinite(raw)) return { state: String(raw), value: raw };
  if (typeof raw === "boolean") return { state: raw ? "ON" : "OFF" };
  if (typeof raw !== "string") {
    throw new IngestError(`expected a string value, got ${typeof raw}`, { field });
  }
  const v = raw.trim();
  if (type === "UnDef" || v === "NULL" || v === "UNDEF") return { state: null };
  if (type === "Raw") return { state: null, drop: true };
  if (ENUM_TYPES.has(type)) {
    if (!/^[A-Za-z_]{1,32}$/.test(v)) {
      throw new IngestError(`"${cleanUntrusted(v, 40)}" is not a ${type} value`, { field });
    }
    return { state: v.toUpperCase() };
  }
  if (type === "Percent" || type === "Decimal") {
    const n = Number(v);
    if (v === "" || !Number.isFinite(n)) {
      throw new IngestError(`"${cleanUntrusted(v, 40)}" is not a ${type} number`, { field });
    }
    return { state: String(n), value: n };
  }
  if (type === "Quantity") {
    const m = QUANTITY.exec(v);
    if (!m) {
      throw new IngestError(
        `"${cleanUntrusted(v, 40)}" is not a quantity ("21.5 °C", "2 kWh")`,
        { field },
      );
    }
    const n = Number(m[1]);
    const unit = m[2] ? cleanUntrusted(m[2], 16) : undefined;
    return { state: unit ? `${n} ${unit}` : String(n), value: n, ...(unit ? { unit } : {}) };
  }
  if (type === "DateTime") {
    const iso = v.replace(/([+-]\d\d)(\d\d)$/, "$1:$2").replace(/\[.*\]$/, "");
    const t = Date.parse(iso);
    if (!Number.isFinite(t)) {
      throw new IngestError(`"${cleanUntrusted(v, 40)}" is not a DateTime`, { field });
    }
    return { state: new Date(t).toISOString() };
  }
  if (type === "Point" || type === "HSB") {
    const parts = v.split(",");
    if (parts.length < 2 || parts.length > 3 || parts.some((p) => !Number.isFinite(Number(p)))) {
      throw new IngestError(`"${cleanUntrusted(v, 40)}" is not a ${type} value`, { field });
    }
    return { state: parts.map((p) => String(Number(p))).join(",") };
  }
  // String and anything unknown: untrusted text
  return { state: cleanUntrusted(v, stringMax), free: true };
}

function parsePayload(event: BusEvent, field: string): unknown {
  try {
    return JSON.parse(event.payload);
  } catch {
    throw new IngestError("payload is not valid JSON (openHAB sends it as a JSON string)", {
      field: `${field}.payload`,
    });
  }
}

function asRecord(x: unknown, field: string): Record<string, unknown> {
  if (typeof x !== "object" || x === null || Array.isArray(x)) {
    throw new IngestError("expected a JSON object", { field });
  }
  return x as Record<string, unknown>;
}

const ITEM_ACTIONS: Record<string, EventKind | undefined> = {
  state: "state",
  stateupdated: "state",
  statechanged: "state",
  command: "command",
};

/** Context shared by every event of one request. */
export interface BusContext {
  eventId: string;
  source: string;
  receivedAt: number;
  stringMax: number;
  /** Item filter refusal; a refused item is skipped, never stored. */
  refuse: (item: string) => string | null;
  /** Device classes (policy `iot.device_classes`); default: names' words only. */
  classes?: DeviceClassifier | undefined;
}

/** Result of {@link normalizeBusEvent}: events, or why the event was skipped. */
export interface BusResult {
  events: DeviceEvent[];
  skipped?: string;
}

/**
 * Normalizes one bus event. Throws {@link IngestError} for malformed input;
 * returns `skipped` for well-formed events joi does not use (blocked items,
 * Raw images, item added/removed events, predictions).
 */
export function normalizeBusEvent(event: BusEvent, field: string, ctx: BusContext): BusResult {
  const segs = event.topic.split("/");
  if (segs[0] !== "openhab" || segs.length < 4 || segs.some((s) => s === "")) {
    throw new IngestError(
      `"${cleanUntrusted(event.topic, 80)}" is not an openHAB topic ` +
        `(openhab/items/<item>/<action>, openhab/things/<uid>/<action>, ` +
        `openhab/channels/<uid>/triggered)`,
      { field: `${field}.topic` },
    );
  }
  // from here on segs has at least four non-empty segments
  const base = { eventId: ctx.eventId, endpoint: "events" as const, source: ctx.source };
  const at = ctx.receivedAt;
  if (segs[1] === "items") {
    if (segs.length > 5) {
      throw new IngestError("item topics have 4 or 5 segments", { field: `${field}.topic` });
    }
    const action = segs.at(-1)!;
    const group = segs.length === 5 ? segs[2] : undefined;
    const item = segs.length === 5 ? segs[3]! : segs[2]!;
    const kind = ITEM_ACTIONS[action];
    if (!kind) {
      return { events: [], skipped: `item action "${cleanIdentifier(action, 32)}" unused` };
    }
    for (const name of group ? [group, item] : [item]) {
      const why = ctx.refuse(name);
      if (why) return { events: [], skipped: why };
    }
    const p = asRecord(parsePayload(event, field), `${field}.payload`);
    if (typeof p.type !== "string") {
      throw new IngestError('missing the value type ("type")', { field: `${field}.payload.type` });
    }
    const decoded = decodeValue(p.type, p.value, `${field}.payload.value`, ctx.stringMax);
    if (decoded.drop) return { events: [], skipped: "raw value dropped" };
    let previous: string | null | undefined;
    if (action === "statechanged" && typeof p.oldType === "string") {
      try {
        previous = decodeValue(p.oldType, p.oldValue, `${field}.payload.oldValue`, ctx.stringMax)
          .state;
      } catch {
        // the previous value is informational: an odd one never refuses the event
      }
    }
    // a group event reports the change of one member: the member is the device
    // (its own event and its group's are one physical device); the group's class
    // comes with it, as the relay reads it (device_classes.ts)
    const device = cleanIdentifier(item);
    const groupName = group === undefined ? undefined : cleanIdentifier(group);
    const { deviceType, groupType } = (ctx.classes ?? WORDS_ONLY).itemClasses(
      device,
      groupName,
      p.type,
    );
    return {
      events: [{
        ...base,
        device,
        deviceType,
        ...(groupName !== undefined ? { group: groupName } : {}),
        ...(groupType !== undefined ? { groupType } : {}),
        kind,
        state: decoded.state,
        ...(previous !== undefined ? { previousState: previous } : {}),
        ...(decoded.value !== undefined ? { value: decoded.value } : {}),
        ...(decoded.unit ? { unit: decoded.unit } : {}),
        ...(decoded.free ? { freeText: true } : {}),
        observedAt: at,
        receivedAt: at,
      }],
    };
  }
  if (segs[1] === "things") {
    if (segs.length !== 4) {
      throw new IngestError("thing topics have 4 segments", { field: `${field}.topic` });
    }
    const action = segs[3]!;
    if (action !== "statuschanged" && action !== "status") {
      return { events: [], skipped: `thing action "${cleanIdentifier(action, 32)}" unused` };
    }
    const payload = parsePayload(event, field);
    let now: Record<string, unknown>;
    let old: Record<string, unknown> | undefined;
    if (Array.isArray(payload)) {
      if (payload.length !== 2) {
        throw new IngestError("a status change is a [new, old] array", {
          field: `${field}.payload`,
        });
      }
      now = asRecord(payload[0], `${field}.payload[0]`);
      old = asRecord(payload[1], `${field}.payload[1]`);
    } else {
      now = asRecord(payload, `${field}.payload`);
    }
    const status = (r: Record<string, unknown>, f: string): string => {
      if (typeof r.status !== "string" || !/^[A-Z_]{2,20}$/.test(r.status)) {
        throw new IngestError("expected a thing status (ONLINE, OFFLINE, UNKNOWN, ...)", {
          field: f,
        });
      }
      return r.status;
    };
    const device = cleanIdentifier(segs[2]!);
    const state = status(now, `${field}.payload[0].status`);
    return {
      events: [{
        ...base,
        device,
        deviceType: "thing",
        kind: "thing_status",
        state: state === "UNKNOWN" ? null : state,
        ...(old ? { previousState: status(old, `${field}.payload[1].status`) } : {}),
        ...(typeof now.description === "string"
          ? { label: cleanUntrusted(now.description, ctx.stringMax) }
          : {}),
        observedAt: at,
        receivedAt: at,
      }],
    };
  }
  if (segs[1] === "channels") {
    if (segs.length !== 4 || segs[3] !== "triggered") {
      throw new IngestError("channel topics are openhab/channels/<uid>/triggered", {
        field: `${field}.topic`,
      });
    }
    const p = asRecord(parsePayload(event, field), `${field}.payload`);
    // a trigger's event is any string the binding chooses (PRESSED, 1002.0, "x y",
    // on-press, empty): untrusted text, bounded and cleaned, never an enum
    if (typeof p.event !== "string") {
      throw new IngestError("expected the trigger's event as a string", {
        field: `${field}.payload.event`,
      });
    }
    const device = cleanIdentifier(segs[2]!);
    return {
      events: [{
        ...base,
        device,
        deviceType: "trigger",
        kind: "trigger",
        state: cleanUntrusted(p.event, TRIGGER_MAX) || "(empty)",
        freeText: true,
        observedAt: at,
        receivedAt: at,
      }],
    };
  }
  return { events: [], skipped: `topic kind "${cleanIdentifier(segs[1]!, 32)}" unused` };
}
