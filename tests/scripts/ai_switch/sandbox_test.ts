import assert from "node:assert/strict";
import { localLayout, programSpec } from "../../../services/common/permissions/mod.ts";
import { retargetSpec } from "../../../scripts/ai_switch/sandbox.ts";
import { parseOptions } from "../../../scripts/ai_switch/cli.ts";

const spec = programSpec("ai_switch", localLayout());

Deno.test("ai-switch's sandbox: no network, no environment, exact binaries and files", () => {
  const p = spec.permissions;
  assert.deepEqual(p.net, []);
  assert.deepEqual(p.env, []);
  assert.deepEqual(p.sys, ["uid"]); // the lock's folder must be root's (or the caller's)
  assert.deepEqual(p.run, [
    "/usr/sbin/nft",
    "/usr/bin/nvidia-smi",
    "/usr/bin/systemctl",
    "/usr/bin/incus",
    "/usr/bin/kill",
  ]);
  assert.deepEqual(p.write, [
    "/opt/anklume/ai-access-current",
    "/opt/anklume/ai-access-current.tmp",
    "/var/log/anklume/ai-switch.log",
    "/run/anklume",
    "/run/anklume/ai-switch.lock",
  ]);
  // files only, but the lock's folder: checked (root's, 0700) and created if missing
  for (const r of p.read.filter((r) => r !== "/run/anklume")) {
    assert.ok(!r.endsWith("/"), `read ${r} is a file, not a folder`);
  }
});

Deno.test("the manifest's arguments are the paths its sandbox grants", () => {
  const o = parseOptions([...spec.args, "status"]);
  assert.equal(o.stateFile, "/opt/anklume/ai-access-current");
  assert.equal(o.logFile, "/var/log/anklume/ai-switch.log");
  assert.equal(o.lockFile, "/run/anklume/ai-switch.lock");
  assert.deepEqual(Object.values(o.bins).sort(), [...spec.permissions.run].sort());
  for (const path of [o.stateFile!, o.logFile!, o.lockFile, o.infra]) {
    assert.ok(spec.permissions.read.includes(path), `${path} readable`);
  }
});

Deno.test("retargetSpec moves every path and refuses one the manifest lacks", () => {
  const t = retargetSpec(spec, {
    "/opt/anklume/ai-access-current": "/tmp/x/state",
    "/usr/sbin/nft": "/tmp/x/nft",
  });
  assert.ok(t.permissions.write.includes("/tmp/x/state.tmp"));
  assert.ok(t.args.includes("--state-file=/tmp/x/state"));
  assert.ok(t.args.includes("--nft-bin=/tmp/x/nft"));
  assert.ok(!JSON.stringify(t).includes("/opt/anklume"));
  assert.throws(
    () => retargetSpec(spec, { "/usr/bin/curl": "/tmp/curl" }),
    /\/usr\/bin\/curl not found in the ai_switch manifest entry/,
  );
});
