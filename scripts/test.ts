/**
 * `deno task test [files...]`: runs the test suite inside the sandbox the
 * permission manifest states for it, streams Deno's own report, and ends with
 * the line `tests: N passed, N failed` (CI reads it).
 *
 * `deno task fuzz` (`--fuzz`) runs the fuzz set (`tests/fuzz/`) with
 * `JOI_FUZZ_SCALE=10`, ten times the runs CI gives each property, and prints
 * the number of runs per parser before the tally.
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
  TEST_SOCKET_DIR,
  testRetrieveSocketPaths,
  testSocketPaths,
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

/** Echoes the child's stdout and collects its `fuzz: <parser>: <n> runs` lines. */
async function teeFuzzLines(stdout: ReadableStream<Uint8Array>): Promise<string[]> {
  const found: string[] = [];
  let rest = "";
  for await (const chunk of stdout.pipeThrough(new TextDecoderStream())) {
    await Deno.stdout.write(new TextEncoder().encode(chunk));
    const lines = (rest + chunk).split("\n");
    rest = lines.pop() ?? "";
    for (const l of lines) if (/^fuzz: .+: \d+ runs$/.test(l)) found.push(l);
  }
  return found;
}

/** The runs per parser, summed, one line each. */
export function fuzzSummary(lines: readonly string[]): string[] {
  const runs = new Map<string, number>();
  for (const l of lines) {
    const m = /^fuzz: (.+): (\d+) runs$/.exec(l);
    if (m) runs.set(m[1]!, (runs.get(m[1]!) ?? 0) + Number(m[2]));
  }
  const total = [...runs.values()].reduce((a, b) => a + b, 0);
  return [
    `fuzz runs per parser (${runs.size} parsers, ${total} runs):`,
    ...[...runs].sort(([a], [b]) => a.localeCompare(b)).map(([p, n]) => `  ${p}: ${n}`),
  ];
}

function printFuzzRuns(lines: readonly string[]): void {
  if (lines.length > 0) console.log(fuzzSummary(lines).join("\n"));
}

async function main(): Promise<number> {
  const { positionals, values } = parseArgs({
    args: Deno.args,
    allowPositionals: true,
    options: {
      filter: { type: "string" },
      parallel: { type: "boolean", default: false },
      fuzz: { type: "boolean", default: false },
    },
  });
  const spec = programSpec("test", localLayout());
  // The isolation tests install the Deno binary the suite runs on as the
  // retrieve entry point, so the suite may read exactly that one file. Where it
  // lives depends on how Deno was obtained (npx's cache, /usr/local/bin, ...),
  // which only this process knows; the rest of the sandbox is the manifest's.
  spec.permissions.read.push(Deno.execPath());
  // Each run gets its own socket folder, so suites running side by side (several
  // checkouts on one machine) never take or remove each other's sockets; the
  // tests find it in JOI_TEST_SOCK_DIR (tests/_helpers/sockets.ts).
  const socketDir = `${TEST_SOCKET_DIR}/run-${crypto.randomUUID().slice(0, 8)}`;
  spec.permissions.net = [
    ...spec.permissions.net.filter((n) => !n.startsWith(`unix:${TEST_SOCKET_DIR}/`)),
    ...[...testSocketPaths(socketDir), ...testRetrieveSocketPaths(socketDir)].map((p) =>
      `unix:${p}`
    ),
  ];
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
    ...(positionals.length ? positionals : [values.fuzz ? "tests/fuzz/" : "tests/"]),
  ];
  const child = new Deno.Command("deno", {
    args,
    stdin: "null",
    stdout: values.fuzz ? "piped" : "inherit",
    stderr: "inherit",
    env: { JOI_TEST_SOCK_DIR: socketDir, ...(values.fuzz ? { JOI_FUZZ_SCALE: "10" } : {}) },
  }).spawn();
  const fuzzLines = values.fuzz ? teeFuzzLines(child.stdout) : Promise.resolve([]);
  const status = await child.status;
  await Deno.remove(socketDir, { recursive: true }).catch(() => {});
  printFuzzRuns(await fuzzLines);
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
