import assert from "node:assert/strict";
import { parseYaml } from "../../services/common/policy/parse_yaml.ts";
import { denoRunArgs, localLayout, programSpec } from "../../services/common/permissions/mod.ts";
import { printCert } from "../../scripts/nebula/certs.ts";
import { firewallOf, renderGuard } from "../../scripts/nebula/config.ts";
import { parseUnderlay } from "../../scripts/nebula.ts";
import { hasExecutable, ignoreUnless, isRoot } from "../_helpers/requires.ts";

const ROOT = new URL("../../", import.meta.url).pathname;
const UNDERLAY = "mesh=192.0.2.1,joi=192.0.2.2,openhab=192.0.2.3";

async function runNebulaTask(varDir: string, extra: string[]) {
  const spec = programSpec("nebula", localLayout({ varDir }));
  const [run, ...rest] = denoRunArgs(spec);
  return await new Deno.Command("deno", {
    args: [run, "--frozen", ...rest, ...extra],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
}

Deno.test({
  name: "nebula: CA, three short-lived node certs with their groups, configs that nebula accepts",
  ignore: ignoreUnless([
    hasExecutable("/usr/bin/nebula-cert"),
    "nebula-cert (Debian package nebula)",
  ]),
  async fn() {
    const varDir = await Deno.makeTempDir({ prefix: "joi-nebula-" });
    try {
      const out = `${varDir}/nebula`;
      const res = await runNebulaTask(varDir, [`--underlay=${UNDERLAY}`, `--pki-dir=${out}`]);
      assert.equal(res.code, 0, new TextDecoder().decode(res.stderr));
      const ca = await printCert("/usr/bin/nebula-cert", `${out}/ca.crt`);
      assert.equal(ca.isCa, true);
      const expect = {
        mesh: ["gateway", "10.42.0.1/24"],
        joi: ["ai", "10.42.0.10/24"],
        openhab: ["openhab", "10.42.0.20/24"],
      };
      for (const [node, [group, ip]] of Object.entries(expect)) {
        const c = await printCert("/usr/bin/nebula-cert", `${out}/${node}.crt`);
        assert.deepEqual(c.groups, [group], `${node} groups`);
        assert.deepEqual(c.ips, [ip], `${node} ip`);
        const days = (Date.parse(c.notAfter) - Date.now()) / 86_400_000;
        assert.ok(days > 80 && days <= 90.1, `${node} lives ~90 days, got ${days.toFixed(1)}`);
        assert.equal((await Deno.stat(`${out}/${node}.key`)).mode! & 0o777, 0o600);
        {
          const t = await new Deno.Command("/usr/bin/nebula", {
            args: ["-test", "-config", `${out}/${node}.yml`],
            stdout: "piped",
            stderr: "piped",
          }).output();
          assert.equal(t.code, 0, `nebula -test ${node}: ${new TextDecoder().decode(t.stderr)}`);
        }
      }
      assert.equal((await Deno.stat(`${out}/ca.key`)).mode! & 0o777, 0o600);
      const joi = parseYaml(await Deno.readTextFile(`${out}/joi.yml`)).doc.toJS();
      assert.equal(joi.firewall.inbound_action, "drop");
      assert.deepEqual(joi.firewall.inbound.slice(0, 2), [
        { port: 8443, proto: "tcp", group: "gateway" },
        { port: 8445, proto: "tcp", group: "openhab" },
      ]);
      assert.equal(
        joi.listen.host,
        "192.0.2.2",
        "nebula listens on the underlay address, not 0.0.0.0",
      );

      // Rotation re-signs the nodes and keeps the CA.
      const before = await Deno.readTextFile(`${out}/joi.crt`);
      const caBefore = await Deno.readTextFile(`${out}/ca.crt`);
      const rot = await runNebulaTask(varDir, [
        `--underlay=${UNDERLAY}`,
        `--pki-dir=${out}`,
        "--rotate",
      ]);
      assert.equal(rot.code, 0, new TextDecoder().decode(rot.stderr));
      assert.notEqual(await Deno.readTextFile(`${out}/joi.crt`), before);
      assert.equal(await Deno.readTextFile(`${out}/ca.crt`), caBefore);
    } finally {
      await Deno.remove(varDir, { recursive: true });
    }
  },
});

Deno.test("nebula: bad --underlay is refused with the node named", async () => {
  assert.throws(() => parseUnderlay("mesh=1.2.3.4,joi=1.2.3.5"), /missing openhab=IP/);
  assert.throws(() => parseUnderlay("mesh=1.2.3.4,jio=1.2.3.5"), /unknown node "jio"/);
  assert.throws(
    () => parseUnderlay("mesh=1.2.3,joi=1.2.3.5,openhab=1.1.1.1"),
    /mesh=1.2.3 is not an IPv4/,
  );
  const varDir = await Deno.makeTempDir({ prefix: "joi-nebula-" });
  try {
    const res = await runNebulaTask(varDir, ["--underlay=mesh=nope"]);
    assert.equal(res.code, 1);
    assert.match(
      new TextDecoder().decode(res.stderr),
      /nebula: --underlay: mesh=nope is not an IPv4 address/,
    );
  } finally {
    await Deno.remove(varDir, { recursive: true });
  }
});

Deno.test("nebula: the firewall opens each port to exactly one group, as in the architecture", () => {
  const ports = { joiInbound: 8443, meshOutbound: 8444, joiIngest: 8445, proxy: 3128 };
  const mesh = firewallOf("mesh", ports);
  assert.deepEqual(mesh.inbound.filter((r) => r.proto === "tcp"), [
    { port: 8444, proto: "tcp", group: "ai" },
    { port: 3128, proto: "tcp", group: "ai" },
  ]);
  assert.deepEqual(firewallOf("openhab", ports).inbound.filter((r) => r.proto === "tcp"), []);
  assert.deepEqual(firewallOf("openhab", ports).outbound.filter((r) => r.proto === "tcp"), [
    { port: 8445, proto: "tcp", group: "ai" },
  ]);
});

Deno.test({
  name: "nebula: the guard ruleset passes nft's own check",
  ignore: ignoreUnless([isRoot(), "root"], [hasExecutable("/usr/sbin/nft"), "nft"]),
  async fn() {
    const dir = await Deno.makeTempDir();
    try {
      await Deno.writeTextFile(
        `${dir}/g.nft`,
        renderGuard({ cidr: "10.42.0.0/24", interface: "nebula1" }),
      );
      const r = await new Deno.Command("nft", {
        args: ["-c", "-f", `${dir}/g.nft`],
        stderr: "piped",
      }).output();
      assert.equal(r.code, 0, new TextDecoder().decode(r.stderr));
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
  },
});
