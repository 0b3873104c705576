/** The pinned retrieve command line and the sudoers pattern derived from the manifest. */
import assert from "node:assert/strict";
import {
  localLayout,
  programSpec,
  retrieveFixedArgv,
  retrieveSpec,
  sudoersArgsPattern,
} from "../../../../services/common/permissions/mod.ts";
import { canonicalQueryJson } from "../../../../services/joi/knowledge/retrieve_protocol.ts";

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

Deno.test("the sudoers pattern admits exactly the pinned argv: the query comes on stdin", () => {
  const fixed = retrieveFixedArgv(retrieveSpec({ ...layout, codeDir: "/opt/joi.v2" }, "/"));
  // sudoers matches the arguments joined by spaces against a POSIX ERE; JS agrees on this subset
  const re = new RegExp(sudoersArgsPattern(fixed));
  const q = canonicalQueryJson({ type: "search", q: "boiler reset, now?", limit: 5 });
  assert.ok(re.test(fixed.join(" ")));
  const refused = [
    [...fixed, "search", q], // a query in argv (the old interface) is refused
    [...fixed, "extra"],
    [...fixed.slice(0, -1), "--root=/"],
    fixed.map((a) => a.replace("/opt/joi.v2", "/opt/joiXv2")),
    ["eval", "console.log(1)"],
    fixed.map((a) => a.startsWith("--allow-read=") ? "-A" : a),
  ];
  for (const argv of refused) assert.ok(!re.test(argv.join(" ")), argv.join(" "));
});
