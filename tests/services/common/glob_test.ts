/**
 * Item globs (policy.yaml `ingest.items`, `iot.device_classes`): what `*`
 * and `?` match, that everything else is itself, and that matching stays
 * linear where a regular expression backtracked for seconds.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { compileGlob } from "../../../services/common/glob.ts";

Deno.test("glob: * any run (none too), ? exactly one, case-insensitive, whole name", () => {
  const cases: [string, string, boolean][] = [
    ["Rauchmelder_*", "Rauchmelder_Flur", true],
    ["Rauchmelder_*", "rauchmelder_", true],
    ["Rauchmelder_*", "Rauchmelder", false],
    ["Rauchmelder_*", "X_Rauchmelder_Flur", false],
    ["*_Batt", "Flur_Rauch_Batt", true],
    ["*_Batt", "Flur_Rauch_Batt_Level", false],
    ["Room?_Smoke", "Room1_Smoke", true],
    ["Room?_Smoke", "Room12_Smoke", false],
    ["Room?_Smoke", "Room_Smoke", false],
    ["*", "", true],
    ["", "", true],
    ["", "x", false],
    ["**a**", "bab", true],
    ["*a*b", "aXbYb", true],
    ["*a*b", "aXbYc", false],
    ["SMOKE", "smoke", true],
    ["Däm?", "DÄMM", true],
    ["🔥?", "🔥x", true], // ? is one character, not one UTF-16 unit
  ];
  for (const [glob, name, want] of cases) {
    assert.equal(compileGlob(glob).test(name), want, `${glob} ~ ${name}`);
  }
  assert.equal(compileGlob("*_Batt").source, "*_Batt");
});

Deno.test("glob: regular-expression characters are themselves", () => {
  for (const c of [".", "+", "^", "$", "{", "}", "(", ")", "|", "[", "]", "\\"]) {
    assert.equal(compileGlob(`a${c}b`).test(`a${c}b`), true, c);
    assert.equal(compileGlob(`a${c}b`).test("axb"), false, c);
  }
  assert.equal(compileGlob("a.*").test("abc"), false);
  assert.equal(compileGlob("a.*").test("a.xyz"), true);
});

Deno.test("glob: agrees with the regular expression it replaces (property)", () => {
  const toRe = (g: string) =>
    new RegExp(
      `^${g.replace(/[.+^${}()|[\]\\]/g, "\\$&").replace(/\*/g, ".*").replace(/\?/g, ".")}$`,
      "isu",
    );
  const alphabet = fc.constantFrom("a", "b", "A", "_", "*", "?", ".");
  fc.assert(
    fc.property(
      fc.array(alphabet, { maxLength: 8 }).map((a) => a.join("")),
      fc.array(fc.constantFrom("a", "b", "B", "_", "."), { maxLength: 12 }).map((a) => a.join("")),
      (glob, name) => compileGlob(glob).test(name) === toRe(glob).test(name),
    ),
    { numRuns: 2000 },
  );
});

Deno.test("glob: many stars against a long near-miss name stay fast", () => {
  // as a regular expression (^.*a.*a.*a.*a.*a.*b$) this took 2.7 s for 100 characters
  const g = compileGlob("*a*a*a*a*a*a*a*a*b");
  const name = "a".repeat(10_000);
  const t0 = performance.now();
  assert.equal(g.test(name), false);
  assert.equal(g.test(name + "b"), true);
  const ms = performance.now() - t0;
  // a bound about 100x what this takes on a loaded machine: exponential backtracking is hours
  assert.ok(ms < 5_000, `took ${ms.toFixed(0)} ms`);
});
