/**
 * Runs joi-revoke-recipient as a real child process with its manifest flags
 * (production layout; every path of the staged household moved under its
 * root, except the real accounts files when the household has real users).
 *
 * @module
 */
import {
  denoRunArgs,
  productionLayout,
  programSpec,
} from "../../../services/common/permissions/mod.ts";
import { loadPolicyFile } from "../../../services/common/policy/mod.ts";
import { productionAddressesFrom } from "../../../scripts/validate/mod.ts";
import type { Household } from "../validate/household.ts";

const REAL = new Set(["/etc/passwd", "/etc/group", "/run/systemd/system"]);

/** The `deno` argv of revoke for `h`, followed by `extra`. */
export function revokeArgv(h: Household, extra: string[], pidFile?: string): string[] {
  // only the two files the layout needs: the others may be half updated in crash tests
  const p = {
    network: loadPolicyFile("network", `${h.configDir}/network.yaml`),
    llm: loadPolicyFile("llm", `${h.configDir}/llm.yaml`),
  };
  const spec = programSpec(
    "revoke",
    productionLayout(productionAddressesFrom({ network: p.network, llm: p.llm })),
  );
  const realAccounts = h.passwdFile === "/etc/passwd";
  const move = (r: string) =>
    (realAccounts && REAL.has(r)) || r === "/run/systemd/system" ? r : h.root + r;
  return denoRunArgs({
    ...spec,
    permissions: {
      ...spec.permissions,
      read: spec.permissions.read.map(move),
      write: spec.permissions.write.map(move),
    },
    args: [
      `--config-dir=${h.configDir}`,
      `--root=${h.root}`,
      `--passwd-file=${h.passwdFile}`,
      `--group-file=${h.groupFile}`,
      `--pid-file=${pidFile ?? `${h.root}/run/joi/joi.pid`}`,
      ...extra,
    ],
  });
}

/** Runs revoke to completion. */
export async function runRevoke(h: Household, extra: string[], pidFile?: string) {
  const out = await new Deno.Command("deno", {
    args: revokeArgv(h, extra, pidFile),
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).output();
  return {
    code: out.code,
    stdout: new TextDecoder().decode(out.stdout),
    stderr: new TextDecoder().decode(out.stderr),
  };
}

/** Every file of a folder (name -> bytes as text), recursively, for before/after comparisons. */
export function snapshot(dir: string, prefix = ""): Record<string, string> {
  const out: Record<string, string> = {};
  for (const e of Deno.readDirSync(dir)) {
    const p = `${dir}/${e.name}`;
    if (e.isDirectory) Object.assign(out, snapshot(p, `${prefix}${e.name}/`));
    else out[`${prefix}${e.name}`] = Deno.readTextFileSync(p);
  }
  return out;
}
