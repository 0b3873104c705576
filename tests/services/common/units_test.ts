import assert from "node:assert/strict";
import { shippedUnits } from "../../../scripts/sync.ts";
import { hasExecutable, ignoreUnless } from "../../_helpers/requires.ts";

const ROOT = new URL("../../../", import.meta.url).pathname;

Deno.test("systemd/ holds exactly the units the manifest renders (run `deno task sync`)", async () => {
  const units = shippedUnits(`${ROOT}policies`);
  const committed = [...Deno.readDirSync(`${ROOT}systemd`)].map((e) => e.name).sort();
  assert.deepEqual(committed, units.map((u) => u.name).sort());
  for (const u of units) {
    assert.equal(await Deno.readTextFile(`${ROOT}systemd/${u.name}`), u.text, `${u.name} drifted`);
  }
});

Deno.test("units: each Deno service runs as its own user, bound to its Nebula address, secrets as credentials", () => {
  const units = Object.fromEntries(shippedUnits(`${ROOT}policies`).map((u) => [u.name, u.text]));
  const joi = units["joi.service"];
  assert.match(joi!, /^User=joi$/m);
  assert.match(joi!, /^UMask=0027$/m);
  assert.match(joi!, /^ExecStartPre=\+\/usr\/local\/bin\/deno run .*scripts\/validate\.ts/m);
  assert.match(joi!, /^ExecReload=\/bin\/kill -HUP \$MAINPID$/m);
  assert.match(joi!, /--listen=10\.42\.0\.10:8443/);
  assert.match(joi!, /^LoadCredential=mesh_to_joi\.key:\/etc\/joi\/secrets\/mesh_to_joi\.key$/m);
  assert.match(units["joi-mesh.service"]!, /^User=joi-mesh$/m);
  assert.match(units["joi-mesh.service"]!, /^SupplementaryGroups=signal-cli$/m);
  assert.match(units["joi-openhab-relay.service"]!, /^User=joi-relay$/m);
  assert.match(units["signal-cli.socket"]!, /^SocketGroup=signal-cli$/m);
  assert.match(units["signal-cli.socket"]!, /^SocketMode=0660$/m);
  assert.match(units["signal-cli.service"]!, /--receive-mode=on-connection/);
  assert.match(units["joi-validate.timer"]!, /^OnCalendar=daily$/m);
  for (const [name, text] of Object.entries(units)) {
    assert.doesNotMatch(text, /(^|[^\d.])0\.0\.0\.0([^\d/]|$)/m, `${name} binds or allows 0.0.0.0`);
    assert.doesNotMatch(text, /--allow-all|(\s)-A(\s)/, name);
    if (name.endsWith(".service") && text.includes("deno run")) {
      assert.match(text, /--cached-only/, `${name} must never reach a registry`);
      assert.match(text, /^IPAddressDeny=any$/m, name);
      assert.match(text, /^CapabilityBoundingSet=/m, name);
    }
  }
});

Deno.test({
  name:
    "units: systemd-analyze security --offline scores every unit at or below 1.5, no unknown keys",
  ignore: ignoreUnless([hasExecutable("/usr/bin/systemd-analyze"), "systemd-analyze"]),
  async fn() {
    for (const entry of Deno.readDirSync(`${ROOT}systemd`)) {
      if (!entry.name.endsWith(".service")) continue;
      const out = await new Deno.Command("systemd-analyze", {
        args: ["security", "--offline=true", "--threshold=15", `${ROOT}systemd/${entry.name}`],
        stdout: "piped",
        stderr: "piped",
      }).output();
      const text = new TextDecoder().decode(out.stdout) + new TextDecoder().decode(out.stderr);
      assert.doesNotMatch(
        text,
        /Unknown key|Unknown section|Invalid|Failed to parse/i,
        `${entry.name}: ${text}`,
      );
      const score = Number(text.match(/Overall exposure level for \S+: ([\d.]+)/)?.[1]);
      assert.ok(score <= 1.5, `${entry.name}: exposure ${score} > 1.5`);
      assert.equal(out.code, 0, `${entry.name}: systemd-analyze exit ${out.code}`);
    }
  },
});
