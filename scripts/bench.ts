/**
 * `deno task bench [area...]`: runs the benchmarks in `scripts/bench/`, each of
 * which prints its figures next to a baseline measured in the same run (the
 * ratio is what counts on a shared, noisy machine). Speed and memory targets
 * live here, never in timed tests.
 *
 * @module
 */

/** A benchmark module: `scripts/bench/<area>.ts`. */
export interface BenchModule {
  bench(): Promise<void>;
}

/** The benchmark areas present, sorted. */
export async function benchAreas(dir = new URL("./bench/", import.meta.url)): Promise<string[]> {
  const areas: string[] = [];
  for await (const entry of Deno.readDir(dir)) {
    if (entry.isFile && entry.name.endsWith(".ts") && !entry.name.startsWith("_")) {
      areas.push(entry.name.slice(0, -3));
    }
  }
  return areas.sort();
}

async function main(): Promise<number> {
  const wanted = Deno.args;
  const areas = (await benchAreas()).filter((a) => wanted.length === 0 || wanted.includes(a));
  if (areas.length === 0) {
    console.error(
      `bench: no benchmark matches ${wanted.join(", ")}; have: ${(await benchAreas()).join(", ")}`,
    );
    return 2;
  }
  let failed = 0;
  for (const area of areas) {
    console.log(`\n=== ${area} ===`);
    const started = performance.now();
    try {
      const mod = (await import(`./bench/${area}.ts`)) as BenchModule;
      await mod.bench();
    } catch (e) {
      failed++;
      console.error(`bench ${area} failed: ${(e as Error).stack ?? e}`);
    }
    console.log(`--- ${area}: ${((performance.now() - started) / 1000).toFixed(1)} s`);
  }
  return failed ? 1 : 0;
}

if (import.meta.main) Deno.exit(await main());
