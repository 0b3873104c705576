/**
 * Device classes (services/common/device_classes.ts): the household's
 * patterns (policy `iot.device_classes`) before a name's words, first match
 * wins; reading and upkeep items of an alarm device are not its alarm; and
 * the relay's critical lane reads every item event exactly as joi's ingest
 * and flood guard do (a property over generated names, groups, value types
 * and patterns).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  DeviceClassifier,
  deviceTypeOf,
  KNOWN_CLASSES,
} from "../../../services/common/device_classes.ts";
import { normalizeBusEvent } from "../../../services/joi/ingest/openhab_events.ts";
import { compileItemFilter } from "../../../services/joi/ingest/items.ts";
import { IngestError } from "../../../services/joi/ingest/errors.ts";
import { Relay } from "../../../services/openhab_relay/relay.ts";
import { createLogger } from "../../../services/common/log.ts";

const GERMAN = {
  "Rauchmelder_*_Batterie": "battery", // the detector's battery: before its alarm
  "Rauchmelder_*": "smoke",
  "Wassermelder_*": "water_leak",
  "*_Batt": "battery",
};

Deno.test("device classes: the household's patterns first, in file order, case-insensitive", () => {
  const c = new DeviceClassifier(GERMAN);
  assert.equal(c.typeOf("Rauchmelder_Flur"), "smoke");
  assert.equal(c.typeOf("rauchmelder_küche", "OnOff"), "smoke");
  assert.equal(c.typeOf("Rauchmelder_Flur_Batterie", "Decimal"), "battery");
  assert.equal(c.typeOf("Wassermelder_Keller"), "water_leak");
  // a pattern outranks the words: `*_Batt` on a name whose words say smoke
  assert.equal(c.typeOf("Hall_Smoke_Batt"), "battery");
  assert.equal(c.nameClass("Keller_Licht"), undefined);
  assert.equal(c.typeOf("Keller_Licht", "OnOff"), "switch");
  // without the patterns, joi cannot read them
  assert.equal(deviceTypeOf("Rauchmelder_Flur", "OnOff"), "switch");
  assert.equal(deviceTypeOf("Wassermelder_Keller"), "unknown");
  // the order is the file's: the same two patterns the other way round read the battery as smoke
  const smokeFirst = new DeviceClassifier({
    "Rauchmelder_*": "smoke",
    "Rauchmelder_*_Batterie": "battery",
  });
  assert.equal(smokeFirst.typeOf("Rauchmelder_Flur_Batterie"), "smoke");
});

Deno.test("device classes: words that name one thing, readings and upkeep of an alarm device", () => {
  const cases: [string, string][] = [
    ["Heat_Pump", "appliance"], // not a heat (fire) detector
    ["Flood_Light", "light"], // not a flood (water leak) sensor
    ["Smoke_Detector_Hall", "smoke"],
    ["Door_Smoke", "smoke"],
    ["Leak_Boiler_Room", "water_leak"],
    ["Smoke_Battery", "battery"],
    ["Kitchen_Smoke_Temperature", "temperature"],
    ["Hall_CO_ppm", "level"],
    ["Leak_Sensor_LastSeen", "time"],
    ["Gas_Meter", "meter"],
    ["Smoke_Test", "test"],
    ["Dym_Kuchyna", "smoke"], // Slovak
    ["Unik_Vody_Kupelna", "water_leak"],
    ["Office_CO2", "co2"],
    ["Gasket_Counter", "unknown"],
  ];
  for (const [name, want] of cases) assert.equal(deviceTypeOf(name), want, name);
  for (const [, cls] of cases) if (cls !== "unknown") assert.ok(KNOWN_CLASSES.has(cls), cls);
});

Deno.test("device classes: a group's class comes with its member unless the member is a reading", () => {
  const c = new DeviceClassifier();
  assert.deepEqual(c.itemClasses("Hall_Detector", "gSmoke", "OnOff"), {
    deviceType: "switch",
    groupType: "smoke",
  });
  assert.deepEqual(c.itemClasses("Hall_Window", "gIntrusion", "OpenClosed"), {
    deviceType: "contact",
    groupType: "security_breach",
  });
  assert.deepEqual(c.itemClasses("Smoke_Battery", "gSmoke", "Decimal"), {
    deviceType: "battery",
  });
  assert.deepEqual(c.itemClasses("Kitchen_Smoke", undefined, "OnOff"), { deviceType: "smoke" });
  const g = new DeviceClassifier({ "*_Batt": "battery", "Melder_*": "smoke" });
  assert.deepEqual(g.itemClasses("Flur_Batt", "Melder_Gruppe", "Decimal"), {
    deviceType: "battery",
  });
  assert.deepEqual(g.itemClasses("Flur", "Melder_Gruppe", "OnOff"), {
    deviceType: "switch",
    groupType: "smoke",
  });
});

// ---- the relay reads every item event as joi does ----

/** `iot.critical_device_types`: the alarm classes, and some a household may add. */
const CRITICAL = fc.subarray(
  ["smoke", "fire", "co", "water_leak", "security_breach", "switch", "contact", "battery"],
  { minLength: 1 },
);
const NAMES = fc.array(
  fc.constantFrom(
    "Rauchmelder",
    "Flur",
    "Smoke",
    "smoke",
    "Battery",
    "Batt",
    "Heat",
    "Pump",
    "Flood",
    "Light",
    "CO",
    "CO2",
    "g",
    "Leak",
    "Leaks",
    "Window",
    "Temperature",
    "Dym",
    "x",
    "Intrusion",
    "LastSeen",
    "Ü",
    "a b",
  ),
  { minLength: 1, maxLength: 4 },
).map((w) => w.join("_"));
const PATTERNS = fc.dictionary(
  fc.constantFrom("Rauchmelder_*", "*_Batt", "*Flur*", "g_*", "?_Smoke", "*"),
  fc.constantFrom("smoke", "battery", "water_leak", "temperature", "light"),
  { maxKeys: 3 },
);
const VALUE_TYPES = fc.constantFrom("OnOff", "OpenClosed", "Decimal", "Quantity", "String");

