/**
 * `deno task sync`: regenerates what is derived from the permission manifest:
 * the tasks in `deno.json` and the units in `systemd/` (rendered for the
 * production addresses of `policies/network.yaml` and `llm.yaml`). Run it after
 * changing `services/common/permissions/mod.ts`; the tests fail until you do.
 *
 * @module
 */
import { localLayout } from "../services/common/permissions/mod.ts";
import { loadPolicyFile } from "../services/common/policy/mod.ts";
import { renderTasks } from "../services/common/tasks.ts";
import {
  productionAddressesFrom,
  renderUnits,
  type UnitFile,
  unitHousehold,
} from "../services/common/units/mod.ts";

/** Rewrites the `tasks` of `deno.json` in place; returns whether it changed. */
export async function syncDenoJson(path = "./deno.json"): Promise<boolean> {
  const text = await Deno.readTextFile(path);
  const config = JSON.parse(text) as Record<string, unknown>;
  config.tasks = await renderTasks(localLayout());
  const next = JSON.stringify(config, null, 2) + "\n";
  if (next === text) return false;
  await Deno.writeTextFile(path, next);
  return true;
}

/** The units for the shipped policies (the example household's retrieve units included). */
export function shippedUnits(policiesDir = "./policies"): UnitFile[] {
  return renderUnits(
    productionAddressesFrom(
      loadPolicyFile("network", `${policiesDir}/network.yaml`),
      loadPolicyFile("llm", `${policiesDir}/llm.yaml`),
      loadPolicyFile("tools", `${policiesDir}/tools.yaml`),
    ),
    unitHousehold(loadPolicyFile("recipients", `${policiesDir}/recipients.yaml`)),
  );
}

/** Writes `systemd/` (and removes units it no longer renders); returns what changed. */
export async function syncUnits(dir = "./systemd"): Promise<string[]> {
  const changed: string[] = [];
  const units = shippedUnits();
  for (const e of Deno.readDirSync(dir)) {
    if (units.some((u) => u.name === e.name)) continue;
    await Deno.remove(`${dir}/${e.name}`);
    changed.push(`-${e.name}`);
  }
  for (const unit of units) {
    const path = `${dir}/${unit.name}`;
    let old = "";
    try {
      old = await Deno.readTextFile(path);
    } catch { /* new unit */ }
    if (old === unit.text) continue;
    await Deno.writeTextFile(path, unit.text);
    changed.push(unit.name);
  }
  return changed;
}

if (import.meta.main) {
  const tasks = await syncDenoJson();
  console.log(tasks ? "deno.json: tasks updated from the manifest" : "deno.json: up to date");
  const units = await syncUnits();
  console.log(units.length ? `systemd/: updated ${units.join(", ")}` : "systemd/: up to date");
}
