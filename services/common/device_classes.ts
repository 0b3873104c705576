/**
 * Device classes from names, as both the relay (its critical lane) and joi
 * (its flood guard) read them. openHAB items carry no machine-readable class
 * on the event bus, so the class comes from the item's name:
 *
 * 1. the household's own patterns first (policy.yaml `iot.device_classes`:
 *    item glob -> class, in file order, e.g. `"Dym_*": smoke` or
 *    `"*_Batt": battery`): any naming scheme, any language, can be stated;
 * 2. else the name's words, matched whole (`Kitchen_Smoke` -> `smoke`,
 *    `Hall_CO_Alarm` -> `co`, `bathWaterLeak` -> `water_leak`; `CO2` is not
 *    `co` and `Gasket` is not `gas`), English and Slovak, singular or plural;
 *    two words that name one thing read as one (`Heat_Pump`, `Flood_Light`,
 *    `Smoke_Detector`);
 * 3. else the value type's class (`OpenClosed` -> `contact`), else `unknown`.
 *
 * A name holding an alarm word and others: the alarm class outranks place and
 * device words (`Door_Smoke` -> `smoke`, `Leak_Boiler_Room` -> `water_leak`),
 * but a reading or upkeep word after it names another item of that device
 * (`Smoke_Battery`, `Kitchen_Smoke_Temperature`, `Hall_CO_ppm`,
 * `Leak_Sensor_LastSeen`, `Gas_Meter`): not its alarm. Critical classes are
 * the policy's `iot.critical_device_types`.
 *
 * A group item event (`gSmoke` reporting its member `Hall_Detector`) also
 * carries the group's class, which makes the member critical unless the
 * member is a reading or upkeep item of its own ({@link ItemClasses}).
 * joi's ingest and the relay's critical lane both classify through
 * {@link DeviceClassifier.itemClasses}: one reading of a name, both sides.
 *
 * @module
 */
import { compileGlob, type Glob } from "./glob.ts";

/** Life-safety classes, in the order they outrank each other in one name. */
export const ALARM_CLASSES = [
  "smoke",
  "fire",
  "co",
  "gas",
  "water_leak",
  "security_breach",
] as const;

/**
 * Classes of readings and upkeep of a device: after an alarm word they name
 * that device's other items, not its alarm.
 */
const READING_CLASSES = new Set([
  "battery",
  "temperature",
  "humidity",
  "power",
  "energy",
  "illuminance",
  "co2",
  "level",
  "signal",
  "tamper",
  "test",
  "time",
  "setting",
  "meter",
  "price",
  "mute",
]);

const SYNONYM_TABLE: Record<string, string> = {
  smoke: "smoke",
  smokedetector: "smoke",
  dym: "smoke", // sk
  fire: "fire",
  flame: "fire",
  heat: "fire",
  heatdetector: "fire",
  poziar: "fire", // sk
  ohen: "fire", // sk
  co: "co",
  carbonmonoxide: "co",
  gas: "gas",
  methane: "gas",
  lpg: "gas",
  plyn: "gas", // sk
  leak: "water_leak",
  waterleak: "water_leak",
  water_leak: "water_leak",
  flood: "water_leak",
  unikvody: "water_leak", // sk
  zaplava: "water_leak", // sk
  zaplavenie: "water_leak", // sk
  intrusion: "security_breach",
  breach: "security_breach",
  burglar: "security_breach",
  security_breach: "security_breach",
  vlamanie: "security_breach", // sk
  temperature: "temperature",
  temp: "temperature",
  heatindex: "temperature",
  teplota: "temperature", // sk
  humidity: "humidity",
  vlhkost: "humidity", // sk
  motion: "motion",
  pir: "motion",
  pohyb: "motion", // sk
  presence: "presence",
  contact: "contact",
  door: "contact",
  window: "contact",
  dvere: "contact", // sk
  okno: "contact", // sk
  power: "power",
  voltage: "power",
  energy: "energy",
  battery: "battery",
  batt: "battery",
  bateria: "battery", // sk
  light: "light",
  lamp: "light",
  floodlight: "light",
  svetlo: "light", // sk
  co2: "co2",
  pressure: "pressure",
  illuminance: "illuminance",
  lux: "illuminance",
  ppm: "level",
  level: "level",
  density: "level",
  concentration: "level",
  signal: "signal",
  rssi: "signal",
  linkquality: "signal",
  lqi: "signal",
  tamper: "tamper",
  test: "test",
  selftest: "test",
  update: "time",
  updated: "time",
  lastupdate: "time",
  seen: "time",
  lastseen: "time",
  timestamp: "time",
  sensitivity: "setting",
  enabled: "setting",
  setpoint: "setting",
  threshold: "setting",
  meter: "meter",
  consumption: "meter",
  price: "price",
  cost: "price",
  mute: "mute",
  silence: "mute",
  heatpump: "appliance",
  heater: "appliance",
  boiler: "appliance",
  pump: "appliance",
};

/**
 * The table as a Map: item names are outside input, and a plain object would
 * answer `constructor`, `toString` or `__proto__` with a function.
 */