Deno.test("device classes: the relay's critical lane agrees with joi on every item event (property)", () => {
  const filter = compileItemFilter({ allow: ["*"], block: [] });
  fc.assert(
    fc.property(
      NAMES,
      fc.option(NAMES, { nil: undefined }),
      VALUE_TYPES,
      PATTERNS,
      CRITICAL,
      (item, group, type, patterns, critical) => {
        const relay = new Relay({
          openhabUrl: "http://127.0.0.1:1",
          token: "t",
          joiUrl: "http://127.0.0.1:1",
          source: "openhab",
          items: { allow: ["*"], block: [] },
          maxBatch: 10,
          maxEventBytes: 10_000,
          criticalTypes: critical,
          deviceClasses: patterns,
          log: createLogger("test", { quiet: true }),
        });
        const topic = group === undefined
          ? `openhab/items/${item}/statechanged`
          : `openhab/items/${group}/${item}/statechanged`;
        const payload = JSON.stringify({ type, value: "ON", oldType: type, oldValue: "OFF" });
        let ev;
        try {
          ev = normalizeBusEvent({ topic, payload, type: "ItemStateChangedEvent" }, "e", {
            eventId: "1",
            source: "openhab",
            receivedAt: 0,
            stringMax: 500,
            refuse: (n) => filter.refusal(n),
            classes: new DeviceClassifier(patterns),
          }).events[0];
        } catch (e) {
          if (!(e instanceof IngestError)) throw e;
        }
        if (ev === undefined) return true; // an event joi refuses: the relay's choice is moot
        // FloodGuard.isCritical for a state event
        const joi = critical.includes(ev.deviceType) ||
          (ev.groupType !== undefined && critical.includes(ev.groupType));
        assert.equal(relay.isCritical(topic, type), joi, `${topic} ${type} ${JSON.stringify(ev)}`);
        return true;
      },
    ),
    { numRuns: 1500 },
  );
});
