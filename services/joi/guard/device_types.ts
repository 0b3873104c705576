/**
 * Device classes from names. openHAB items carry no machine-readable class on
 * the event bus, so joi infers one from the item (or sensor) name and the
 * value type: `Kitchen_Smoke` -> `smoke`, `Hall_CO_Alarm` -> `co`,
 * `Bath_WaterLeak` -> `water_leak`, `FrontDoor_Contact` -> `contact`. Critical
 * classes are the policy's `iot.critical_device_types`; a name is matched by
 * whole tokens, so `CO2` is not `co` and `Gasket` is not `gas`.
 *
 * @module
 */

const SYNONYM_TABLE: Record<string, string> = {
  smoke: "smoke",
  smokedetector: "smoke",
  fire: "fire",
  flame: "fire",
  heat: "fire",
  co: "co",
  carbonmonoxide: "co",
  gas: "gas",
  methane: "gas",
  lpg: "gas",
  leak: "water_leak",
  waterleak: "water_leak",
  water_leak: "water_leak",
  flood: "water_leak",
  intrusion: "security_breach",
  breach: "security_breach",
  burglar: "security_breach",
  security_breach: "security_breach",
  temperature: "temperature",
  temp: "temperature",
  humidity: "humidity",
  motion: "motion",
  pir: "motion",
  presence: "presence",
  contact: "contact",
  door: "contact",
  window: "contact",
  power: "power",
  energy: "energy",
  battery: "battery",
  light: "light",
  lamp: "light",
  co2: "co2",
  pressure: "pressure",
  illuminance: "illuminance",
  lux: "illuminance",
};

/**
 * The table as a Map: item names are outside input, and a plain object would
 * answer `constructor`, `toString` or `__proto__` with a function.
 */
const SYNONYMS: ReadonlyMap<string, string> = new Map(Object.entries(SYNONYM_TABLE));

// classes that outrank location words when a name holds several (Door_Smoke -> smoke)
const PRIORITY = ["smoke", "fire", "co", "gas", "water_leak", "security_breach"];

/** Splits `Hall_CO_Alarm`, `bathWaterLeak`, `zwave:node5` into lower-case tokens. */
export function nameTokens(name: string): string[] {
  return name
    .replace(/([a-z0-9])([A-Z])/g, "$1 $2")
    .replace(/([A-Z]+)([A-Z][a-z])/g, "$1 $2")
    .split(/[\s_\-.:#/@]+/)
    .filter(Boolean)
    .map((t) => t.toLowerCase());
}

/**
 * The class of device `name`, with `hint` (a sensor's declared `type`, or an
 * openHAB value type) as a fallback. Returns lower-case; `"unknown"` when
 * nothing matches.
 */
export function deviceTypeOf(name: string, hint?: string): string {
  const key = `${name}\u0000${hint ?? ""}`;
  const cached = CACHE.get(key);
  if (cached !== undefined) return cached;
  const t = classify(name, hint);
  if (CACHE.size >= 10_000) CACHE.clear();
  CACHE.set(key, t);
  return t;
}

const CACHE = new Map<string, string>();

/** A token's class; a plural (`Leaks`, `SmokeDetectors`' `detectors`, `Doors`) as its singular. */
function synonym(token: string): string | undefined {
  return SYNONYMS.get(token) ??
    (token.length > 3 && token.endsWith("s") ? SYNONYMS.get(token.slice(0, -1)) : undefined);
}

function classify(name: string, hint?: string): string {
  if (hint) {
    const h = SYNONYMS.get(hint.toLowerCase());
    if (h) return h;
  }
  const tokens = nameTokens(name);
  const found = new Set<string>();
  tokens.forEach((token, i) => {
    const t = synonym(token);
    if (t) found.add(t);
    const next = tokens[i + 1];
    if (next !== undefined) {
      const pair = synonym(token + next);
      if (pair) found.add(pair);
    }
  });
  for (const p of PRIORITY) if (found.has(p)) return p;
  const [first] = found;
  if (first !== undefined) return first;
  if (hint === "OpenClosed") return "contact";
  if (hint === "OnOff") return "switch";
  return hint ? hint.toLowerCase().replace(/[^a-z0-9_]/g, "_").slice(0, 32) : "unknown";
}
