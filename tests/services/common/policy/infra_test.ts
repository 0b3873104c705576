import assert from "node:assert/strict";
import {
  effectiveInfra,
  formatIssue,
  type Infra,
  INFRA_MESSAGES,
  infraRules,
  loadInfra,
  parsePolicyText,
} from "../../../../services/common/policy/mod.ts";
import { applyEdit, policyErrorOf, SHIPPED } from "./helpers.ts";

/** A small exclusive-mode infra.yml; line numbers below refer to it. */
const BASE = `global:
  addressing:
    base_octet: 10
    zone_base: 100
  ai_access_policy: exclusive
  ai_access_default: pro
  ai_switch:
    state_file: /opt/anklume/ai-access-current
    log_file: /var/log/anklume/ai-switch.log
    gpu_services: [ollama]
    service_manager: incus
    gpu_machine: gpu-server
domains:
  ai-tools:
    trust_level: semi-trusted
    machines:
      gpu-server: { type: lxc, gpu: true }
  pro:
    trust_level: trusted
    machines:
      pro-dev: { type: lxc }
  perso:
    trust_level: trusted
    machines:
      perso-desktop: { type: vm }
network_policies: []
`;

function issuesOf(text: string): string[] {
  return policyErrorOf(() => parsePolicyText("infra", text, "infra.yml")).issues.map(formatIssue);
}

function edit(from: string, to: string): string {
  return applyEdit(BASE, { file: "infra.yml", from, to });
}

Deno.test("the base infra and the shipped infra.yml are valid", () => {
  const infra = parsePolicyText("infra", BASE, "infra.yml");
  assert.deepEqual(infraRules(infra), []);
  assert.equal(loadInfra(`${SHIPPED}/infra.yml`).global.ai_switch?.gpu_machine, "gpu-server");
});

Deno.test("rule 1: ai_access_policy must be exclusive or open", () => {
  assert.deepEqual(issuesOf(edit("ai_access_policy: exclusive", "ai_access_policy: shared")), [
    `infra.yml:5:21: global.ai_access_policy: ${INFRA_MESSAGES.badPolicy("shared")}`,
  ]);
  assert.equal(
    INFRA_MESSAGES.badPolicy("shared"),
    'ai_access_policy must be "exclusive" or "open", got "shared"',
  );
});

Deno.test("rule 2: exclusive needs ai_access_default", () => {
  assert.deepEqual(issuesOf(edit("  ai_access_default: pro\n", "")), [
    `infra.yml:1:1: global.ai_access_default: ai_access_policy is "exclusive" but ai_access_default is not set`,
  ]);
  assert.equal(
    INFRA_MESSAGES.noDefault,
    'ai_access_policy is "exclusive" but ai_access_default is not set',
  );
});

Deno.test("rule 3: ai_access_default cannot be ai-tools", () => {
  assert.deepEqual(issuesOf(edit("ai_access_default: pro", "ai_access_default: ai-tools")), [
    `infra.yml:6:22: global.ai_access_default: ai_access_default cannot be "ai-tools"`,
  ]);
});

Deno.test("rule 4: ai_access_default must be a known domain", () => {
  assert.deepEqual(issuesOf(edit("ai_access_default: pro", "ai_access_default: work")), [
    `infra.yml:6:22: global.ai_access_default: ai_access_default "work" is not a known domain (known: ai-tools, perso, pro)`,
  ]);
});

Deno.test("rule 5: exclusive needs an ai-tools domain", () => {
  const text = edit(
    "  ai-tools:\n    trust_level: semi-trusted\n    machines:\n      gpu-server: { type: lxc, gpu: true }\n",
    "",
  ).replace("gpu_machine: gpu-server", "gpu_machine: pro-dev");
  assert.deepEqual(issuesOf(text), [
    `infra.yml:13:1: domains: ai_access_policy is "exclusive" but there is no "ai-tools" domain`,
  ]);
});

Deno.test("rule 6: at most one network policy may target ai-tools", () => {
  const text = edit(
    "network_policies: []\n",
    "network_policies:\n  - { from: pro, to: ai-tools }\n  - { from: ai-tools, to: perso, bidirectional: true }\n",
  );
  assert.deepEqual(issuesOf(text), [
    `infra.yml:28:5: network_policies[1]: at most one network policy may target "ai-tools", found 2`,
  ]);
  // one-way traffic from ai-tools does not give perso access
  const oneWay = edit(
    "network_policies: []\n",
    "network_policies:\n  - { from: pro, to: ai-tools }\n  - { from: ai-tools, to: perso }\n",
  );
  assert.deepEqual(infraRules(parsePolicyText("infra", oneWay, "infra.yml")), []);
});

Deno.test("open mode allows several policies to ai-tools and needs no default", () => {
  const text = edit(
    "ai_access_policy: exclusive\n  ai_access_default: pro\n",
    "ai_access_policy: open\n",
  )
    .replace(
      "network_policies: []\n",
      "network_policies:\n  - { from: pro, to: ai-tools }\n  - { from: perso, to: ai-tools }\n",
    );
  assert.equal(parsePolicyText("infra", text, "infra.yml").network_policies.length, 2);
});

