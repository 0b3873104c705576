/**
 * infra.yml as ai-switch sees it: each validation rule of ai-switch.md with
 * its stable message, refused targets, and the CLI's usage errors. All of
 * these fail before anything is run or changed.
 */
import assert from "node:assert/strict";
import { INFRA_MESSAGES } from "../../../services/common/policy/mod.ts";
import { type CliIo, main } from "../../../scripts/ai_switch/cli.ts";
import { createLogger } from "../../../services/common/log.ts";
import { infraYaml } from "./harness.ts";

interface Run {
  code: number;
  out: string[];
  err: string[];
  ran: string[];
}

/** Runs the CLI in-process against an infra.yml text; records any command it tries to run. */
async function run(infra: string, args: string[]): Promise<Run> {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/infra.yml`, infra);
    const r: Run = { code: -1, out: [], err: [], ran: [] };
    const io: CliIo = {
      out: (l) => r.out.push(l),
      err: (l) => r.err.push(l),
      run: (bin, a) => {
        r.ran.push([bin, ...a].join(" "));
        return Promise.resolve({ code: 1, stdout: "", stderr: "not in this test" });
      },
      now: () => new Date(0),
      logger: createLogger("ai_switch", { quiet: true }),
    };
    r.code = await main([
      `--infra=${dir}/infra.yml`,
      `--state-file=${dir}/state`,
      `--log-file=${dir}/log`,
      `--lock-file=${dir}/lock`,
      ...args,
    ], io);
    // Nothing was written: no state, no log, no lock.
    const names: string[] = [];
    for await (const e of Deno.readDir(dir)) names.push(e.name);
    if (r.code !== 0) assert.deepEqual(names, ["infra.yml"], "a refused run wrote files");
    return r;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

const base = { stateFile: "/opt/anklume/ai-access-current", logFile: "/var/log/anklume/x.log" };
const SWITCH = ["switch", "--domain", "perso"];

async function refused(infra: string, args: string[], message: string) {
  const r = await run(infra, args);
  assert.equal(r.code, 2, r.err.join("\n"));
  assert.ok(r.err.join("\n").includes(message), `expected ${message} in:\n${r.err.join("\n")}`);
  assert.deepEqual(r.ran, [], "nothing may run when the configuration is refused");
}

Deno.test("rule 1: ai_access_policy must be exclusive or open", async () => {
  await refused(
    infraYaml({ ...base, policy: "shared" }),
    SWITCH,
    INFRA_MESSAGES.badPolicy("shared"),
  );
});

Deno.test("rule 2: exclusive needs ai_access_default", async () => {
  await refused(infraYaml({ ...base, defaultDomain: null }), SWITCH, INFRA_MESSAGES.noDefault);
});

Deno.test("rule 3: ai_access_default cannot be ai-tools", async () => {
  await refused(
    infraYaml({ ...base, defaultDomain: "ai-tools" }),
    SWITCH,
    INFRA_MESSAGES.defaultIsAiTools,
  );
});

Deno.test("rule 4: ai_access_default must be a known domain", async () => {
  await refused(
    infraYaml({ ...base, defaultDomain: "nope" }),
    SWITCH,
    INFRA_MESSAGES.unknownDefault("nope", ["ai-tools", "anklume", "perso", "pro"]),
  );
});

Deno.test("rule 5: exclusive needs the ai-tools domain", async () => {
  await refused(
    infraYaml({ ...base, noAiTools: true, extraPolicies: "  []" }).replace(
      "network_policies:\n  []",
      "network_policies: []",
    ),
    SWITCH,
    INFRA_MESSAGES.noAiTools,
  );
});

Deno.test("rule 6: at most one network policy may target ai-tools", async () => {
  await refused(
    infraYaml({
      ...base,
      extraPolicies: "  - {from: pro, to: ai-tools}\n  - {from: perso, to: ai-tools}",
    }),
    SWITCH,
    INFRA_MESSAGES.tooManyPolicies(2),
  );
});

Deno.test("errors point at file, line and column", async () => {
  const r = await run(infraYaml({ ...base, policy: "shared" }), SWITCH);
  assert.match(r.err.join("\n"), /infra\.yml:5:\d+: global\.ai_access_policy: /);
});

Deno.test("an unknown domain is refused, naming the choices", async () => {
  await refused(
    infraYaml(base),
    ["switch", "--domain", "nope"],
    `Domain not found: "nope" is not a domain of infra.yml. Choose one of: anklume, perso, pro`,
  );
});

Deno.test("ai-tools cannot be the target", async () => {
  await refused(
    infraYaml(base),
    ["switch", "--domain", "ai-tools"],
    `cannot give access to "ai-tools": it is the AI-tools domain itself`,
  );
});

Deno.test("ai_access_policy open makes switch refuse with a clear message", async () => {
  await refused(
    infraYaml({ ...base, policy: "open" }),
    SWITCH,
    `ai_access_policy is "open" in infra.yml: every domain already reaches ai-tools`,
  );
});

Deno.test("exclusive with no policy towards ai-tools adds the default's, and says so", async () => {
  const r = await run(
    infraYaml({ ...base, extraPolicies: "  - {from: pro, to: perso}" }),
    ["switch", "--domain", "nope"],
  );
  assert.equal(r.code, 2);
  assert.ok(
    r.err.some((l) => l.startsWith("ai-switch: note: added network policy pro <-> ai-tools")),
  );
});

Deno.test("usage errors are refused before anything runs", async () => {
  const infra = infraYaml(base);
  await refused(infra, ["switch"], "switch needs --domain D");
  await refused(infra, ["jump"], `unknown command "jump"`);
  await refused(infra, [], "expected exactly one command");
  await refused(infra, ["status", "--domain", "pro"], "belong to switch");
  await refused(infra, [...SWITCH, "--nft-bin=nft"], "--nft-bin must be an absolute path");
  await refused(infra, [...SWITCH, "--lock-timeout=-1"], "--lock-timeout must be seconds");
  await refused(infra, ["history", "--limit=0"], "--limit must be a positive integer");
  await refused(infra, [...SWITCH, "--bogus"], "Unknown option '--bogus'");
});

Deno.test("a missing or malformed infra.yml is refused naming the file", async () => {
  await refused("global: [\n", SWITCH, "infra.yml:");
  const r = await run(infraYaml(base), ["--infra=/nonexistent/infra.yml", ...SWITCH]);
  assert.equal(r.code, 2);
  assert.match(r.err.join("\n"), /\/nonexistent\/infra\.yml:1:1: .*cannot read the file/);
});
