/** The pinned retrieve command line and the sudoers pattern derived from the manifest. */
import assert from "node:assert/strict";
import { localLayout, programSpec } from "../../../../services/common/permissions/mod.ts";
import {
  retrieveFixedArgv,
  retrieveSpec,
  sudoersArgsPattern,
} from "../../../../services/joi/knowledge/retrieve_argv.ts";
import { canonicalQueryJson } from "../../../../scripts/retrieve.ts";

const layout = { ...localLayout(), codeDir: "/opt/joi", joiStateDir: "/var/lib/joi" };

Deno.test("the fixed argv is the manifest's retrieve entry, absolute, with no other permission", () => {
  const argv = retrieveFixedArgv(retrieveSpec(layout, "/"));
  assert.deepEqual(argv, [
    "run",
    "--no-prompt",
    "--no-config",
    "--no-lock",
    "--no-remote",
    "--no-npm",
    "--v8-flags=--max-old-space-size=192",
    "--allow-read=/var/lib/joi/knowledge",
    "--allow-sys=uid",
    "/opt/joi/scripts/retrieve.ts",
    "--root=/var/lib/joi/knowledge",
  ]);
  const spec = programSpec("retrieve", layout);
  assert.deepEqual(spec.permissions.write, []);
  assert.deepEqual(spec.permissions.net, []);
  assert.deepEqual(spec.permissions.run, []);
  assert.deepEqual(spec.permissions.env, []);
});

Deno.test("relative layouts are resolved against the working directory", () => {
  const argv = retrieveFixedArgv(retrieveSpec(localLayout(), "/srv/joi"));
  assert.ok(argv.includes("--allow-read=/srv/joi/var/joi/knowledge"));
  assert.ok(argv.includes("/srv/joi/scripts/retrieve.ts"));
  assert.ok(argv.includes("--root=/srv/joi/var/joi/knowledge"));
});

Deno.test("paths sudoers cannot pin are refused", () => {
  for (const bad of ["/var/lib/jo i", "/var/lib/joi,x", "/var/lib/j:oi", "/var/lib/(joi)"]) {
    assert.throws(
      () => retrieveFixedArgv(retrieveSpec({ ...layout, joiStateDir: bad }, "/")),
      /sudoers cannot pin|permission manifest: invalid/,
    );
  }
});

Deno.test("the sudoers pattern admits exactly the pinned argv + type + canonical query", () => {
  const fixed = retrieveFixedArgv(retrieveSpec({ ...layout, codeDir: "/opt/joi.v2" }, "/"));
  // sudoers matches the arguments joined by spaces against a POSIX ERE; JS agrees on this subset
  const re = new RegExp(sudoersArgsPattern(fixed));
  const q = canonicalQueryJson({ type: "search", q: "boiler reset, now?", limit: 5 });
  assert.ok(re.test([...fixed, "search", q].join(" ")));
  assert.ok(re.test([...fixed, "get", '{"id":"a1b2c3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d"}'].join(" ")));
  const refused = [
    [...fixed, "search", '{"q":"a b"}'],
    [...fixed, "search", q, "extra"],
    [...fixed, "eval", q],
    [...fixed.slice(0, -1), "--root=/", "search", q],
    [...fixed.map((a) => a.replace("/opt/joi.v2", "/opt/joiXv2")), "search", q],
    ["eval", "console.log(1)"],
    [...fixed, "search", '{"q":"x"};id'],
  ];
  for (const argv of refused) assert.ok(!re.test(argv.join(" ")), argv.join(" "));
});
