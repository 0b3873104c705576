/**
 * Test harness for ai-switch: a throw-away folder with the stand-in
 * executables, an infra.yml, and the CLI run inside a network namespace with
 * its real manifest sandbox pointed at that folder.
 *
 * @module
 */
import {
  denoRunArgs,
  localLayout,
  type ProgramSpec,
  programSpec,
} from "../../../services/common/permissions/mod.ts";
import { retargetSpec } from "../../../scripts/ai_switch/sandbox.ts";

const PEERS = new URL("../../peers/ai_switch/", import.meta.url).pathname;
const dec = new TextDecoder();

/** True when the suite may create namespaces and nft tables. */
export function canRunAsRoot(): boolean {
  return Deno.uid() === 0;
}

/** Prints why a root-only test is skipped. */
export function skipReason(): string {
  return "skipped: needs root (network namespaces, nftables)";
}

/** Runs a command, returns its result; throws with stderr if `check` and it failed. */
export async function sh(
  cmd: string,
  args: string[],
  check = true,
): Promise<{ code: number; stdout: string; stderr: string }> {
  const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
  const r = { code: out.code, stdout: dec.decode(out.stdout), stderr: dec.decode(out.stderr) };
  if (check && r.code !== 0) {
    throw new Error(`${cmd} ${args.join(" ")} failed (${r.code}): ${r.stderr.trim()}`);
  }
  return r;
}

let counter = 0;

/** A unique short tag for namespace names (pid + counter). */
export function uniqueTag(): string {
  counter++;
  return `${(Deno.pid % 46656).toString(36)}${counter.toString(36)}`;
}

/** infra.yml for tests: the shipped example with overrides. */
export function infraYaml(o: {
  policy?: string;
  defaultDomain?: string | null;
  manager?: "systemctl" | "incus";
  stateFile: string;
  logFile: string;
  extraPolicies?: string;
  domains?: string[];
  noAiTools?: boolean;
}): string {
  const domains = o.domains ?? ["pro", "perso", "anklume"];
  const lines = [
    "global:",
    "  addressing:",
    "    base_octet: 10",
    "    zone_base: 100",
    `  ai_access_policy: ${o.policy ?? "exclusive"}`,
    ...(o.defaultDomain === null ? [] : [`  ai_access_default: ${o.defaultDomain ?? "pro"}`]),
    "  ai_switch:",
    `    state_file: ${o.stateFile}`,
    `    log_file: ${o.logFile}`,
    "    gpu_services: [ollama, speaches]",
    `    service_manager: ${o.manager ?? "systemctl"}`,
    "    gpu_machine: gpu-server",
    "domains:",
  ];
  if (!o.noAiTools) {
    lines.push(
      "  ai-tools:",
      "    trust_level: semi-trusted",
      "    machines:",
      "      gpu-server:",
      "        type: lxc",
      "        gpu: true",
    );
  }
  for (const d of domains) {
    lines.push(
      `  ${d}:`,
      "    trust_level: trusted",
      "    machines:",
      `      ${d}-box:`,
      "        type: lxc",
    );
  }
  lines.push("network_policies:");
  lines.push(o.extraPolicies ?? "  - {from: pro, to: ai-tools, bidirectional: true}");
  return lines.join("\n") + "\n";
}

/** The folder a test works in. */
export class Workdir {
  /** Root of the folder. */
  readonly root: string;
  /** Stand-in binaries. */
  readonly bin: string;
  /** The state file. */
  readonly stateFile: string;
  /** The switch log. */
  readonly logFile: string;
  /** The lock file. */
  readonly lockFile: string;
  /** The test infra.yml. */
  readonly infra: string;

  private constructor(root: string) {
    this.root = root;
    this.bin = `${root}/bin`;
    this.stateFile = `${root}/state/ai-access-current`;
    this.logFile = `${root}/log/ai-switch.log`;
    this.lockFile = `${root}/ai-switch.lock`;
    this.infra = `${root}/infra.yml`;
  }

  /** Creates the folder with the stand-ins and an exclusive infra.yml. */
  static async create(manager: "systemctl" | "incus" = "systemctl"): Promise<Workdir> {
    const w = new Workdir(await Deno.makeTempDir({ prefix: "ai_switch_" }));
    for (const d of [w.bin, `${w.root}/state`, `${w.root}/log`, `${w.root}/gpu`]) {
      await Deno.mkdir(d, { recursive: true });
    }
    for (const f of ["nvidia-smi", "systemctl", "incus", "nft"]) {
      await Deno.copyFile(`${PEERS}${f}`, `${w.bin}/${f}`);
      await Deno.chmod(`${w.bin}/${f}`, 0o755);
    }
    await w.writeInfra({ manager });
    await Deno.writeTextFile(`${w.root}/gpu/base`, "300\n");
    return w;
  }

