/**
 * The five contract endpoints' bodies -> {@link DeviceEvent}s. The bodies
 * have already passed their zod schema; what remains is mapping, cleaning of
 * untrusted strings and the item filter.
 *
 * @module
 */
import type { z } from "zod";
import type { EndpointSchemas } from "./schemas.ts";
import type { DeviceEvent } from "./types.ts";
import { cleanIdentifier } from "./identifier.ts";
import { cleanUntrusted } from "./untrusted.ts";
import { decodeValue } from "./openhab_events.ts";
import { type DeviceClassifier, WORDS_ONLY } from "../../common/device_classes.ts";
import { IngestError } from "./errors.ts";

/** What normalizing needs besides the body. */
export interface NormalizeContext {
  /** Receive time (ms). */
  receivedAt: number;
  /** `ingest.string_max_chars`. */
  stringMax: number;
  /** Item filter: why `item` is refused, or null. */
  refuse: (item: string) => string | null;
  /** Device classes (policy `iot.device_classes`); default: names' words only. */
  classes?: DeviceClassifier | undefined;
}

type Body<K extends keyof EndpointSchemas> = z.infer<EndpointSchemas[K]>;

/** Result: the events kept, and the items skipped by the filter. */
export interface Normalized {
  events: DeviceEvent[];
  skipped: string[];
}

const UNKNOWN = new Set(["NULL", "UNDEF", "unavailable", "unknown"]);

function stateString(v: string | null, stringMax: number): string | null {
  if (v === null) return null;
  const t = v.trim();
  if (UNKNOWN.has(t)) return null;
  return cleanUntrusted(t, stringMax);
}

/** presence -> one event. */
export function normalizePresence(b: Body<"presence">, ctx: NormalizeContext): Normalized {
  const why = ctx.refuse(b.data.entity);
  if (why) return { events: [], skipped: [why] };
  return {
    events: [{
      eventId: b.event_id,
      endpoint: "presence",
      source: b.source,
      device: cleanIdentifier(b.data.entity),
      deviceType: "presence",
      kind: "presence",
      state: b.data.state,
      ...(b.data.location ? { label: cleanUntrusted(b.data.location, ctx.stringMax) } : {}),
      observedAt: b.data.changed_at,
      receivedAt: ctx.receivedAt,
    }],
    skipped: [],
  };
}

/** sensors -> one event per reading admitted by the item filter. */
export function normalizeSensors(b: Body<"sensors">, ctx: NormalizeContext): Normalized {
  const out: Normalized = { events: [], skipped: [] };
  b.data.readings.forEach((r, i) => {
    const why = ctx.refuse(r.sensor_id);
    if (why) {
      out.skipped.push(why);
      return;
    }
    const field = `data.readings[${i}].value`;
    let decoded;
    if (typeof r.value === "number") {
      decoded = { state: r.unit ? `${r.value} ${r.unit}` : String(r.value), value: r.value };
    } else if (typeof r.value === "string") {
      decoded = decodeValue("String", r.value, field, ctx.stringMax);
      if (decoded.state !== null && /^[A-Za-z_]{1,32}$/.test(decoded.state)) {
        decoded = { state: decoded.state.toUpperCase() };
      }
    } else {
      decoded = decodeValue("OnOff", r.value, field, ctx.stringMax);
    }
    const unit = r.unit ? cleanUntrusted(r.unit, 16) : undefined;
    out.events.push({
      eventId: b.event_id,
      endpoint: "sensors",
      source: b.source,
      device: cleanIdentifier(r.sensor_id),
      deviceType: (ctx.classes ?? WORDS_ONLY).typeOf(r.sensor_id, r.type),
      kind: "reading",
      state: decoded.state,
      ...(decoded.value !== undefined ? { value: decoded.value } : {}),
      ...(unit ? { unit } : {}),
      observedAt: r.measured_at,
      receivedAt: ctx.receivedAt,
    });
  });
  return out;
}

/** weather -> the current conditions, plus one alert event per weather alert. */
export function normalizeWeather(b: Body<"weather">, ctx: NormalizeContext): Normalized {
  const c = b.data.current;
  const events: DeviceEvent[] = [{
    eventId: b.event_id,
    endpoint: "weather",
    source: b.source,
    device: "weather",
    deviceType: "weather",
    kind: "weather",
    state: cleanUntrusted(c.condition, 40),
    value: c.temperature,
    unit: "°C",
    observedAt: b.timestamp,
    receivedAt: ctx.receivedAt,
  }];
  b.data.alerts.forEach((a) => {
    const type = typeof a === "string" ? alertTypeFromText(a) : a.type.toLowerCase();
    const title = typeof a === "string" ? a : a.title ?? a.type;
    events.push({
      eventId: b.event_id,
      endpoint: "weather",
      source: b.source,
      device: `alert:${cleanIdentifier(type, 40)}`,
      deviceType: cleanIdentifier(type, 40),
      kind: "alert",
      state: "ACTIVE",
      label: cleanUntrusted(title, ctx.stringMax),
      alertType: cleanIdentifier(type, 40),
      priority: "high",
      observedAt: b.timestamp,
      receivedAt: ctx.receivedAt,
    });
  });
  return { events, skipped: [] };
}

/** A weather alert given as free text: its type by keyword (storm, flood, ...). */
export function alertTypeFromText(s: string): string {
  const t = s.toLowerCase();
  for (const k of ["storm", "thunder", "hurricane", "tornado", "wind"]) {
    if (t.includes(k)) return "storm";
  }
  if (t.includes("flood")) return "flood";
  if (t.includes("heat")) return "heat";
  if (t.includes("frost") || t.includes("ice") || t.includes("snow")) return "frost";
  return "weather";
}

/** alert -> one alert event. */
export function normalizeAlert(b: Body<"alert">, ctx: NormalizeContext): Normalized {
  const type = b.data.alert_type;
  return {
    events: [{
      eventId: b.event_id,
      endpoint: "alert",
      source: b.source,
      device: `alert:${type}`,
      deviceType: type,
      kind: "alert",
      state: "ACTIVE",
      label: cleanUntrusted(b.data.title, ctx.stringMax),
      alertType: type,
      priority: b.priority,
      observedAt: b.timestamp,
      receivedAt: ctx.receivedAt,
    }],
    skipped: [],
  };
}

/** state -> one state event. */
export function normalizeState(b: Body<"state">, ctx: NormalizeContext): Normalized {
  const why = ctx.refuse(b.data.item);
  if (why) return { events: [], skipped: [why] };
  const raw = b.data.new_state;
  let state = stateString(raw, ctx.stringMax);
  let value: number | undefined;
  let unit: string | undefined;
  if (state !== null) {
    const q = /^(-?\d+(?:\.\d+)?)\s*(\S{1,16})?$/u.exec(state);
    if (q) {
      value = Number(q[1]);
      unit = q[2];
    } else if (/^[A-Za-z_]{1,32}$/.test(state)) state = state.toUpperCase();
  }
  if (raw !== null && raw.trim() === "") {
    throw new IngestError("new_state is empty; send null for unknown", { field: "data.new_state" });
  }
  return {
    events: [{
      eventId: b.event_id,
      endpoint: "state",
      source: b.source,
      device: cleanIdentifier(b.data.item),
      deviceType: (ctx.classes ?? WORDS_ONLY).typeOf(b.data.item),
      kind: "state",
      state,
      previousState: stateString(b.data.previous_state, ctx.stringMax),
      ...(value !== undefined ? { value } : {}),
      ...(unit ? { unit } : {}),
      observedAt: b.timestamp,
      receivedAt: ctx.receivedAt,
    }],
    skipped: [],
  };
}
