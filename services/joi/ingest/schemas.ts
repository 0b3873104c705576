/**
 * zod schemas of the five contract endpoints and of openHAB bus events
 * (contracts.md, "joi, port 8445"). Objects of the contract are strict: an
 * unknown field is an error naming it. {@link formatIssues} turns zod issues
 * into `data.readings[3].value: expected number` lines.
 *
 * @module
 */
import { z } from "zod";

/** A timestamp: ISO 8601 with offset, or epoch milliseconds. Parsed to epoch ms. */
export const timestampSchema = z.union([
  z.iso.datetime({ offset: true }),
  z.number().int().positive().max(8_640_000_000_000),
]).transform((v) => (typeof v === "number" ? v : Date.parse(v)));

const id = z.string().min(1).max(120).regex(
  /^[\p{L}\p{N}_\-.:@]+$/u,
  "only letters, digits and _-.:@ are allowed",
);
const text = (max: number) => z.string().max(max);

const common = {
  event_id: z.uuid(),
  event_type: z.string().min(1).max(64),
  timestamp: timestampSchema,
  source: z.string().min(1).max(253),
};

/** Schemas depending on policy figures. */
export interface SchemaLimits {
  /** `ingest.max_readings`. */
  maxReadings: number;
}

/** Builds the endpoint schemas for `limits`. */
export function endpointSchemas(limits: SchemaLimits) {
  const presence = z.strictObject({
    ...common,
    data: z.strictObject({
      entity: id,
      state: z.enum(["home", "away", "arriving", "leaving"]),
      location: text(500).optional(),
      changed_at: timestampSchema,
    }),
  });
  const reading = z.strictObject({
    sensor_id: id,
    type: z.string().min(1).max(40),
    value: z.union([
      z.number().refine(Number.isFinite),
      z.string().max(200),
      z.boolean(),
      z.null(),
    ]),
    unit: z.string().max(16).nullable().optional(),
    measured_at: timestampSchema,
  });
  const sensors = z.strictObject({
    ...common,
    data: z.strictObject({
      readings: z.array(reading).min(1).max(
        limits.maxReadings,
        `at most ${limits.maxReadings} readings per batch (ingest.max_readings)`,
      ),
    }),
  });
  const weatherAlert = z.union([
    text(500),
    z.strictObject({
      type: z.string().min(1).max(40),
      title: text(200).optional(),
      message: text(2000).optional(),
      expires_at: timestampSchema.optional(),
    }),
  ]);
  const weather = z.strictObject({
    ...common,
    data: z.strictObject({
      current: z.strictObject({
        condition: text(100),
        temperature: z.number(),
        humidity: z.number().min(0).max(100),
        wind_speed: z.number().min(0),
        wind_unit: z.string().max(10),
      }),
      forecast: z.array(z.strictObject({
        date: z.string().max(40),
        high: z.number(),
        low: z.number(),
        condition: text(100),
        precipitation_chance: z.number().min(0).max(100),
      })).max(16),
      alerts: z.array(weatherAlert).max(10),
    }),
  });
  const alert = z.strictObject({
    ...common,
    priority: z.enum(["high", "medium", "low"]),
    data: z.strictObject({
      alert_type: z.string().min(1).max(40).regex(/^[a-z0-9_]+$/, "lower-case identifier"),
      title: text(200),
      message: text(2000),
      expires_at: timestampSchema.optional(),
    }),
  });
  const state = z.strictObject({
    ...common,
    data: z.strictObject({
      item: id,
      previous_state: z.string().max(200).nullable(),
      new_state: z.string().max(200).nullable(),
      changed_by: z.enum(["manual", "automation", "api"]),
    }),
  });
  const busEvent = z.object({
    topic: z.string().min(1).max(512),
    payload: z.string().max(10_240),
    type: z.string().min(1).max(64),
    received_at: timestampSchema.optional(),
    /** The relay's id of this event: a repeat is accepted once (idempotent retries). */
    id: z.uuid().optional(),
  });
  // the envelope only: each event is judged on its own (batch.ts), never the batch for one
  const busBatch = z.strictObject({
    ...common,
    events: z.array(z.unknown()).min(1).max(
      limits.maxReadings,
      `at most ${limits.maxReadings} events per batch (ingest.max_readings)`,
    ),
  });
  return { presence, sensors, weather, alert, state, busEvent, busBatch };
}

/** The schema set of {@link endpointSchemas}. */
export type EndpointSchemas = ReturnType<typeof endpointSchemas>;

function formatPath(path: readonly PropertyKey[], prefix = ""): string {
  let out = prefix;
  for (const p of path) {
    if (typeof p === "number") out += `[${p}]`;
    else out += out ? `.${String(p)}` : String(p);
  }
  return out || "(body)";
}

/**
 * `field: message` lines of a zod error, at most `max` of them; `prefix`
 * (`events[3]`) is put in front of every path.
 */
export function formatIssues(error: z.ZodError, max = 5, prefix = ""): string {
  const lines = error.issues.slice(0, max).map((i) => {
    const path = formatPath(i.path, prefix);
    if (i.code === "unrecognized_keys") {
      return `${path}: unknown field(s) ${i.keys.map((k) => JSON.stringify(k)).join(", ")}`;
    }
    return `${path}: ${i.message}`;
  });
  const more = error.issues.length > max ? ` (+${error.issues.length - max} more)` : "";
  return lines.join("; ") + more;
}

/** The first offending field of a zod error. */
export function firstField(error: z.ZodError): string {
  return error.issues.length ? formatPath(error.issues[0]!.path) : "(body)";
}