Deno.test("network policies must name known domains or host", () => {
  const text = edit("network_policies: []\n", "network_policies:\n  - { from: host, to: prod }\n");
  assert.deepEqual(issuesOf(text), [
    `infra.yml:27:23: network_policies[0].to: unknown domain "prod" (known: ai-tools, perso, pro, or "host")`,
  ]);
});

Deno.test("domain and machine names must be DNS-safe", () => {
  assert.deepEqual(issuesOf(edit("  perso:\n", "  -perso:\n")), [
    `infra.yml:22:3: domains["-perso"]: domain name "-perso" is not DNS-safe (lowercase letters, digits and "-", not starting or ending with "-")`,
  ]);
  assert.deepEqual(issuesOf(edit("pro-dev: { type: lxc }", "Pro.Dev: { type: lxc }")), [
    `infra.yml:21:7: domains.pro.machines["Pro.Dev"]: machine name "Pro.Dev" is not DNS-safe (lowercase letters, digits and "-", not starting or ending with "-")`,
  ]);
});

Deno.test("the switch settings are checked: gpu_machine in ai-tools, unit names, manager", () => {
  assert.deepEqual(issuesOf(edit("gpu_machine: gpu-server", "gpu_machine: pro-dev")), [
    `infra.yml:12:18: global.ai_switch.gpu_machine: gpu_machine "pro-dev" is not a machine of the "ai-tools" domain (machines: gpu-server)`,
  ]);
  assert.deepEqual(issuesOf(edit("gpu_services: [ollama]", "gpu_services: [--now]")), [
    `infra.yml:10:20: global.ai_switch.gpu_services[0]: "--now" is not a service unit name`,
  ]);
  assert.deepEqual(issuesOf(edit("service_manager: incus", "service_manager: docker")), [
    `infra.yml:11:22: global.ai_switch.service_manager: must be one of "systemctl", "incus", got string "docker"`,
  ]);
});

Deno.test("effectiveInfra adds the default domain's policy in exclusive mode, and says so", () => {
  const infra = parsePolicyText("infra", BASE, "infra.yml");
  const { infra: eff, notes } = effectiveInfra(infra);
  assert.deepEqual(eff.network_policies, [{
    description: "pro reaches the AI tools (added: ai_access_policy is exclusive)",
    from: "pro",
    to: "ai-tools",
    bidirectional: true,
  }]);
  assert.deepEqual(notes, [
    'added network policy pro <-> ai-tools: ai_access_policy is "exclusive" and no network policy targets "ai-tools", so ai_access_default "pro" gets the access',
  ]);
  assert.deepEqual(infra.network_policies, [], "the input is not modified");
  assert.deepEqual(infraRules(eff), []);
});

Deno.test("effectiveInfra changes nothing when a policy targets ai-tools, or in open mode", () => {
  const withPolicy = parsePolicyText(
    "infra",
    edit("network_policies: []\n", "network_policies:\n  - { from: perso, to: ai-tools }\n"),
    "infra.yml",
  );
  assert.deepEqual(effectiveInfra(withPolicy), { infra: withPolicy, notes: [] });
  const open: Infra = parsePolicyText("infra", edit("exclusive", "open"), "infra.yml");
  assert.deepEqual(effectiveInfra(open), { infra: open, notes: [] });
});

Deno.test("loadInfra returns the effective infra and throws PolicyError on a broken file", async () => {
  const dir = await Deno.makeTempDir({ prefix: "joi-infra-" });
  try {
    await Deno.writeTextFile(`${dir}/infra.yml`, BASE);
    const infra = loadInfra(`${dir}/infra.yml`);
    assert.deepEqual(infra.network_policies.map((p) => [p.from, p.to]), [["pro", "ai-tools"]]);
    assert.throws(() => (infra.network_policies as unknown[]).push({}), TypeError, "frozen");
    await Deno.writeTextFile(
      `${dir}/infra.yml`,
      edit("ai_access_default: pro", "ai_access_default: ai-tools"),
    );
    const err = policyErrorOf(() => loadInfra(`${dir}/infra.yml`));
    assert.deepEqual(err.issues.map(formatIssue), [
      `${dir}/infra.yml:6:22: global.ai_access_default: ai_access_default cannot be "ai-tools"`,
    ]);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("infraRules positions its issues in the loaded file, or at line 0 for built values", () => {
  const infra = parsePolicyText("infra", BASE, "infra.yml");
  const built: Infra = structuredClone(infra);
  built.global.ai_access_default = "ai-tools";
  assert.deepEqual(infraRules(built).map(formatIssue), [
    'infra.yml:0:0: global.ai_access_default: ai_access_default cannot be "ai-tools"',
  ]);
  // effectiveInfra keeps the source: a rule broken on its result still points into the file
  const { infra: eff } = effectiveInfra(infra);
  eff.global.ai_access_default = "ai-tools";
  assert.deepEqual(infraRules(eff).map(formatIssue), [
    'infra.yml:6:22: global.ai_access_default: ai_access_default cannot be "ai-tools"',
  ]);
});
