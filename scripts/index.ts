/**
 * `deno task index`: indexes the markdown documents written by hand into the
 * knowledge folders (and re-checks joi's own). Run it as the service user: it
 * is the only writer, and the folders' setgid bit gives each index the
 * folder's group. Symlinks and hard-linked files are never indexed.
 *
 *   deno task index [--config-dir=/etc/joi] [--state-dir=/var/lib/joi] [--folder=group/family]
 *
 * @module
 */
import { parseArgs } from "node:util";
import { loadPolicyFile } from "../services/common/policy/mod.ts";
import { knowledgeFolders } from "../services/joi/knowledge/folders.ts";
import { scanFolder } from "../services/joi/knowledge/scan.ts";

/** Runs the CLI; returns the exit code (1 when a folder failed). */
export function main(args: string[]): number {
  let values;
  try {
    ({ values } = parseArgs({
      args,
      strict: true,
      options: {
        "config-dir": { type: "string", default: "/etc/joi" },
        "state-dir": { type: "string", default: "/var/lib/joi" },
        folder: { type: "string" },
      },
    }));
  } catch (e) {
    console.error(`index: ${(e as Error).message}`);
    return 2;
  }
  let folders: string[];
  try {
    const recipients = loadPolicyFile("recipients", `${values["config-dir"]}/recipients.yaml`);
    folders = knowledgeFolders(recipients).map((f) => f.path);
  } catch (e) {
    console.error((e as Error).message);
    return 2;
  }
  if (values.folder !== undefined) {
    if (!folders.includes(values.folder)) {
      console.error(
        `index: --folder=${values.folder} is not a knowledge folder (${folders.join(", ")})`,
      );
      return 2;
    }
    folders = [values.folder];
  }
  const root = `${values["state-dir"]}/knowledge`;
  let failed = 0;
  for (const folder of folders) {
    try {
      const r = scanFolder(root, folder);
      console.log(
        `index: ${folder}: ${r.indexed} indexed, ${r.unchanged} unchanged, ${r.removed} removed, ` +
          `${r.skipped.length} skipped`,
      );
      for (const s of r.skipped) console.log(`index: ${folder}: skipped ${s.source}: ${s.reason}`);
    } catch (e) {
      failed++;
      console.error(`index: ${folder}: ${(e as Error).message}`);
    }
  }
  return failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(main(Deno.args));
