/**
 * What a run of the end-to-end test creates outside its temp folder
 * (namespaces, system users, cgroups, the staging tree) is written down before it is
 * created, in `/tmp/joi-e2e-runs/<tag>.json` with the test's pid. A run that
 * was killed (SIGKILL, a crashed runner) cannot clean up in `finally`; the
 * next run sweeps what such dead runs left: only the names they wrote down,
 * and only when their process is gone.
 *
 * @module
 */
import { sh } from "./process.ts";
import { deleteNamespaces } from "./vm/network.ts";
import { removeCgroup, removeTree } from "./vm/vm.ts";

/** Where run records live. */
export const RUNS_DIR = "/tmp/joi-e2e-runs";

/** What one run may create. */
export interface RunRecord {
  /** The test process. */
  pid: number;
  /** Network namespaces. */
  namespaces: string[];
  /** System users (each with its user group). */
  users: string[];
  /** The staging tree (absolute or relative to the repository). */
  stage: string;
  /** cgroups (the same name in every hierarchy) of booted VMs. */
  cgroups?: string[];
}

/** Writes (or rewrites) the record of run `tag`. */
export async function recordRun(tag: string, record: RunRecord): Promise<void> {
  await Deno.mkdir(RUNS_DIR, { recursive: true, mode: 0o700 });
  await Deno.writeTextFile(`${RUNS_DIR}/${tag}.json`, JSON.stringify(record), { mode: 0o600 });
}

/** Removes the record of a run that cleaned up after itself. */
export async function forgetRun(tag: string): Promise<void> {
  await Deno.remove(`${RUNS_DIR}/${tag}.json`).catch(() => {});
}

async function alive(pid: number): Promise<boolean> {
  return (await sh("kill", ["-0", String(pid)], false)).code === 0;
}

/** Undoes what a record lists; returns what could not be undone. */
export async function undo(record: RunRecord): Promise<string[]> {
  const problems: string[] = [];
  // a booted VM's processes all live in its network namespace: killing them
  // there ends the VM (its mounts go with its mount namespace)
  problems.push(...(await deleteNamespaces(record.namespaces)).problems);
  for (const cg of record.cgroups ?? []) problems.push(...await removeCgroup(cg));
  for (const u of record.users) {
    if ((await sh("getent", ["passwd", u], false)).code === 0) {
      const r = await sh("userdel", [u], false);
      if (r.code !== 0) problems.push(`userdel ${u}: ${r.stderr.trim()}`);
    }
    if ((await sh("getent", ["group", u], false)).code === 0) {
      const r = await sh("groupdel", [u], false);
      if (r.code !== 0) problems.push(`groupdel ${u}: ${r.stderr.trim()}`);
    }
  }
  problems.push(...await removeTree(record.stage));
  return problems;
}

/** Sweeps the leftovers of runs whose process is gone; returns what it removed. */
export async function sweepDeadRuns(): Promise<string[]> {
  const swept: string[] = [];
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(RUNS_DIR)];
  } catch {
    return swept;
  }
  for (const e of entries) {
    if (!e.isFile || !e.name.endsWith(".json")) continue;
    const path = `${RUNS_DIR}/${e.name}`;
    let record: RunRecord;
    try {
      record = JSON.parse(await Deno.readTextFile(path));
    } catch {
      continue; // being written by a live run, or not ours
    }
    if (record.pid === Deno.pid || await alive(record.pid)) continue;
    const problems = await undo(record);
    if (problems.length === 0) await Deno.remove(path).catch(() => {});
    swept.push(`${e.name}${problems.length ? ` (left: ${problems.join("; ")})` : ""}`);
  }
  return swept;
}
