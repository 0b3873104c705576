/**
 * `deno task sync`: regenerates what is derived from the permission manifest:
 * the tasks in `deno.json` (and, once the units exist, `systemd/`). Run it after
 * changing `services/common/permissions.ts`; the tests fail until you do.
 *
 * @module
 */
import { localLayout } from "../services/common/permissions.ts";
import { renderTasks } from "../services/common/tasks.ts";

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

if (import.meta.main) {
  const changed = await syncDenoJson();
  console.log(changed ? "deno.json: tasks updated from the manifest" : "deno.json: up to date");
}
