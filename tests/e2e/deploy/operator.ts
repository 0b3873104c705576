/**
 * What the operator does by hand in the deployment guide, done by the test
 * the way an operator would: the `$EDITOR` lines. The test household is the
 * shipped example policies (the identities the stand-ins use), so the joi
 * VM's `/etc/joi/*.yaml` stay as installed; the Signal account and the openHAB
 * API token are written as an editor writes a file: an existing file keeps its
 * owner and mode, a new one is root's with root's umask (022), so a guide that
 * forgets to say who may read it fails.
 *
 * @module
 */
import { loadPolicyFile } from "../../../services/common/policy/mod.ts";
import type { Command, StepHost } from "./readme.ts";
import type { Vm } from "../vm/vm.ts";

/** The Signal account the mesh's signal-cli runs for. */
export const SIGNAL_ACCOUNT = "+15559990000";

/** What the test's edits need. */
export interface OperatorInput {
  /** The VMs by host. */
  vms: Partial<Record<Exclude<StepHost, "build">, Vm>>;
  /** The openHAB API token (the openHAB stand-in accepts it). */
  openhabToken: string;
}

/** Writes `text` to `path` as an editor saving a file would. */
export async function editorWrite(vm: Vm, path: string, text: string): Promise<void> {
  // rewritten in place when it exists (owner and mode kept), else created under umask 022
  await vm.exec(["sh", "-c", 'umask 022; cat > "$1"', "sh", path], { input: text });
}

/** The contents the test gives each file an `$EDITOR` line names (by glob). */
export function operatorEdits(input: OperatorInput) {
  return async (host: StepHost, files: string[], command: Command): Promise<void> => {
    for (const f of files) {
      const vm = host === "build" ? undefined : input.vms[host];
      if (!vm) {
        throw new Error(`README.md:${command.line}: an edit on ${host}, which does not run here`);
      }
      if (host === "joi" && /^\/etc\/joi\/(\*|[\w-]+)\.yaml$/.test(f)) {
        // the shipped examples are the test household: check they are there
        const r = await vm.exec(["sh", "-c", `ls ${f}`], { check: false });
        if (r.code !== 0) {
          throw new Error(`README.md:${command.line}: ${f} matches no file on the joi VM`);
        }
      } else if (host === "mesh" && f === "/etc/mesh-proxy/signal-cli.env") {
        await editorWrite(vm, f, `SIGNAL_ACCOUNT=${SIGNAL_ACCOUNT}\n`);
      } else if (host === "openhab" && f === "/etc/joi-relay/secrets/openhab_token") {
        await editorWrite(vm, f, `${input.openhabToken}\n`);
      } else {
        throw new Error(
          `README.md:${command.line}: the test does not know what an operator writes to ${f} on ${host}`,
        );
      }
    }
  };
}

/**
 * The watch figures of the test household, shorter than the shipped ones so
 * that the booted test's outages (a minute, not hours) cross them: the link
 * watch (joi <-> mesh) checks every 5 s and tells after 3 failed checks, the
 * relay's heartbeat comes every 5 s and 15 s without one is "the house is
 * silent". The policy's rules still hold (deadline < interval, silence >= 2
 * heartbeats).
 */
export const TEST_WATCHES = {
  nebula_health: {
    check_interval_seconds: 5,
    lighthouse_ping_timeout_ms: 2000,
    alert_after_failures: 3,
  },
  watch: { heartbeat_seconds: 5, house_silent_seconds: 15 },
} as const;

/**
 * The operator's edit of the household policy on the build host before the
 * bundles are made (the README: edit `policies/` first; every VM's copy comes
 * from there): `policies/policy.yaml` of the checkout at `repo` gets
 * {@link TEST_WATCHES}, its comments kept.
 */
export async function tuneWatches(repo: string): Promise<void> {
  const path = `${repo}/policies/policy.yaml`;
  const lines = (await Deno.readTextFile(path)).split("\n");
  const left = new Set<string>();
  for (const [section, values] of Object.entries(TEST_WATCHES)) {
    for (const key of Object.keys(values)) left.add(`${section}.${key}`);
  }
  let section = "";
  const out = lines.map((line) => {
    const top = /^([a-z_]+):/.exec(line);
    if (top) section = top[1]!;
    const m = /^(\s+)([a-z_]+):(\s*)([^\s#]+)(.*)$/.exec(line);
    const values = (TEST_WATCHES as Record<string, Record<string, number>>)[section];
    if (!m || !values || !(m[2]! in values)) return line;
    left.delete(`${section}.${m[2]}`);
    return `${m[1]}${m[2]}:${m[3]}${values[m[2]!]}${m[5]}`;
  });
  if (left.size > 0) {
    throw new Error(`${path}: no ${[...left].join(", ")} to shorten (the test's TEST_WATCHES)`);
  }
  await Deno.writeTextFile(path, out.join("\n"));
  // the household's policy must still be one joi accepts
  const p = loadPolicyFile("policy", path);
  for (const [sec, values] of Object.entries(TEST_WATCHES)) {
    for (const [key, value] of Object.entries(values)) {
      const got = (p as unknown as Record<string, Record<string, unknown>>)[sec]![key];
      if (got !== value) throw new Error(`${path}: ${sec}.${key} is ${got}, not ${value}`);
    }
  }
}
