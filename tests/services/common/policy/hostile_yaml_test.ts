/**
 * The policy loader against hostile YAML: each input is refused with
 * `file:line:col`, a document path and the reason, never a crash (a
 * self-referencing alias was a stack overflow in validate, revoke, provision,
 * joi and the mesh alike).
 */
import assert from "node:assert/strict";
import {
  checkPolicyText,
  formatIssue,
  loadPolicyFile,
} from "../../../../services/common/policy/mod.ts";
import { YAML_LIMITS } from "../../../../services/common/policy/parse_yaml.ts";
import { parseMeshSettings } from "../../../../services/mesh/config.ts";

function issuesOf(text: string): string[] {
  const { config, issues } = checkPolicyText("groups", text, "g.yaml");
  assert.equal(config, undefined, "refused");
  return issues.map(formatIssue);
}

const laughs = (levels: number) => {
  const lines = ["l0: &l0 [lol, lol, lol, lol, lol, lol, lol, lol, lol, lol]"];
  for (let i = 1; i < levels; i++) {
    lines.push(`l${i}: &l${i} [${Array(10).fill(`*l${i - 1}`).join(", ")}]`);
  }
  return lines.join("\n") + "\n";
};

/** name -> [text, the exact first issue expected] */
const CASES: [string, string, string][] = [
  [
    "self-referencing alias in a list",
    "groups: &x [*x]\n",
    "g.yaml:1:13: groups[0]: YAML: alias *x refers to a node that contains it (a recursive structure): write the value out",
  ],
  [
    "self-referencing alias in a mapping",
    "check_interval_hours: 1\ngroups: &g {family: *g}\n",
    "g.yaml:2:21: groups.family: YAML: alias *x refers to a node that contains it (a recursive structure): write the value out"
      .replace("*x", "*g"),
  ],
  [
    "the document is its own alias",
    "&root {a: *root}\n",
    "g.yaml:1:11: a: YAML: alias *root refers to a node that contains it (a recursive structure): write the value out",
  ],
  [
    "mutually nested aliases",
    "a: &a {b: &b [1, {c: *a}]}\n",
    "g.yaml:1:22: a.b[1].c: YAML: alias *a refers to a node that contains it (a recursive structure): write the value out",
  ],
  [
    "billion laughs",
    laughs(9),
    `g.yaml:5:10: l4[0]: YAML: alias *l3 expands the document beyond ${YAML_LIMITS.nodes} nodes (an alias bomb?): write the values out`,
  ],
  [
    "deep flow nesting",
    "groups: " + "[".repeat(100_000),
    `g.yaml:1:41: (root): YAML: nested more than ${YAML_LIMITS.depth} levels deep: flatten the structure`,
  ],
  [
    "deep flow nesting after other values (the column is the bracket's)",
    "a: x\nb: 'y'\nc: [1, 2, 3]\ngroups: " + "{a: ".repeat(40),
    `g.yaml:4:137: (root): YAML: nested more than ${YAML_LIMITS.depth} levels deep: flatten the structure`,
  ],
  [
    "deep block nesting",
    Array.from({ length: 200 }, (_, i) => " ".repeat(i) + "a:").join("\n") + " 1\n",
    `g.yaml:33:33: (root): YAML: nested more than ${YAML_LIMITS.depth} levels deep: flatten the structure`,
  ],
  [
    "compact nested lists on one line",
    "groups: " + "- ".repeat(20_000) + "x\n",
    `g.yaml:1:71: (root): YAML: nested more than ${YAML_LIMITS.depth} levels deep: flatten the structure`,
  ],
  [
    "a huge scalar",
    `check_interval_hours: 1\ngroups: {family: "${"x".repeat(100_000)}"}\n`,
    `g.yaml:2:18: groups.family: YAML: a scalar of 100000 characters, more than the ${YAML_LIMITS.scalarChars} allowed`,
  ],
  [
    "a huge text",
    `groups: {}\n# ${"x".repeat(1 << 20)}\n`,
    `g.yaml:1:1: (root): YAML: the text is ${
      (1 << 20) + 14
    } bytes, more than the ${YAML_LIMITS.bytes} a YAML file may have here`,
  ],
  [
    "many keys (the yaml package's own duplicate check is quadratic)",
    "a: b\n".repeat(26_000).slice(0, YAML_LIMITS.bytes - 10),
    `g.yaml:16001:4: (root): YAML: more than ${YAML_LIMITS.nodes} values: this is not a policy file`,
  ],
  [
    "duplicate keys",
    "check_interval_hours: 1\ngroups: {}\ncheck_interval_hours: 2\n",
    'g.yaml:3:1: check_interval_hours: duplicate key "check_interval_hours" (first defined at line 1)',
  ],
  [
    "merge key",
    "base: &b {check_interval_hours: 1}\n<<: *b\n",
    'g.yaml:2:1: ["<<"]: YAML: merge keys (<<) are not supported: write the keys out',
  ],
  [
    "an alias as a key",
    "k: &k groups\n*k : {}\n",
    'g.yaml:2:1: ["*k"]: YAML: an alias as a mapping key is not allowed: write the key out',
  ],
  [
    "a list as a key",
    "? [a, b]\n: 1\n",
    'g.yaml:1:3: ["[\\"a\\",\\"b\\"]"]: YAML: a mapping key must be a plain scalar, not a list or mapping',
  ],
  [
    "odd tag",
    "check_interval_hours: !!js/function 'return 1'\ngroups: {}\n",
    "g.yaml:1:37: check_interval_hours: YAML: the tag !!js/function is not allowed: write a plain value",
  ],
  [
    "a local tag",
    "check_interval_hours: 1\ngroups: !set {a: 1}\n",
    "g.yaml:2:14: groups: YAML: the tag !set is not allowed: write a plain value",
  ],
  [
    "!!binary",
    "check_interval_hours: !!binary aGVsbG8=\ngroups: {}\n",
    "g.yaml:1:32: check_interval_hours: YAML: the tag !!binary is not allowed: write a plain value",
  ],
  [
    "!!timestamp",
    "check_interval_hours: 1\ngroups: {x: !!timestamp 2001-12-14}\n",
    "g.yaml:2:25: groups.x: YAML: the tag !!timestamp is not allowed: write a plain value",
  ],
  [
    "a NUL character",
    "check_interval_hours: 1\ngroups: {x: a\u0000b}\n",
    "g.yaml:2:14: (root): YAML: the character U+0000 is not allowed in YAML (control or non-character): remove it",
  ],
  [
    "thousands of aliases (the yaml package resolves each by walking the document)",
    "a: &a x\nb:\n" + " - *a\n".repeat(19_000),
    `g.yaml:1003:4: (root): YAML: more than ${YAML_LIMITS.aliases} aliases: write the values out`,
  ],
  [
    "an alias with no anchor",
    "check_interval_hours: 1\ngroups: *nope\n",
    "g.yaml:2:9: groups: YAML: alias *nope has no anchor &nope before it: define the anchor first or write the value out",
  ],
  [
    "an alias before its anchor",
    "check_interval_hours: *h\ngroups: &h {}\n",
    "g.yaml:1:23: check_interval_hours: YAML: alias *h has no anchor &h before it: define the anchor first or write the value out",
  ],
  [
    "a number key and the same key quoted (one would silently replace the other)",
    "check_interval_hours: 1\ngroups:\n  1: {}\n  '1': {}\n",
    'g.yaml:4:3: groups["1"]: duplicate key "1" (first defined at line 3)',
  ],
  [
    "a null key and an empty key",
    'check_interval_hours: 1\ngroups:\n  ~: {}\n  "": {}\n',
    'g.yaml:4:3: groups[""]: duplicate key "" (first defined at line 3)',
  ],
  [
    "a boolean key and the same word quoted",
    'check_interval_hours: 1\ngroups:\n  true: {}\n  "true": {}\n',
    'g.yaml:4:3: groups.true: duplicate key "true" (first defined at line 3)',
  ],
  [
    "an escape character",
    "check_interval_hours: 1\n\u001b[2Jgroups: {}\n",
    "g.yaml:2:1: (root): YAML: the character U+001B is not allowed in YAML (control or non-character): remove it",
  ],
];

