/**
 * Fuzz: the renderers whose output a privileged tool runs. Names are
 * generated, kept only when the policy schemas accept them (that is what
 * reaches a renderer), and rendered; the output must pass the tool's own
 * check (`visudo -c`, `nft -c`, `systemd-analyze verify`) and keep the shape
 * it has for the shipped names: a generated name can never add a rule, a
 * line, a key or a unit.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { unixName } from "../../services/common/policy/primitives.ts";
import { renderTable, transaction } from "../../scripts/ai_switch/ruleset.ts";
import { DNS_LABEL } from "../../services/common/policy/primitives.ts";
import { type NebulaPlan, renderGuard, renderNodeConfig } from "../../scripts/nebula/config.ts";
import { renderSudoers } from "../../scripts/provision/sudoers.ts";
import { checkPolicyText, loadPolicyFile } from "../../services/common/policy/mod.ts";
import { parseYaml } from "../../services/common/policy/parse_yaml.ts";
import {
  productionAddressesFrom,
  renderUnits,
  unitHousehold,
} from "../../services/common/units/mod.ts";
import { check, mutated, nastyString, runs } from "./_fuzz.ts";

// deno-lint-ignore no-explicit-any
const parse = (text: string): any => parseYaml(text).doc.toJS();
import { hasExecutable, ignoreUnless, isRoot } from "../_helpers/requires.ts";

const USER = unixName("user");
const accepted = (s: string) => USER.safeParse(s).success;
/** Generated names the recipients schema accepts (most generated strings are not). */
const userName = fc.oneof(
  fc.stringMatching(/^[a-z_][a-z0-9_-]{0,31}$/),
  nastyString,
  fc.string({ maxLength: 40 }),
).filter(accepted);

