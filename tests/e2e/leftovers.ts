/**
 * What a run of the end-to-end test creates outside its temp folder
 * (namespaces, system users, the staging tree) is written down before it is
 * created, in `/tmp/joi-e2e-runs/<tag>.json` with the test's pid. A run that
 * was killed (SIGKILL, a crashed runner) cannot clean up in `finally`; the
 * next run sweeps what such dead runs left: only the names they wrote down,
 * and only when their process is gone.
 *
 * @module
 */
import { sh } from "./topology.ts";

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
  const existing = (await sh("ip", ["netns", "list"], false)).stdout;
  for (const ns of record.namespaces) {
    if (!new RegExp(`^${ns}\\b`, "m").test(existing)) continue;
    const pids = await sh("ip", ["netns", "pids", ns], false);
    for (const pid of pids.stdout.split(/\s+/).filter(Boolean)) {
      await sh("kill", ["-KILL", pid], false);
    }
    const r = await sh("ip", ["netns", "del", ns], false);
    if (r.code !== 0) problems.push(`ip netns del ${ns}: ${r.stderr.trim()}`);
  }
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
  try {
    await Deno.remove(record.stage, { recursive: true });
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) problems.push(`remove ${record.stage}: ${e}`);
  }
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