for (const [name, text, first] of CASES) {
  Deno.test(`hostile YAML refused with its position: ${name}`, () => {
    const issues = issuesOf(text);
    assert.equal(issues[0], first);
  });
}

Deno.test("hostile YAML: the same refusals reach mesh.yaml, positioned", () => {
  assert.throws(
    () => parseMeshSettings("queue: &q {max_depth: *q}\n", "mesh.yaml"),
    /^mesh\.yaml:1:23: queue\.max_depth: YAML: alias \*q refers to a node that contains it/m,
  );
  assert.throws(
    () => parseMeshSettings(laughs(9), "mesh.yaml"),
    /^mesh\.yaml:5:10: l4\[0\]: YAML: alias \*l3 expands the document beyond/m,
  );
});

Deno.test("invalid UTF-8 is named by line and column, not replaced", () => {
  const dir = Deno.makeTempDirSync({ prefix: "joi-yaml-" });
  try {
    const path = `${dir}/groups.yaml`;
    const enc = new TextEncoder();
    const bytes = [
      ...enc.encode("check_interval_hours: 1\ngroups: {fam"),
      0xc3,
      0x28,
      ...enc.encode("ily: []}\n"),
    ];
    Deno.writeFileSync(path, new Uint8Array(bytes));
    assert.throws(
      () => loadPolicyFile("groups", path),
      (e: Error) =>
        e.message.endsWith(
          `${path}:2:13: (root): YAML: invalid UTF-8 (byte 0xc3 at offset 36): save the file as UTF-8`,
        ),
    );
    // an overlong encoding and a surrogate are refused too
    for (const bad of [[0xc0, 0xaf], [0xed, 0xa0, 0x80], [0xf8, 0x88, 0x80, 0x80, 0x80]]) {
      Deno.writeFileSync(path, new Uint8Array([...enc.encode("a: "), ...bad]));
      assert.throws(() => loadPolicyFile("groups", path), /:1:4: \(root\): YAML: invalid UTF-8/);
    }
    // a file over the limit is not even read whole
    Deno.writeFileSync(path, new Uint8Array(YAML_LIMITS.bytes * 8).fill(0x20));
    assert.throws(
      () => loadPolicyFile("groups", path),
      /:1:1: \(root\): YAML: the file is larger than the \d+ bytes a YAML file may have here/,
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test("a flat flow mapping with many entries on one line is not 'nested'", () => {
  const entries = Array.from({ length: 40 }, (_, i) => `r${i}: r${i}`).join(", ");
  const { issues } = checkPolicyText(
    "groups",
    `check_interval_hours: 1\ngroups: {family: {${entries}}}\n`,
    "g.yaml",
  );
  // the schema refuses the shape; what matters is that YAML itself is not refused
  assert.ok(
    issues.length > 0 && issues.every((i) => !i.message.startsWith("YAML:")),
    String(issues.map(formatIssue)),
  );
});

Deno.test("aliases within the bounds still work (a shared value used twice)", () => {
  const { config, issues } = checkPolicyText(
    "groups",
    "check_interval_hours: &h 2\ngroups: {}\n",
    "g.yaml",
  );
  assert.deepEqual(issues, []);
  assert.equal(config?.check_interval_hours, 2);
});