const SYNONYMS: ReadonlyMap<string, string> = new Map(Object.entries(SYNONYM_TABLE));

/** Every class a name's words can tell, and those the value type gives (`switch`). */
export const KNOWN_CLASSES: ReadonlySet<string> = new Set([...SYNONYMS.values(), "switch"]);

/** Splits `Hall_CO_Alarm`, `bathWaterLeak`, `zwave:node5` into lower-case tokens. */
export function nameTokens(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1 $2")
    .split(/[\s_\-.:#/@]+/)
    .filter(Boolean)
    .map((t) => t.toLowerCase());
}

/** A token's class; a plural (`Leaks`, `SmokeDetectors`' `detectors`, `Doors`) as its singular. */
function synonym(token: string): string | undefined {
  return SYNONYMS.get(token) ??
    (token.length > 3 && token.endsWith("s") ? SYNONYMS.get(token.slice(0, -1)) : undefined);
}

/** The class a name's words tell, undefined when none does. */
function fromWords(name: string): string | undefined {
  const tokens = nameTokens(name);
  const found: string[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const next = tokens[i + 1];
    const pair = next === undefined ? undefined : synonym(tokens[i]! + next);
    if (pair !== undefined) {
      found.push(pair);
      i++;
      continue;
    }
    const t = synonym(tokens[i]!);
    if (t !== undefined) found.push(t);
  }
  const isAlarm = (c: string) => (ALARM_CLASSES as readonly string[]).includes(c);
  const last = found.findLastIndex(isAlarm);
  if (last === -1) return found[0];
  const reading = found.slice(last + 1).find((c) => READING_CLASSES.has(c));
  return reading ?? ALARM_CLASSES.find((c) => found.includes(c));
}

/** The class of a value type alone (`OpenClosed` -> `contact`), for names that tell none. */
function fromHint(hint: string | undefined): string {
  if (hint === "OpenClosed") return "contact";
  if (hint === "OnOff") return "switch";
  return hint ? hint.toLowerCase().replace(/[^a-z0-9_]/g, "_").slice(0, 32) : "unknown";
}

/** policy.yaml `iot.device_classes`: item glob -> class. */
export type DeviceClassPatterns = Readonly<Record<string, string>>;

/** The classes of one item event: the item's, and its group's when that stands in. */
export interface ItemClasses {
  /** The item's class ({@link DeviceClassifier.typeOf}). */
  deviceType: string;
  /**
   * The group's class, for a group item event (`openhab/items/<group>/<item>/...`)
   * whose item is not a reading or upkeep item of its own (`Smoke_Battery`
   * in `gSmoke` is the detector's battery, not its alarm; `Hall_Window` in
   * `gIntrusion` is an intrusion sensor). A critical group class makes the
   * event critical.
   */
  groupType?: string;
}

/** Classifies names: the household's patterns, then the words (see the module doc). */
export class DeviceClassifier {
  readonly #patterns: { glob: Glob; cls: string }[];
  readonly #cache = new Map<string, string>();

  /** `patterns`: policy.yaml `iot.device_classes`, in file order (the first match wins). */
  constructor(patterns: DeviceClassPatterns = {}) {
    this.#patterns = Object.entries(patterns).map(([g, cls]) => ({ glob: compileGlob(g), cls }));
  }

  /**
   * The class `name` itself tells (a pattern of the household's, or its
   * words); undefined when it tells none.
   */
  nameClass(name: string): string | undefined {
    for (const p of this.#patterns) if (p.glob.test(name)) return p.cls;
    return fromWords(name);
  }

  /**
   * The class of device `name`, with `hint` (a sensor's declared `type`, or
   * an openHAB value type) first when it is a class word and as the fallback
   * otherwise. Returns lower case; `"unknown"` when nothing matches.
   */
  typeOf(name: string, hint?: string): string {
    const key = `${name}\u0000${hint ?? ""}`;
    const cached = this.#cache.get(key);
    if (cached !== undefined) return cached;
    const declared = hint === undefined ? undefined : SYNONYMS.get(hint.toLowerCase());
    const t = declared ?? this.nameClass(name) ?? fromHint(hint);
    if (this.#cache.size >= 10_000) this.#cache.clear();
    this.#cache.set(key, t);
    return t;
  }

  /**
   * The classes of an item event: `item` with its value type, and `group`'s
   * for a group item event (see {@link ItemClasses.groupType}). joi's ingest
   * and the relay's critical lane both read an event through this, so they
   * never disagree on what is an alarm.
   */
  itemClasses(item: string, group: string | undefined, valueType?: string): ItemClasses {
    const deviceType = this.typeOf(item, valueType);
    if (group === undefined || READING_CLASSES.has(deviceType)) return { deviceType };
    return { deviceType, groupType: this.typeOf(group, valueType) };
  }
}

/** The classifier without household patterns (names' words only). */
export const WORDS_ONLY: DeviceClassifier = new DeviceClassifier();

/** {@link DeviceClassifier.typeOf} without household patterns. */
export function deviceTypeOf(name: string, hint?: string): string {
  return WORDS_ONLY.typeOf(name, hint);
}
