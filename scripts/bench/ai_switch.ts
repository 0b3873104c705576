/**
 * ai-switch benchmark: the time of `switch --no-flush` (lock, stop services,
 * check + apply + read back the ruleset, start services, state, log) against
 * its baseline, the nft ruleset transaction alone, both measured in the same
 * run inside a throw-away network namespace with the service stand-ins of
 * tests/peers/ai_switch. Also the CLI cold start (one `deno run` per switch).
 * Needs root (namespaces, nft); says so and returns otherwise.
 *
 * @module
 */
import { denoRunArgs, localLayout, programSpec } from "../../services/common/permissions/mod.ts";
import { retargetSpec } from "../ai_switch/sandbox.ts";
import { percentile as pct } from "./_stats.ts";

const PEERS = new URL("../../tests/peers/ai_switch/", import.meta.url).pathname;
const ROUNDS = 60;
const COLD_RUNS = 5;
const dec = new TextDecoder();

async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  const o = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  return { code: o.code, out: dec.decode(o.stdout), err: dec.decode(o.stderr) };
}

function stats(ms: number[]): { median: number; p95: number } {
  const s = [...ms].sort((a, b) => a - b);
  return {
    median: s[Math.floor(s.length / 2)] ?? NaN,
    p95: pct(s, 95),
  };
}

const INFRA = `global:
  addressing: {base_octet: 10, zone_base: 100}
  ai_access_policy: exclusive
  ai_access_default: pro
  ai_switch:
    state_file: /opt/anklume/ai-access-current
    log_file: /var/log/anklume/ai-switch.log
    gpu_services: [ollama, speaches]
    service_manager: systemctl
    gpu_machine: gpu-server
domains:
  ai-tools: {trust_level: semi-trusted, machines: {gpu-server: {type: lxc, gpu: true}}}
  pro: {trust_level: trusted, machines: {pro-dev: {type: lxc}}}
  perso: {trust_level: trusted, machines: {perso-desktop: {type: lxc}}}
network_policies:
  - {from: pro, to: ai-tools, bidirectional: true}
`;

/** Prints the figures. */
export async function bench(): Promise<void> {
  const ns = `aisb${(Deno.pid % 46656).toString(36)}`;
  const made = await run("ip", ["netns", "add", ns]);
  if (made.code !== 0) {
    console.log(`ai_switch: skipped (needs root for namespaces and nft): ${made.err.trim()}`);
    return;
  }
  const dir = await Deno.makeTempDir({ prefix: "ai_switch_bench_" });
  try {
    await Deno.mkdir(`${dir}/bin`);
    for (const f of ["systemctl", "incus", "nvidia-smi"]) {
      await Deno.copyFile(`${PEERS}${f}`, `${dir}/bin/${f}`);
      await Deno.chmod(`${dir}/bin/${f}`, 0o755);
    }
    await Deno.writeTextFile(`${dir}/infra.yml`, INFRA);
    const spec = retargetSpec(programSpec("ai_switch", localLayout()), {
      "./policies/infra.yml": `${dir}/infra.yml`,
      "/opt/anklume/ai-access-current": `${dir}/state`,
      "/var/log/anklume/ai-switch.log": `${dir}/switch.log`,
      "/run/anklume/ai-switch.lock": `${dir}/lock`,
      "/run/anklume": dir,
      "/usr/bin/nvidia-smi": `${dir}/bin/nvidia-smi`,
      "/usr/bin/systemctl": `${dir}/bin/systemctl`,
      "/usr/bin/incus": `${dir}/bin/incus`,
    });
    const loop = async (extra: string[]) => {
      const r = await run("ip", [
        "netns",
        "exec",
        ns,
        "deno",
        ...denoRunArgs({
          ...spec,
          entry: `${PEERS}switch_loop.ts`,
          args: [`--rounds=${ROUNDS}`, "--domains=pro,perso", ...extra, "--", ...spec.args],
        }),
      ]);
      if (r.code !== 0) throw new Error(`switch loop failed: ${r.err}`);
      const result = JSON.parse(r.out) as { failures: number; ms: number[]; errors: string[] };
      if (result.failures) throw new Error(`switches failed: ${result.errors.join("; ")}`);
      return result.ms;
    };
    const tx = stats(await loop(["--transaction-only"]));
    const sw = stats(await loop(["--no-flush"]));
    const cold: number[] = [];
    for (let i = 0; i < COLD_RUNS; i++) {
      const t0 = performance.now();
      const r = await run("ip", [
        "netns",
        "exec",
        ns,
        "deno",
        ...denoRunArgs(spec),
        "switch",
        `--domain=${i % 2 ? "pro" : "perso"}`,
        "--no-flush",
      ]);
      cold.push(performance.now() - t0);
      if (r.code !== 0) throw new Error(`cli switch failed: ${r.err}`);
    }
    const c = stats(cold);
    const f = (x: number) => x.toFixed(1);
    console.log(
      `ruleset transaction alone (nft -f -, baseline): median ${f(tx.median)} ms, p95 ${
        f(tx.p95)
      } ms (${ROUNDS} runs)`,
    );
    console.log(
      `switch --no-flush (in-process):                median ${f(sw.median)} ms, p95 ${
        f(sw.p95)
      } ms (${ROUNDS} runs)`,
    );
    console.log(
      `switch --no-flush (CLI, deno start-up):        median ${f(c.median)} ms (${COLD_RUNS} runs)`,
    );
    console.log(
      `ratio switch / transaction: ${(sw.median / tx.median).toFixed(1)}x; CLI / transaction: ${
        (c.median / tx.median).toFixed(1)
      }x`,
    );
  } finally {
    await run("ip", ["netns", "del", ns]);
    await Deno.remove(dir, { recursive: true });
  }
}
