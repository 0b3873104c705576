/**
 * Fuzz: the command line of every program, started as the manifest starts it
 * (its exact flags and fixed arguments) plus generated arguments that always
 * hold one unknown option. Property: the program refuses with a message that
 * names itself and what is wrong, exits non-zero, and never dies on an
 * uncaught exception (no stack trace) or hangs.
 *
 * Second property: the program's own options with hostile values (the
 * unknown option above is refused before any value is used). Every program
 * that changes nothing outside its folders is run over a scratch layout; it
 * either refuses (non-zero, saying why) or runs (a service still running
 * after a few seconds is stopped), and never dies on an uncaught exception
 * (`doctor --llm-url=::::` did).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { localLayout, PROGRAMS, programSpec } from "../../services/common/permissions/mod.ts";
import { nastyString, runs } from "./_fuzz.ts";
import { spawnAsStarted } from "../_helpers/program.ts";
import { freeBasePort } from "../_helpers/local_stack.ts";

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
  const child = spawnAsStarted(spec, extra);
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

/** Programs that change the system (users, units, nft, files outside their folders): no hostile values. */
const CHANGES_THE_SYSTEM: ReadonlySet<string> = new Set([
  "main",
  "ai_switch",
  "revoke",
  "provision",
  "nebula",
  "bundle",
  "install",
]);

/** Programs run with hostile option values: every other one (a new program is included). */
const VALUED = FUZZED.filter((p) => !CHANGES_THE_SYSTEM.has(p));

const hostileValue = fc.oneof(
  fc.constantFrom(
    "",
    "-1",
    "0",
    "1e999",
    "NaN",
    "::::",
    "http://[::1",
    "ftp://127.0.0.1",
    "127.0.0.1:99999",
    "/",
    "../../..",
    "x".repeat(5000),
    "\u202e",
  ),
  nastyString.map((s) => s.replaceAll("\u0000", "")),
);

/** Every (program, option) pair: the options the manifest gives each program a value for. */
const PAIRS: [(typeof VALUED)[number], string][] = VALUED.flatMap((p) =>
  programSpec(p, localLayout()).args
    .filter((a) => /^--[a-z-]+=/.test(a))
    .map((a): [(typeof VALUED)[number], string] => [p, a.split("=")[0]!])
);

async function runValued(
  program: (typeof VALUED)[number],
  option: string,
  value: string,
): Promise<void> {
  await Deno.mkdir("./var", { recursive: true });
  const dir = await Deno.makeTempDir({ dir: "./var", prefix: "cli-fuzz-" });
  try {
    const spec = programSpec(program, localLayout({ varDir: dir, basePort: freeBasePort() }));
    const extra = [`${option}=${value}`];
    const child = spawnAsStarted(spec, extra);
    let running = false;
    const timer = setTimeout(() => {
      running = true;
      child.kill("SIGTERM");
      setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, 5000);
    }, 4000);
    const out = await child.output();
    clearTimeout(timer);
    const text = new TextDecoder().decode(out.stderr) + new TextDecoder().decode(out.stdout);
    const shown = `${program} ${JSON.stringify(extra).slice(0, 120)} -> exit ${out.code}:\n${
      text.slice(0, 2000)
    }`;
    assert.ok(!/Uncaught|^\s+at .+:\d+:\d+\)?$/m.test(text), `crashed: ${shown}`);
    if (!running && out.code !== 0) {
      assert.ok(text.trim() !== "", `refused without a word: ${shown}`);
    }
  } finally {
    await Deno.remove(dir, { recursive: true }).catch(() => {});
  }
}

Deno.test({
  name: "fuzz: CLI option values of every program",
  sanitizeResources: false,
  async fn() {
    // a shuffled walk over the pairs: CI sees a different dozen each run, `deno task fuzz`
    // (10x) every pair at least once
    const n = runs(12);
    const order = fc.sample(
      fc.shuffledSubarray(PAIRS, { minLength: PAIRS.length, maxLength: PAIRS.length }),
      1,
    )[0]!;
    const values = fc.sample(hostileValue, n);
    const cases = values.map((v, i) => [...order[i % order.length]!, v] as const);
    const failures: string[] = [];
    const record = (e: unknown) =>
      failures.push(String((e as Error).message ?? e).split("\n").slice(0, 3).join(" | "));
    for (let i = 0; i < cases.length; i += 2) {
      await Promise.all(
        cases.slice(i, i + 2).map(([p, option, v]) => runValued(p, option, v).catch(record)),
      );
    }
    assert.deepEqual(failures, []);
    console.log(
      `fuzz: CLI option values (${VALUED.length} programs, ${PAIRS.length} options): ${n} runs`,
    );
  },
});
