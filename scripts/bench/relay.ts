/**
 * The openHAB relay's memory: the real relay process, started with its
 * manifest flags and environment, reads 10,000 item state changes from the
 * openHAB event-stream stand-in and posts them, signed, to the real joi (and
 * joi's alerts go on to the real mesh and the signal-cli stand-in). Its RSS
 * afterwards is compared with an empty `Deno.serve` started with the relay's
 * V8 flags and environment and sent as many requests: target <= 1.3x (the
 * relay shares the openHAB host with openHAB's own JVM).
 *
 * Run alone: `deno task bench relay`.
 *
 * @module
 */
import { describe, emptyServeFloor, floorReport, memoryOf, settledMemoryOf } from "./_memory.ts";
import { startBenchStack } from "./_bench_stack.ts";
import { stateChanged } from "../../tests/peers/openhab_sse.ts";
import { programSpec } from "../../services/common/permissions/mod.ts";

const EVENTS = 10_000;
/** Distinct items the events cycle through (sensors reporting every few minutes). */
const ITEMS = 200;
/**
 * The last events open doors never seen before (temperature sensors are not
 * devices for joi, doors are): when joi knows them all, every event before
 * them is in too, since the relay keeps the order of ordinary events.
 */
const MARKERS = 50;
const TARGET_RATIO = 1.3;

/** One temperature change of `item` as openHAB's bus carries it. */
export function temperature(item: string, celsius: number) {
  return stateChanged(item, "Quantity", `${celsius.toFixed(1)} °C`);
}

/** joi's count of known devices (its `/health`). */
export async function deviceCount(joiPort: number): Promise<number> {
  const r = await fetch(`http://127.0.0.1:${joiPort}/health`);
  const h = (await r.json()).data as { devices?: { total?: number } };
  return h.devices?.total ?? 0;
}

/** Runs the benchmark and prints its figures. */
export async function bench(): Promise<void> {
  const stack = await startBenchStack();
  try {
    const relay = stack.relay;
    const joiPort = stack.layout.joiInbound.port;
    await new Promise((r) => setTimeout(r, 1000));
    const idle = await memoryOf(relay.process.pid);
    const t0 = performance.now();
    for (let i = 0; i < EVENTS - MARKERS; i++) {
      const item = `Bench_${i % ITEMS}_Temperature`;
      const v = 18 + (i % 70) / 10;
      stack.push(temperature(item, v));
      // openHAB's bus is bursty but not a firehose: ~500 events per burst
      if (i % 500 === 499) await new Promise((r) => setTimeout(r, 50));
    }
    for (let i = 0; i < MARKERS; i++) {
      stack.push(stateChanged(`Bench_Marker_${i}_Door`, "OpenClosed", "OPEN"));
    }
    const end = Date.now() + 300_000;
    let known = 0;
    while ((known = await deviceCount(joiPort)) < MARKERS) {
      if (Date.now() > end) {
        throw new Error(
          `bench relay: joi knows ${known} of ${MARKERS} doors after 300 s; relay: ` +
            relay.output.join("").slice(-600),
        );
      }
      await new Promise((r) => setTimeout(r, 200));
    }
    const secs = (performance.now() - t0) / 1000;
    console.log(
      `throughput: ${EVENTS} openHAB events -> relay -> joi in ${secs.toFixed(1)} s ` +
        `(${(EVENTS / secs).toFixed(0)}/s)`,
    );
    const lastMessage = performance.now();
    await new Promise((r) => setTimeout(r, 1000));
    const after = await memoryOf(relay.process.pid);
    const spec = programSpec("openhab_relay", stack.layout);
    const floor = await emptyServeFloor({ v8Flags: spec.v8Flags, env: spec.env, requests: EVENTS });
    console.log(`memory: relay idle after start: ${describe(idle)}`);
    const settled = await settledMemoryOf(relay.process.pid, lastMessage);
    for (
      const line of floorReport(
        `relay after ${EVENTS} events`,
        after,
        floor,
        EVENTS,
        TARGET_RATIO,
        settled,
      )
    ) {
      console.log(`memory: ${line}`);
    }
    const warned = stack.logs("relay").filter((l) => l.level !== "info");
    if (warned.length) {
      console.log(`relay logged ${warned.length} warnings; last: ${JSON.stringify(warned.at(-1))}`);
    }
  } finally {
    await stack.close();
  }
}

if (import.meta.main) await bench();
