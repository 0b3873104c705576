/**
 * `deno task test [files...]`: runs the test suite inside the sandbox the
 * permission manifest states for it, streams Deno's own report, and ends with
 * the line `tests: N passed, N failed` (CI reads it).
 *
 * Counting comes from Deno's JUnit report, so a crashed test file (which never
 * reports its cases) is counted as one failure rather than silently vanishing.
 *
 * @module
 */
import { parseArgs } from "node:util";
import {
  denoRunArgs,
  localLayout,
  permissionFlags,
  programSpec,
} from "../services/common/permissions/mod.ts";

/** Counts of one run. */
export interface Tally {
  passed: number;
  failed: number;
  skipped: number;
}

/** Counts test cases in a Deno JUnit report. */
export function tallyJunit(xml: string): Tally {
  const tally: Tally = { passed: 0, failed: 0, skipped: 0 };
  const cases = xml.match(/<testcase\b[\s\S]*?(?:\/>|<\/testcase>)/g) ?? [];
  for (const c of cases) {
    if (/<failure\b|<error\b/.test(c)) tally.failed++;
    else if (/<skipped\b/.test(c)) tally.skipped++;
    else tally.passed++;
  }
  return tally;
}

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: { filter: { type: "string" }, parallel: { type: "boolean", default: false } },
  });
  const spec = programSpec("test", localLayout());
  // The isolation tests install the Deno binary the suite runs on as the
  // retrieve entry point, so the suite may read exactly that one file. Where it
  // lives depends on how Deno was obtained (npx's cache, /usr/local/bin, ...),
  // which only this process knows; the rest of the sandbox is the manifest's.
  spec.permissions.read.push(Deno.execPath());
  await Deno.mkdir("./var", { recursive: true, mode: 0o700 });
  // One report per run: concurrent runs must not read each other's tallies.
  const junit = `./var/test-report-${crypto.randomUUID()}.xml`;
  const args = [
    "test",
    "--no-prompt",
    "--frozen",
    ...permissionFlags(spec.permissions),
    `--junit-path=${junit}`,
    ...(values.filter ? [`--filter=${values.filter}`] : []),
    ...(values.parallel ? ["--parallel"] : []),
    ...(positionals.length ? positionals : ["tests/"]),
  ];
  const child = new Deno.Command("deno", {
    args,
    stdin: "null",
    stdout: "inherit",
    stderr: "inherit",
  }).spawn();
  const status = await child.status;
  let tally: Tally = { passed: 0, failed: 0, skipped: 0 };
  try {
    tally = tallyJunit(await Deno.readTextFile(junit));
    await Deno.remove(junit);
  } catch {
    // no report: deno test failed before running anything
  }
  if (!status.success && tally.failed === 0) tally.failed = 1;
  const skipped = tally.skipped ? `, ${tally.skipped} skipped` : "";
  console.log(`tests: ${tally.passed} passed, ${tally.failed} failed${skipped}`);
  return status.success && tally.failed === 0 ? 0 : 1;
}

// denoRunArgs is re-exported for tooling that wants the suite's exact command.
export { denoRunArgs };

if (import.meta.main) Deno.exit(await main());
