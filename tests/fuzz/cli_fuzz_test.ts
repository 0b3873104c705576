/**
 * Fuzz: the command line of every program, started as the manifest starts it
 * (its exact flags and fixed arguments) plus generated arguments that always
 * hold one unknown option. Property: the program refuses with a message that
 * names itself and what is wrong, exits non-zero, and never dies on an
 * uncaught exception (no stack trace) or hangs.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import {
  denoRunArgs,
  localLayout,
  PROGRAMS,
  programSpec,
} from "../../services/common/permissions/mod.ts";
import { nastyString, runs } from "./_fuzz.ts";

/** Programs whose arguments are fuzzed (bench and test run suites, not parsers). */
const FUZZED = PROGRAMS.filter((p) => p !== "bench" && p !== "test");

const token = fc.oneof(
  fc.constantFrom("--dry-run", "--role", "joi", "--root=", "--", "-", "-x", "--help=1", "=", ""),
  nastyString.map((s) => s.replaceAll("\u0000", "")),
  fc.stringMatching(/^--[a-z-]{1,12}(=.{0,8})?$/),
);
const garbage = fc.tuple(
  fc.array(token, { maxLength: 4 }),
  fc.stringMatching(/^[a-z]{4,8}$/),
  fc.nat(),
).map(([t, name, at]) => {
  const args = [...t];
  args.splice(at % (args.length + 1), 0, `--zz-${name}`);
  return args;
});

async function runOnce(program: (typeof FUZZED)[number], extra: string[]): Promise<void> {
  const spec = programSpec(program, localLayout());
  const child = new Deno.Command("deno", {
    args: [...denoRunArgs(spec), ...extra],
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
    env: { NO_COLOR: "1" },
  }).spawn();
  const timer = setTimeout(() => child.kill("SIGKILL"), 30_000);
  const out = await child.output();
  clearTimeout(timer);
  const err = new TextDecoder().decode(out.stderr);
  const shown = `${program} ${JSON.stringify(extra)} -> exit ${out.code}:\n${err}`;
  assert.notEqual(out.signal, "SIGKILL", `hang: ${shown}`);
  assert.notEqual(out.code, 0, `accepted an unknown option: ${shown}`);
  assert.ok(!/Uncaught|^\s+at .+:\d+:\d+\)?$/m.test(err), `crashed: ${shown}`);
  assert.ok(err.trim() !== "", `refused without a word: ${shown}`);
}

Deno.test({
  name: "fuzz: CLI arguments of every program",
  sanitizeResources: false,
  async fn() {
    const n = runs(1);
    const jobs = FUZZED.flatMap((p) => fc.sample(garbage, n).map((args) => () => runOnce(p, args)));
    const failures: string[] = [];
    const record = (e: unknown) =>
      failures.push(String((e as Error).message ?? e).split("\n").slice(0, 2).join(" | "));
    // two at a time: the machine has two cores
    for (let i = 0; i < jobs.length; i += 2) {
      await Promise.all(jobs.slice(i, i + 2).map((j) => j().catch(record)));
    }
    assert.deepEqual(failures, []);
    for (const p of FUZZED) console.log(`fuzz: CLI arguments (${p}): ${n} runs`);
  },
});
