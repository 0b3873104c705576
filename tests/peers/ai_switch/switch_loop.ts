/**
 * Runs the ai-switch CLI's `main` many times in one process (tests and
 * benchmarks only), so a hundred switches do not pay a hundred Deno start-ups.
 * Arguments: `--rounds N --domains a,b [--no-flush] [--transaction-only]`,
 * then `--` and the CLI's own arguments (the retargeted manifest args).
 * `--transaction-only` times the nft transaction alone (the baseline of the
 * benchmark). `--non-atomic` replaces the table the wrong way, flush then load
 * as two commands, as a control that the race test can see a leak. Prints one JSON line: `{"rounds":N,"failures":N,"ms":[...]}`.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { main, parseOptions } from "../../../scripts/ai_switch/cli.ts";
import { Nft } from "../../../scripts/ai_switch/nft.ts";
import { renderTable } from "../../../scripts/ai_switch/ruleset.ts";
import { createLogger } from "../../../services/common/log.ts";
import { runCommand } from "../../../scripts/ai_switch/exec.ts";

const split = Deno.args.indexOf("--");
const { values } = parseArgs({
  args: Deno.args.slice(0, split),
  options: {
    rounds: { type: "string" },
    domains: { type: "string" },
    "no-flush": { type: "boolean", default: false },
    "transaction-only": { type: "boolean", default: false },
    "non-atomic": { type: "boolean", default: false },
  },
});
const cliArgs = Deno.args.slice(split + 1);
const domains = (values.domains ?? "").split(",");
const ms: number[] = [];
let failures = 0;
const errors: string[] = [];
const io = {
  out: () => {},
  err: (l: string) => errors.push(l),
  run: runCommand,
  now: () => new Date(),
  logger: createLogger("ai_switch", { quiet: true }),
};
const nft = new Nft(runCommand, parseOptions([...cliArgs, "status"]).bins.nft);
for (let i = 0; i < Number(values.rounds); i++) {
  const d = domains[i % domains.length]!; // split always yields at least one element
  const t0 = performance.now();
  if (values["non-atomic"]) {
    const bin = parseOptions([...cliArgs, "status"]).bins.nft;
    await runCommand(bin, ["flush", "table", "inet", "joi_ai"]);
    await runCommand(bin, ["-f", "-"], renderTable(d));
    ms.push(performance.now() - t0);
    continue;
  }
  if (values["transaction-only"]) {
    await nft.apply(renderTable(d));
    ms.push(performance.now() - t0);
    continue;
  }
  const code = await main([
    ...cliArgs,
    "switch",
    "--domain",
    d,
    ...(values["no-flush"] ? ["--no-flush"] : []),
  ], io);
  ms.push(performance.now() - t0);
  if (code !== 0) failures++;
}
console.log(
  JSON.stringify({ rounds: Number(values.rounds), failures, ms, errors: errors.slice(0, 5) }),
);
