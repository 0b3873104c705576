/**
 * The one internal schema every openHAB input is normalized into.
 *
 * Whatever arrives on 8445 (the five contract endpoints, or openHAB's own bus
 * events) becomes a list of {@link DeviceEvent}s: device, kind, state, value
 * with unit, observed-at and received-at. Strings inside are already cleaned
 * ({@link ./untrusted.ts}); `state === null` means "unknown" (openHAB's NULL
 * or UNDEF), which is never a state change.
 *
 * @module
 */

/** The ingest endpoints, each with its own rate limit. */
export const INGEST_ENDPOINTS = [
  "presence",
  "sensors",
  "weather",
  "alert",
  "state",
  "events",
] as const;

/** One endpoint of {@link INGEST_ENDPOINTS}. */
export type IngestEndpoint = typeof INGEST_ENDPOINTS[number];

/** What an event is about. */
export type EventKind =
  | "presence"
  | "reading"
  | "weather"
  | "alert"
  | "state"
  | "command"
  | "thing_status"
  | "trigger";

/** One normalized event. */
export interface DeviceEvent {
  /** Contract `event_id` (or a derived id for bus events). */
  eventId: string;
  /** Endpoint it came in on. */
  endpoint: IngestEndpoint;
  /** The sending openHAB host as it named itself (already checked against the policy). */
  source: string;
  /** Stable device key: item name, sensor id, entity, thing UID, `alert:<type>`, `weather`. */
  device: string;
  /** Device class (smoke, temperature, contact, presence, ...), lower-case. */
  deviceType: string;
  /**
   * For a group item's event (`openhab/items/<group>/<member>/...`): the group
   * and its class. The device is then the member whose change it reports, so
   * the member's own event and its group's are one device, one alarm.
   */
  group?: string;
  groupType?: string;
  /** What happened. */
  kind: EventKind;
  /** The state as a short normalized string, or null for unknown (NULL/UNDEF). */
  state: string | null;
  /** Previous state when the sender told it (informational only). */
  previousState?: string | null;
  /** Numeric value, when the state is a number or a quantity. */
  value?: number;
  /** Unit of `value` (`°C`, `%`, `kWh`), when known. */
  unit?: string;
  /** A cleaned, truncated human label (alert title, location, thing description). */
  label?: string;
  /**
   * The state is free text from outside (a String item, an unknown type, a
   * trigger's event): cleaned and capped, but still untrusted; shown to the
   * LLM only quoted inside `<untrusted_data>`, never as a state word.
   */
  freeText?: boolean;
  /** When the device observed it (ms since the epoch). */
  observedAt: number;
  /** When joi (or the relay, which stamps it) received it (ms since the epoch). */
  receivedAt: number;
  /** Alert priority (alert endpoint only). */
  priority?: "high" | "medium" | "low";
  /** Alert type (alert endpoint, weather alerts). */
  alertType?: string;
}
