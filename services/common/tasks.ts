/**
 * Derives the `deno.json` tasks from the permission manifest, so that a task
 * never carries a flag the manifest does not state. `deno task sync` writes
 * them; `tests/services/common/tasks_test.ts` fails when they drift.
 *
 * @module
 */
import {
  denoRunArgs,
  type Layout,
  type ProgramName,
  programSpec,
  TEST_SOCKET_DIR,
} from "./permissions/mod.ts";
import { exists } from "./fs.ts";

/**
 * The task name of each program that has one (`main` is `start`). joi, the
 * knowledge broker and the mesh have none: `deno task start` runs them, with
 * absolute state paths (Deno admits Unix sockets by absolute path only).
 */
export const TASK_NAMES: Partial<Record<ProgramName, string>> = {
  main: "start",
  openhab_relay: "relay",
  retrieve: "retrieve",
  index: "index",
  validate: "validate",
  ai_switch: "ai-switch",
  revoke: "revoke",
  provision: "provision",
  nebula: "nebula",
  bundle: "bundle",
  install: "install",
  replay: "replay",
  devices: "devices",
  memory: "memory",
  language_check: "language-check",
  doctor: "doctor",
  bench: "bench",
};

/**
 * The test runner's own flags: it only reads the repository, writes its report
 * into `./var`, removes its run's socket folder below `/tmp/joi-test-sock` and
 * starts `deno test` with the manifest's `test` permissions.
 */
export const TEST_RUNNER_FLAGS = [
  "--allow-read=.",
  `--allow-write=./var,${TEST_SOCKET_DIR}`,
  "--allow-run=deno",
];

/** Quotes a task argument for deno's task shell when it needs it. */
function quote(arg: string): string {
  return /^[A-Za-z0-9_@%+=:,./-]+$/.test(arg) ? arg : `'${arg.replaceAll("'", `'"'"'`)}'`;
}

/**
 * The tasks for `layout` (the local layout): one per program whose entry file
 * exists, plus `test`, `fuzz` (the fuzz set, 10x longer), `check` and `sync`.
 */
export async function renderTasks(layout: Layout, root = "."): Promise<Record<string, string>> {
  const tasks: Record<string, string> = {};
  for (const [program, task] of Object.entries(TASK_NAMES) as [ProgramName, string][]) {
    const spec = programSpec(program, layout);
    if (!(await exists(`${root}/${spec.entry}`))) continue;
    const [run, ...rest] = denoRunArgs(spec);
    tasks[task] = ["deno", run, "--frozen", ...rest].map(quote).join(" ");
  }
  tasks.test = ["deno run --no-prompt --frozen", ...TEST_RUNNER_FLAGS, "scripts/test.ts"].join(" ");
  tasks.fuzz = ["deno run --no-prompt --frozen", ...TEST_RUNNER_FLAGS, "scripts/test.ts", "--fuzz"]
    .join(" ");
  tasks.check = "deno fmt --check && deno lint && deno check --frozen .";
  tasks.sync =
    "deno run --no-prompt --frozen --allow-read=. --allow-write=./deno.json,./systemd scripts/sync.ts";
  return Object.fromEntries(Object.entries(tasks).sort(([a], [b]) => a.localeCompare(b)));
}
