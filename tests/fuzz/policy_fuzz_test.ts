/**
 * Fuzz: the policy loader and mesh.yaml, on generated YAML and on mutated
 * shipped files. Property: a validated config or positioned issues
 * (`file:line:col`, a message), never a throw, within bounded time.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { stringify } from "yaml";
import {
  checkPolicyText,
  type Issue,
  PolicyError,
  policyFileNames,
  policyNames,
} from "../../services/common/policy/mod.ts";
import { parseMeshSettings } from "../../services/mesh/config.ts";
import { check, mutated, nastyString } from "./_fuzz.ts";

const SHIPPED = Object.fromEntries(
  policyNames.map((n) => [n, Deno.readTextFileSync(`policies/${policyFileNames[n]}`)]),
);
const MESH = Deno.readTextFileSync("policies/mesh.yaml");

function wellFormed(issues: readonly Issue[], text: string): void {
  assert.ok(issues.length > 0, "a refusal has issues");
  const lines = text.split("\n").length;
  for (const i of issues) {
    assert.ok(i.message.length > 0, "an issue says what is wrong");
    assert.ok(i.line >= 1 && i.line <= lines + 1, `line ${i.line} of ${lines}: ${i.message}`);
    assert.ok(i.col >= 1, `col ${i.col}: ${i.message}`);
  }
}

function policyProperty(name: (typeof policyNames)[number], text: string): void {
  const started = performance.now();
  const { config, issues } = checkPolicyText(name, text, `${name}.yaml`);
  if (config === undefined) wellFormed(issues, text);
  else assert.deepEqual(issues, []);
  const ms = performance.now() - started;
  assert.ok(ms < 5_000, `took ${ms.toFixed(0)} ms`);
}

const values: fc.Arbitrary<unknown> = fc.letrec((tie) => ({
  v: fc.oneof(
    { depthSize: "small" },
    fc.constantFrom(null, true, 0, -1, 1.5, 1e308, "", "x"),
    nastyString,
    fc.array(tie("v"), { maxLength: 4 }),
    fc.dictionary(fc.oneof(fc.string({ maxLength: 6 }), nastyString), tie("v"), {
      maxKeys: 4,
    }),
  ),
})).v;

Deno.test("fuzz: policy loader, mutated shipped files", () => {
  for (const name of policyNames) {
    check(
      `policy loader (${policyFileNames[name]}, mutated)`,
      mutated(SHIPPED[name]!),
      (text) => policyProperty(name, text),
      40,
    );
  }
});

/** Flow YAML with anchors and aliases anywhere: self references, alias bombs, deep nests. */
const aliasDocs: fc.Arbitrary<string> = fc.letrec<{ node: string }>((tie) => ({
  node: fc.oneof(
    { depthSize: "medium", withCrossShrink: true },
    fc.constantFrom("1", "x", "''", "null", "*a0", "*a1", "*a2"),
    fc.tuple(fc.nat({ max: 2 }), fc.array(tie("node"), { maxLength: 6 }))
      .map(([k, items]) => `&a${k} [${items.join(", ")}]`),
    fc.tuple(fc.nat({ max: 2 }), fc.array(tie("node"), { maxLength: 4 }))
      .map(([k, items]) => `&a${k} {${items.map((v, i) => `k${i}: ${v}`).join(", ")}}`),
    fc.array(tie("node"), { maxLength: 12 }).map((items) => `[${items.join(", ")}]`),
  ),
})).node.map((n) => `groups: ${n}\ncheck_interval_hours: 1\n`);

Deno.test("fuzz: policy loader, generated documents", () => {
  check(
    "policy loader (anchors and aliases)",
    aliasDocs,
    (text) => policyProperty("groups", text),
    150,
  );
  const name = fc.constantFrom(...policyNames);
  check("policy loader (generated YAML)", fc.tuple(name, values), ([n, v]) => {
    let text: string;
    try {
      text = stringify(v);
    } catch {
      return; // not representable
    }
    policyProperty(n, text);
  }, 150);
  check(
    "policy loader (raw text)",
    fc.tuple(name, nastyString),
    ([n, t]) => policyProperty(n, t),
    150,
  );
});

Deno.test("fuzz: mesh.yaml", () => {
  check("mesh.yaml", fc.oneof(mutated(MESH), nastyString), (text) => {
    try {
      parseMeshSettings(text, "mesh.yaml");
    } catch (e) {
      assert.ok(e instanceof PolicyError, `not a PolicyError: ${e}`);
      wellFormed(e.issues, text);
    }
  }, 120);
});
