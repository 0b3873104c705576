/**
 * `deno task install --role joi|mesh|openhab [--root DIR] [--dry-run]`:
 * lays out one VM of the architecture: `/opt/joi` (root-owned code and a
 * pre-filled Deno cache, so services start with `--cached-only`), its
 * configuration directory with the example policies (never overwritten) and
 * generated keys (0600), state and log directories, the retrieve entry point
 * (`/usr/local/bin/joi-retrieve`, a root:root 0755 copy of the Deno binary) and
 * the systemd units rendered from the permission manifest.
 *
 * `--root` stages the tree under a prefix (it must lie under `./var/stage`, the
 * only place the installer's sandbox may write besides the real system paths).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadPolicyFile } from "../services/common/policy/mod.ts";
import { productionLayout } from "../services/common/permissions/mod.ts";
import { renderTasks } from "../services/common/tasks.ts";
import { productionAddressesFrom, renderUnits } from "../services/common/units.ts";
import { exists } from "../services/common/fs.ts";
import { loadMeshSettings, meshVoiceOf } from "../services/mesh/config.ts";
import { applyPlan } from "./install/apply.ts";
import { proposeTimeZone, systemTimeZone } from "./install/time_zone.ts";
import { describe, planInstall, type Role, ROLES } from "./install/plan.ts";

const USAGE = "usage: deno task install --role joi|mesh|openhab [--root ./var/stage/X] [--dry-run]";

/** Tasks that only make sense in a development checkout. */
const DEV_TASKS = ["start", "test", "check", "sync", "bench", "install", "nebula", "replay"];

/**
 * `/opt/joi/deno.json`: the repository's, with npm packages resolved from the
 * shipped node_modules only (`nodeModulesDir: "manual"`, so nothing is ever
 * fetched) and tasks rendered for the production layout.
 */
export async function productionDenoJson(
  repo: string,
  addresses: Parameters<typeof productionLayout>[0],
): Promise<string> {
  const config = JSON.parse(await Deno.readTextFile(`${repo}/deno.json`));
  const tasks = await renderTasks(productionLayout(addresses), repo);
  for (const t of DEV_TASKS) delete tasks[t];
  return JSON.stringify({ ...config, nodeModulesDir: "manual", tasks }, null, 2) + "\n";
}

async function main(): Promise<number> {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      role: { type: "string" },
      root: { type: "string", default: "/" },
      "dry-run": { type: "boolean", default: false },
      repo: { type: "string", default: "." },
      "deno-bin": { type: "string", default: "/usr/local/bin/deno" },
    },
  });
  const role = values.role as Role;
  if (!role || !(role in ROLES)) {
    console.error(`install: --role must be one of joi, mesh, openhab\n${USAGE}`);
    return 2;
  }
  const root = values.root.replace(/\/+$/, "") || "/";
  if (root !== "/" && !/^(\.\/)?var\/stage\/[^/]+/.test(root)) {
    console.error(`install: --root must be / or a directory under ./var/stage/ (got ${root})`);
    return 2;
  }
  const network = loadPolicyFile("network", `${values.repo}/policies/network.yaml`);
  const llm = loadPolicyFile("llm", `${values.repo}/policies/llm.yaml`);
  const tools = loadPolicyFile("tools", `${values.repo}/policies/tools.yaml`);
  // voice on the mesh: the binaries the installed mesh.yaml names (else the example's)
  const root0 = root === "/" ? "" : root;
  const meshYaml = await exists(`${root0}/etc/mesh-proxy/mesh.yaml`)
    ? `${root0}/etc/mesh-proxy/mesh.yaml`
    : `${values.repo}/policies/mesh.yaml`;
  const addresses = productionAddressesFrom(
    network,
    llm,
    tools,
    meshVoiceOf(loadMeshSettings(meshYaml)),
  );
  const units = renderUnits(addresses);
  const denoJson = await productionDenoJson(values.repo, addresses);
  const plan = planInstall({
    role,
    repo: values.repo,
    denoBinary: values["deno-bin"],
    units,
    denoJson,
  });
  if (values["dry-run"]) {
    console.log(`install plan for role ${role} (root ${root}); nothing is changed:`);
    for (const a of plan) console.log(`  ${describe(a, root)}`);
    return 0;
  }
  if (root === "/" && Deno.uid() !== 0) {
    console.error("install: a real install must run as root (or stage with --root ./var/stage/X)");
    return 1;
  }
  const policy = `${root0}${ROLES[role].configDir}/policy.yaml`;
  const fresh = !(await exists(policy));
  await applyPlan(plan, { root, print: (l) => console.log(l) });
  await proposeTimeZone(policy, fresh, systemTimeZone(), (l) => console.log(l));
  return 0;
}

if (import.meta.main) {
  try {
    Deno.exit(await main());
  } catch (e) {
    console.error(`install: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
