/**
 * What loading code costs: the V8 heap each service's module graph holds
 * before it does anything, and the share of each dependency, measured by
 * importing one module at a time into a fresh Deno process and reading V8's
 * live-object statistics after a full garbage collection
 * (`--trace-gc-object-stats`). Unlike RSS this figure does not move between
 * runs, so it tells what an import change saves, to the KB.
 *
 * Run alone: `deno task bench imports`.
 *
 * @module
 */

/** The modules measured: each service's entry, then what they import. */
export const MODULES: readonly { label: string; specifier: string }[] = [
  { label: "mesh (services/mesh/main.ts)", specifier: "services/mesh/main.ts" },
  { label: "joi (services/joi/main.ts)", specifier: "services/joi/main.ts" },
  { label: "relay (services/openhab_relay/main.ts)", specifier: "services/openhab_relay/main.ts" },
  { label: "  relay's steady state (relay.ts)", specifier: "services/openhab_relay/relay.ts" },
  { label: "  policy loader (policy/mod.ts)", specifier: "services/common/policy/mod.ts" },
  { label: "  wire (wire/mod.ts)", specifier: "services/common/wire/mod.ts" },
  { label: "  joi's batch judge (ingest/batch.ts)", specifier: "services/joi/ingest/batch.ts" },
  {
    label: "  joi's batch answer (batch_answer.ts)",
    specifier: "services/joi/ingest/batch_answer.ts",
  },
  { label: "  npm:zod", specifier: "zod" },
  { label: "  npm:yaml", specifier: "yaml" },
  { label: "  npm:hono", specifier: "hono" },
  { label: "  node:crypto", specifier: "node:crypto" },
  { label: "  node:util", specifier: "node:util" },
  { label: "  node:sqlite", specifier: "node:sqlite" },
];

const PROBE = new URL("./_import_probe.ts", import.meta.url).pathname;

/**
 * The live V8 heap (bytes) of a fresh process after importing `specifier`
 * (`""`: nothing) and a full GC, from the last `live` record of
 * `--trace-gc-object-stats`.
 */
export async function liveHeapAfterImport(specifier: string): Promise<number> {
  const out = await new Deno.Command("deno", {
    args: [
      "run",
      "--no-prompt",
      "--allow-read=.",
      "--v8-flags=--expose-gc,--trace-gc-object-stats",
      PROBE,
      specifier,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  if (!out.success) {
    throw new Error(
      `importing ${specifier} failed: ${new TextDecoder().decode(out.stderr).slice(0, 400)}`,
    );
  }
  let total = 0;
  let sum = 0;
  for (const line of new TextDecoder().decode(out.stdout).split("\n")) {
    if (!line.startsWith("{") || !line.includes('"key": "live"')) continue;
    const rec = JSON.parse(line) as { type: string; overall?: number };
    if (rec.type === "gc_descriptor") {
      total = sum;
      sum = 0;
    } else if (rec.type === "instance_type_data") {
      sum += rec.overall ?? 0;
    }
  }
  return Math.max(total, sum);
}

/** Runs the benchmark and prints its figures. */
export async function bench(): Promise<void> {
  const base = await liveHeapAfterImport("");
  console.log(`V8 live heap after a full GC, nothing imported: ${(base / 1024).toFixed(0)} KB`);
  console.log("module                                     live heap   added by the import");
  for (const m of MODULES) {
    const live = await liveHeapAfterImport(m.specifier);
    console.log(
      `${m.label.padEnd(42)} ${(live / 1024).toFixed(0).padStart(7)} KB ` +
        `${((live - base) / 1024).toFixed(0).padStart(7)} KB`,
    );
  }
}

if (import.meta.main) await bench();