  /** Rewrites infra.yml. */
  async writeInfra(o: Omit<Parameters<typeof infraYaml>[0], "stateFile" | "logFile">) {
    await Deno.writeTextFile(
      this.infra,
      infraYaml({
        ...o,
        stateFile: "/opt/anklume/ai-access-current",
        logFile: "/var/log/anklume/ai-switch.log",
      }),
    );
  }

  /** The CLI's `deno` arguments: the manifest entry, retargeted here. */
  denoArgs(): string[] {
    return denoRunArgs(this.spec());
  }

  /**
   * `deno` arguments running `rounds` switches alternating over `domains` in
   * one process (tests/peers/ai_switch/switch_loop.ts), in the CLI's sandbox.
   */
  loopArgs(rounds: number, domains: string[], noFlush = true, extra: string[] = []): string[] {
    const spec = this.spec();
    return denoRunArgs({
      ...spec,
      entry: `${PEERS}switch_loop.ts`,
      args: [
        `--rounds=${rounds}`,
        `--domains=${domains.join(",")}`,
        ...(noFlush ? ["--no-flush"] : []),
        ...extra,
        "--",
        ...spec.args,
      ],
    });
  }

  /** The manifest's ai_switch spec with every path pointed into this folder. */
  spec(): ProgramSpec {
    return retargetSpec(programSpec("ai_switch", localLayout()), {
      "./policies/infra.yml": this.infra,
      "/opt/anklume/ai-access-current": this.stateFile,
      "/var/log/anklume/ai-switch.log": this.logFile,
      "/run/anklume/ai-switch.lock": this.lockFile,
      "/run/anklume": this.lockFile.slice(0, this.lockFile.lastIndexOf("/")),
      "/usr/sbin/nft": `${this.bin}/nft`,
      "/usr/bin/nvidia-smi": `${this.bin}/nvidia-smi`,
      "/usr/bin/systemctl": `${this.bin}/systemctl`,
      "/usr/bin/incus": `${this.bin}/incus`,
    });
  }

  /** Runs `ai-switch ARGS` inside namespace `ns`. */
  async cli(ns: string, args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
    return await sh("ip", ["netns", "exec", ns, "deno", ...this.denoArgs(), ...args], false);
  }

  /** Starts `ai-switch ARGS` inside `ns` without waiting. */
  spawnCli(ns: string, args: string[]): Deno.ChildProcess {
    return new Deno.Command("ip", {
      args: ["netns", "exec", ns, "deno", ...this.denoArgs(), ...args],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  }

  /** Lines the stand-ins recorded. */
  async calls(): Promise<string[]> {
    try {
      return (await Deno.readTextFile(`${this.root}/calls.log`)).split("\n").filter((l) => l);
    } catch {
      return [];
    }
  }

  /** Forgets recorded calls. */
  async clearCalls(): Promise<void> {
    await Deno.writeTextFile(`${this.root}/calls.log`, "");
  }

  /** Makes a stand-in call fail (`"systemctl start"`, `"nft -f -"`, ...). */
  async failOn(...calls: string[]): Promise<void> {
    await Deno.writeTextFile(`${this.root}/fail`, calls.map((c) => c + "\n").join(""));
  }

  /** Services the stand-ins consider running. */
  async running(): Promise<string[]> {
    const out: string[] = [];
    try {
      for await (const e of Deno.readDir(`${this.root}/running`)) out.push(e.name);
    } catch { /* none yet */ }
    return out.sort();
  }

  /** The state file's content, or null. */
  async state(): Promise<string | null> {
    try {
      return await Deno.readTextFile(this.stateFile);
    } catch {
      return null;
    }
  }

  /** The switch log's lines. */
  async log(): Promise<string[]> {
    try {
      return (await Deno.readTextFile(this.logFile)).split("\n").filter((l) => l);
    } catch {
      return [];
    }
  }

  /** Removes the folder. */
  async remove(): Promise<void> {
    await Deno.remove(this.root, { recursive: true });
  }
}

/** A bare namespace (no links) in which nft tables can be made freely. */
export async function withNamespace<T>(fn: (ns: string) => Promise<T>): Promise<T> {
  const ns = `aisw${uniqueTag()}`;
  await sh("ip", ["netns", "add", ns]);
  try {
    return await fn(ns);
  } finally {
    await sh("ip", ["netns", "del", ns], false);
  }
}

/** `nft list table inet joi_ai` inside `ns`, or null. */
export async function liveTable(ns: string): Promise<string | null> {
  const r = await sh("ip", ["netns", "exec", ns, "nft", "list", "table", "inet", "joi_ai"], false);
  return r.code === 0 ? r.stdout : null;
}

/** A real process standing for a GPU compute process; kill it or let ai-switch do it. */
export function gpuProcess(): { pid: number; status: Promise<Deno.CommandStatus> } {
  const child = new Deno.Command("sh", {
    args: ["-c", "exec sleep 600"],
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  return { pid: child.pid, status: child.status };
}

export { PEERS };
