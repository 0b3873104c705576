import assert from "node:assert/strict";
import fc from "fast-check";
import {
  formatPath,
  parsePolicyText,
  type PathSegment,
  PolicyError,
  policyFileNames,
  type PolicyName,
  policyNames,
  policySchemas,
} from "../../../../services/common/policy/mod.ts";
import { parseYaml } from "../../../../services/common/policy/parse_yaml.ts";
import { allowedKeys } from "../../../../services/common/policy/zod_issues.ts";
import { SHIPPED } from "./helpers.ts";

interface Spot {
  name: PolicyName;
  path: PathSegment[];
  allowed: string[];
}

const TEXTS = Object.fromEntries(
  policyNames.map((n) => [n, Deno.readTextFileSync(`${SHIPPED}/${policyFileNames[n]}`)]),
) as Record<PolicyName, string>;

/** Every mapping of the shipped files that a strict object schema validates. */
function strictSpots(): Spot[] {
  const spots: Spot[] = [];
  for (const name of policyNames) {
    const data = parseYaml(TEXTS[name]).doc.toJS();
    const walk = (value: unknown, path: PathSegment[]) => {
      if (Array.isArray(value)) value.forEach((v, i) => walk(v, [...path, i]));
      else if (value !== null && typeof value === "object") {
        const allowed = allowedKeys(policySchemas[name], path);
        if (allowed.length > 0) spots.push({ name, path, allowed });
        for (const [k, v] of Object.entries(value)) walk(v, [...path, k]);
      }
    };
    walk(data, []);
  }
  return spots;
}

const SPOTS = strictSpots();
const PLAIN = /^[a-z][a-z0-9_]{0,15}$/;

Deno.test("the property below has strict mappings at every depth to work on", () => {
  const depths = new Set(SPOTS.map((s) => s.path.length));
  assert.ok(SPOTS.length > 60, `only ${SPOTS.length} spots`);
  for (const d of [0, 1, 2, 3, 4]) assert.ok(depths.has(d), `no strict mapping at depth ${d}`);
});

Deno.test("property: a random unknown key anywhere is refused, naming its path and position", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...SPOTS),
      fc.oneof(fc.stringMatching(PLAIN), fc.string({ minLength: 1, maxLength: 10 })),
      fc.oneof(fc.constant(1), fc.constant("x"), fc.constant(null), fc.constant([true])),
      (spot, key, value) => {
        fc.pre(!spot.allowed.includes(key));
        const { doc } = parseYaml(TEXTS[spot.name]);
        doc.setIn([...spot.path, key], value);
        const text = String(doc);
        let err: unknown;
        try {
          parsePolicyText(spot.name, text, "p.yaml");
        } catch (e) {
          err = e;
        }
        assert.ok(err instanceof PolicyError, `accepted unknown key ${JSON.stringify(key)}`);
        assert.equal(err.issues.length, 1, err.message);
        const [issue] = err.issues;
        assert.equal(issue!.path, formatPath([...spot.path, key]));
        assert.ok(issue!.message.startsWith(`unknown key ${JSON.stringify(key)}`), issue!.message);
        if (PLAIN.test(key)) {
          const line = text.split("\n")[issue!.line - 1] ?? "";
          assert.ok(
            line.slice(issue!.col - 1).startsWith(key),
            `${issue!.line}:${issue!.col} in ${line}`,
          );
        }
      },
    ),
    { numRuns: 400 },
  );
});

Deno.test("property: damaged policy text is reported with positions inside the file, never a crash", () => {
  fc.assert(
    fc.property(
      fc.constantFrom(...policyNames),
      fc.nat(),
      fc.integer({ min: 1, max: 40 }),
      fc.string({ maxLength: 6 }),
      (name, at, len, insert) => {
        const original = TEXTS[name];
        const i = at % original.length;
        const text = original.slice(0, i) + insert + original.slice(i + len);
        try {
          parsePolicyText(name, text, "p.yaml");
        } catch (e) {
          assert.ok(e instanceof PolicyError, String(e));
          const lines = text.split("\n").length;
          for (const issue of e.issues) {
            assert.ok(issue.line >= 1 && issue.line <= lines + 1, `line ${issue.line} of ${lines}`);
            assert.ok(issue.col >= 1, `col ${issue.col}`);
            assert.ok(issue.path.length > 0 && issue.message.length > 0);
          }
        }
      },
    ),
    { numRuns: 500 },
  );
});