async function tool(
  cmd: string,
  args: string[],
  stdin?: string,
): Promise<{ code: number; err: string }> {
  const child = new Deno.Command(cmd, {
    args,
    stdin: stdin === undefined ? "null" : "piped",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  if (stdin !== undefined) {
    const w = child.stdin.getWriter();
    await w.write(new TextEncoder().encode(stdin));
    await w.close();
  }
  const o = await child.output();
  return { code: o.code, err: new TextDecoder().decode(o.stderr) };
}

const shape = (text: string) =>
  text.split("\n").map((l) => l.replace(/[A-Za-z0-9_-]+/g, "w").replace(/w( w)*/g, "w"));

Deno.test({
  name: "fuzz: sudoers renderer (visudo -c)",
  ignore: ignoreUnless([hasExecutable("/usr/sbin/visudo"), "visudo"]),
  async fn() {
    const base = {
      retrieveBin: "/usr/local/bin/joi-retrieve",
      argsPattern: "^run --pinned (search|get) x$",
      logFile: "/var/log/joi-sudo.log",
    };
    const reference = shape(
      renderSudoers({ ...base, serviceUser: "joi", channelUsers: ["a", "b"] }),
    );
    const dir = await Deno.makeTempDir({ prefix: "joi-fuzz-sudo-" });
    const n = runs(25);
    try {
      const samples = fc.sample(fc.tuple(userName, userName, userName), n);
      for (const [svc, a, b] of samples) {
        if (a === b) continue;
        const text = renderSudoers({ ...base, serviceUser: svc, channelUsers: [a, b] });
        assert.deepEqual(shape(text), reference, "a name changed the structure");
        const file = `${dir}/s`;
        await Deno.writeTextFile(file, text, { mode: 0o440 });
        const r = await tool("visudo", ["-c", "-q", "-f", file]);
        assert.equal(r.code, 0, `visudo -c refused:\n${text}\n${r.err}`);
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    console.log(`fuzz: sudoers renderer (visudo -c): ${n} runs`);
  },
});

const domain = fc.oneof(
  fc.stringMatching(/^[a-z0-9]([a-z0-9-]{0,20}[a-z0-9])?$/),
  nastyString,
).filter((d) => DNS_LABEL.test(d) && `net-${d}`.length <= 15);

Deno.test({
  name: "fuzz: nft ruleset renderer (nft -c)",
  ignore: ignoreUnless([hasExecutable("/usr/sbin/nft"), "nft"], [isRoot(), "root"]),
  async fn() {
    const reference = shape(renderTable("pro"));
    const n = runs(20);
    for (const peer of fc.sample(domain, n)) {
      const table = renderTable(peer);
      assert.deepEqual(shape(table), reference, `peer ${peer} changed the structure`);
      const r = await tool("nft", ["-c", "-f", "-"], transaction(table));
      assert.equal(r.code, 0, `nft -c refused (peer ${JSON.stringify(peer)}):\n${r.err}`);
    }
    console.log(`fuzz: nft ruleset renderer (nft -c): ${n} runs`);
  },
});

const ipv4 = fc.tuple(
  fc.integer({ min: 1, max: 223 }),
  fc.nat(255),
  fc.nat(255),
  fc.integer({
    min: 1,
    max: 254,
  }),
).map((p) => p.join("."));

Deno.test("fuzz: Nebula config renderer", () => {
  const plan = (o: Partial<NebulaPlan>): NebulaPlan => ({
    cidr: "10.42.0.0/24",
    overlay: { mesh: "10.42.0.1", joi: "10.42.0.10", openhab: "10.42.0.20" },
    underlay: { mesh: "10.99.0.1", joi: "10.99.0.2", openhab: "10.99.0.3" },
    port: 4242,
    ports: { joiInbound: 8443, meshOutbound: 8444, joiIngest: 8445, proxy: 3128 },
    interface: "nebula1",
    pkiDir: "/etc/nebula",
    ...o,
  });
  const keysOf = (v: unknown): string[] =>
    v && typeof v === "object"
      ? Object.entries(v).flatMap(([k, x]) => [k, ...keysOf(x).map((s) => `${k}.${s}`)])
      : [];
  const reference = keysOf(parse(renderNodeConfig("joi", plan({}))))
    .filter((k) => !k.startsWith("static_host_map")).sort();
  check(
    "Nebula config renderer",
    fc.record({
      node: fc.constantFrom("mesh" as const, "joi" as const, "openhab" as const),
      overlay: fc.tuple(ipv4, ipv4, ipv4),
      underlay: fc.tuple(ipv4, ipv4, ipv4),
      port: fc.integer({ min: 1, max: 65535 }),
      iface: fc.stringMatching(/^[a-z][a-z0-9]{0,14}$/),
    }),
    ({ node, overlay, underlay, port, iface }) => {
      const p = plan({
        overlay: { mesh: overlay[0], joi: overlay[1], openhab: overlay[2] },
        underlay: { mesh: underlay[0], joi: underlay[1], openhab: underlay[2] },
        port,
        interface: iface,
      });
      const config = parse(renderNodeConfig(node, p));
      assert.equal(config.listen.port, port);
      assert.equal(config.tun.dev, iface);
      if (node === "joi") {
        const keys = keysOf(config).filter((k) => !k.startsWith("static_host_map")).sort();
        assert.deepEqual(keys, reference);
      }
      assert.ok(renderGuard(p).includes(`"${iface}"`));
    },
    200,
  );
});

Deno.test({
  name: "fuzz: unit renderer (systemd-analyze verify)",
  ignore: ignoreUnless([hasExecutable("/usr/bin/systemd-analyze"), "systemd-analyze"]),
  async fn() {
    const llm = loadPolicyFile("llm", "policies/llm.yaml");
    const tools = loadPolicyFile("tools", "policies/tools.yaml");
    const text = Deno.readTextFileSync("policies/network.yaml");
    const keysOf = (unit: string) =>
      unit.split("\n").filter((l) => /^[A-Za-z]+=/.test(l)).map((l) => l.split("=")[0]).sort();
    const household = unitHousehold(loadPolicyFile("recipients", "policies/recipients.yaml"));
    const shipped = renderUnits(
      productionAddressesFrom(loadPolicyFile("network", "policies/network.yaml"), llm, tools),
      household,
    );
    const dir = await Deno.makeTempDir({ prefix: "joi-fuzz-units-" });
    const n = runs(6);
    let rendered = 0;
    try {
      for (const t of fc.sample(mutated(text, 2), n * 20)) {
        if (rendered >= n) break;
        const { config } = checkPolicyText("network", t, "network.yaml");
        if (!config) continue; // refused by the loader: never rendered
        const units = renderUnits(productionAddressesFrom(config, llm, tools), household);
        rendered++;
        assert.deepEqual(units.map((u) => u.name), shipped.map((u) => u.name));
        for (const [i, u] of units.entries()) {
          assert.deepEqual(keysOf(u.text), keysOf(shipped[i]!.text), `${u.name}: directives`);
          await Deno.writeTextFile(`${dir}/${u.name}`, u.text);
        }
        const names = units.map((u) => `${dir}/${u.name}`);
        const out = await new Deno.Command("systemd-analyze", {
          args: ["verify", "--man=no", "--recursive-errors=no", ...names],
          stdout: "null",
          stderr: "piped",
        }).output();
        const complaints = new TextDecoder().decode(out.stderr).split("\n")
          .filter((l) => l.trim() !== "" && !/is not executable|No such file or directory/.test(l));
        assert.deepEqual(complaints, [], "systemd-analyze verify complained");
      }
    } finally {
      await Deno.remove(dir, { recursive: true });
    }
    assert.ok(rendered > 0, "no mutated network.yaml was accepted");
    console.log(`fuzz: unit renderer (systemd-analyze verify): ${rendered} runs`);
  },
});
