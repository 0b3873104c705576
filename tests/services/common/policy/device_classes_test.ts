/**
 * policy.yaml `iot.device_classes` and `iot.critical_device_types` name
 * classes that exist: a misspelt critical class, or a pattern mapping items
 * to a class nothing acts on, would silence alarms without a word. Each is
 * refused at load with the file, line, column and path of the bad entry.
 */
import assert from "node:assert/strict";
import { loadPolicies } from "../../../../services/common/policy/mod.ts";
import { issuesOf, variantDir } from "./helpers.ts";

const CRITICAL = "critical_device_types: [smoke, fire, co, gas, water_leak, security_breach]";
const CLASSES = "device_classes: {}";

Deno.test("policy: a critical device type that is no class is refused, by index", async () => {
  assert.deepEqual(
    await issuesOf([{
      file: "policy.yaml",
      from: CRITICAL,
      to: "critical_device_types: [smoke, smok, co]",
    }]),
    [
      'policies/policy.yaml:59:34: iot.critical_device_types[1]: "smok" is no device class, so ' +
      "no item would ever be critical by it: use a class joi reads from item names (e.g. smoke, " +
      "fire, co, gas, water_leak, security_breach), or map items to it in iot.device_classes",
    ],
  );
});

Deno.test("policy: a pattern mapping items to a class nothing acts on is refused, by its glob", async () => {
  assert.deepEqual(
    await issuesOf([{
      file: "policy.yaml",
      from: CLASSES,
      to: 'device_classes:\n    "Wassermelder_*": water_leak\n    "Rauchmelder_*": smok',
    }]),
    [
      'policies/policy.yaml:64:22: iot.device_classes["Rauchmelder_*"]: "smok" is no device class ' +
      'joi knows and not in iot.critical_device_types: items matching "Rauchmelder_*" would be ' +
      "of a class nothing acts on (e.g. smoke, fire, co, gas, water_leak, security_breach; a " +
      "class of your own must be listed as critical)",
    ],
  );
});

Deno.test("policy: a device class that is not an identifier is refused where it is written", async () => {
  const lines = await issuesOf([{
    file: "policy.yaml",
    from: CLASSES,
    to: 'device_classes: {"Rauchmelder_*": "Smoke Alarm"}',
  }]);
  assert.equal(lines.length, 1, lines.join("\n"));
  assert.match(
    lines[0]!,
    /^policies\/policy\.yaml:62:\d+: iot\.device_classes\["Rauchmelder_\*"\]: /,
  );
  assert.match(lines[0]!, /"Smoke Alarm" is not a valid device class/);
});

Deno.test("policy: patterns to known classes, and a class of the household's own listed as critical, load", async () => {
  const dir = await variantDir([
    {
      file: "policy.yaml",
      from: CLASSES,
      to: 'device_classes:\n    "Rauchmelder_*_Batterie": battery\n    "Rauchmelder_*": smoke\n' +
        '    "Sauna_Alarm*": sauna',
    },
    { file: "policy.yaml", from: CRITICAL, to: "critical_device_types: [smoke, co, sauna]" },
  ]);
  try {
    const { policy } = loadPolicies(dir);
    // file order kept: the first match wins
    assert.deepEqual(Object.entries(policy.iot.device_classes), [
      ["Rauchmelder_*_Batterie", "battery"],
      ["Rauchmelder_*", "smoke"],
      ["Sauna_Alarm*", "sauna"],
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("policy: device_classes may be left out (no patterns)", async () => {
  const dir = await variantDir([{ file: "policy.yaml", from: `  ${CLASSES}\n`, to: "" }]);
  try {
    assert.deepEqual(loadPolicies(dir).policy.iot.device_classes, {});
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
