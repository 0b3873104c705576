import assert from "node:assert/strict";
import { localLayout, programSpec } from "../../../services/common/permissions/mod.ts";
import { parseMeshArgs, UsageError } from "../../../services/mesh/main.ts";
import { loadMeshConfig, parseMeshSettings } from "../../../services/mesh/config.ts";
import { PolicyError } from "../../../services/common/policy/mod.ts";
import { writeConfigDir } from "./harness.ts";

Deno.test("main parses exactly the args of the manifest's mesh entry", () => {
  const terminal = parseMeshArgs(programSpec("mesh", localLayout()).args);
  assert.deepEqual(terminal.signal, { kind: "terminal" });
  assert.deepEqual(terminal.listen, { host: "127.0.0.1", port: 8444 });
  const sock = parseMeshArgs(
    programSpec("mesh", { ...localLayout(), signal: { kind: "socket", path: "/run/s" } }).args,
  );
  assert.deepEqual(sock.signal, { kind: "socket", path: "/run/s" });
});

Deno.test("bad command lines are refused with a message naming the option", () => {
  const base = [
    "--config-dir=c",
    "--state-dir=s",
    "--log-dir=l",
    "--joi-url=http://127.0.0.1:8443",
    "--terminal",
  ];
  const cases: [string[], RegExp][] = [
    [[...base, "--listen=0.0.0.0:8444"], /every interface/],
    [[...base, "--listen=localhost:8444"], /IP:PORT/],
    [[...base, "--listen=127.0.0.1:99999"], /IP:PORT/],
    [[...base, "--listen=127.0.0.1:8444", "--signal-socket=/x"], /not both/],
    [[...base, "--listen=127.0.0.1:8444", "--bogus"], /bogus/],
    [base.filter((a) => a !== "--terminal").concat("--listen=127.0.0.1:1"), /signal-socket/],
  ];
  for (const [args, re] of cases) {
    assert.throws(
      () => parseMeshArgs(args),
      (e: unknown) => e instanceof UsageError && re.test(e.message),
    );
  }
});

Deno.test("mesh.yaml: defaults, and errors that name the field", () => {
  const d = parseMeshSettings("");
  assert.equal(d.inbound_max_chars, undefined, "policy.yaml's max_inbound_chars applies");
  assert.equal(d.assistant_name, "Joi");
  assert.deepEqual(d.presence, {
    typing: true,
    typing_refresh_seconds: 10,
    typing_max_seconds: 180,
    read_receipts: true,
  });
  assert.equal(d.signal_cli.version_warn_days, 75);
  assert.equal(d.voice, undefined);
  assert.throws(
    () => parseMeshSettings("inbound_max_chars: -1", "m.yaml"),
    /m\.yaml:1:20: inbound_max_chars: must be > 0/,
  );
  assert.throws(
    () =>
      parseMeshSettings(
        "voice: { whisper: { bin: whisper, model: m }, ffmpeg: { bin: /f } }",
      ),
    /^mesh\.yaml:1:26: voice\.whisper\.bin: must be an absolute path/m,
  );
  assert.throws(() => parseMeshSettings("surprise: 1"), /surprise|Unrecognized/);
  assert.throws(() => parseMeshSettings("surprise: 1", "m.yaml"), /^m\.yaml:1:1: surprise: /m);
  assert.throws(() => parseMeshSettings("a: [", "m.yaml"), /^m\.yaml:1:\d+: .*YAML: /m);
});

Deno.test("the shipped policies/mesh.yaml is valid and states the defaults", () => {
  const shipped = parseMeshSettings(
    Deno.readTextFileSync("policies/mesh.yaml"),
    "policies/mesh.yaml",
  );
  assert.deepEqual(shipped, parseMeshSettings(""));
});

Deno.test("mesh.yaml agrees with the household: owner and critical channel are checked at load", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mesh-household-" });
  try {
    await writeConfigDir(dir, "inbound_max_chars: 1500\n");
    assert.equal(loadMeshConfig(dir).settings.critical_channel, "critical_group");
    const refused = async (meshYaml: string, re: RegExp) => {
      await Deno.writeTextFile(`${dir}/mesh.yaml`, meshYaml);
      assert.throws(() => loadMeshConfig(dir), (e: unknown) => {
        assert.ok(e instanceof PolicyError, String(e));
        assert.match(e.message, re);
        return true;
      });
    };
    await refused(
      "inbound_max_chars: 1500\nowner_recipient: stranger\n",
      /mesh\.yaml:2:18: owner_recipient: "stranger" is not a recipient of identities\.yaml \(it has: owner, partner\)/,
    );
    await refused(
      "critical_channel: family_group\n",
      /mesh\.yaml:1:19: critical_channel: must be "critical_group", the channel of recipients\.yaml's group "critical"/,
    );
    // the critical group must exist in groups.yaml, or alarms and drift alerts go nowhere
    const groups = await Deno.readTextFile(`${dir}/groups.yaml`);
    await Deno.writeTextFile(
      `${dir}/groups.yaml`,
      groups.replace(/^ {2}critical_group:[\s\S]*$/m, ""),
    );
    await refused(
      "",
      /mesh\.yaml:\d+:\d+: critical_channel: "critical_group" is not a group of groups\.yaml/,
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
