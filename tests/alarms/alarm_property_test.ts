/**
 * Issue 13's property, through the real relay, joi and mesh processes
 * (`stack.ts`) with the openHAB and signal-cli stand-ins: whatever else the
 * stream carries — valid events, invalid ones, oversized lines up to 1 MB,
 * flapping and limit-exhausting bursts, trigger strings of any kind — and
 * whenever joi is stopped (SIGTERM or SIGKILL) and started again, **every
 * alarm reaches the critical group exactly once per alert step**, within the
 * bound below, and the log names every refused event.
 *
 * The bound (stated, generous for a shared 2-core machine): alert 1 arrives
 * within {@link BOUND_MS} of the later of its push and joi being up again;
 * alert 2 (the policy here alerts at 0 and 1 minute) arrives no earlier than
 * 55 s after alert 1 and within 60 s + {@link BOUND_MS} + joi's downtime in
 * between. The benchmark (`deno task bench ingest`) measures the real
 * latency; this is a safety property, not a timing test.
 *
 * fast-check generates the scenarios; they run one after another against one
 * stack (so later ones meet the relay paused by an earlier limit exhaustion),
 * and shrinking is off (the system under test carries state across runs).
 * Adds about 2 minutes to CI (most of it the minute before alert 2).
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { type OpenhabEvent, stateChanged, triggered } from "../peers/openhab_sse.ts";
import { type Stack, startStack } from "./stack.ts";

/** Alert 1 within this of max(push, joi up again); alert 2 within 60 s plus this. */
const BOUND_MS = 15_000;
/** The joi limit of relayed events per hour in this test (the exhausting bursts pass it). */
const EVENT_LIMIT = 3_000;
const RUNS = 10;

type Alarm = { kind: "own" | "group" | "both" | "group_first" | "twice"; type: string };
type Step =
  | { k: "valid"; which: number; value: number }
  | { k: "string"; text: string }
  | { k: "trigger"; event: string }
  | { k: "invalid"; variant: number }
  | { k: "oversized"; bytes: number; raw: boolean }
  | { k: "flap"; n: number }
  | { k: "exhaust" }
  | { k: "alarm"; alarm: Alarm }
  | { k: "restart"; signal: "SIGTERM" | "SIGKILL"; downMs: number }
  | { k: "pause"; ms: number };

const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 12,
    arbitrary: fc.record({
      k: fc.constant("valid" as const),
      which: fc.nat(3),
      value: fc.integer({ min: -20, max: 40 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant("string" as const),
      text: fc.string({ unit: "grapheme", maxLength: 300 }),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant("trigger" as const),
      event: fc.string({ unit: "grapheme", maxLength: 80 }),
    }),
  },
  { weight: 9, arbitrary: fc.record({ k: fc.constant("invalid" as const), variant: fc.nat(5) }) },
  {
    weight: 6,
    arbitrary: fc.record({
      k: fc.constant("oversized" as const),
      bytes: fc.integer({ min: 11_000, max: 1_000_000 }),
      raw: fc.boolean(),
    }),
  },
  {
    weight: 6,
    arbitrary: fc.record({ k: fc.constant("flap" as const), n: fc.integer({ min: 5, max: 40 }) }),
  },
  { weight: 1, arbitrary: fc.record({ k: fc.constant("exhaust" as const) }) },
  {
    weight: 12,
    arbitrary: fc.record({
      k: fc.constant("alarm" as const),
      alarm: fc.record({
        kind: fc.constantFrom("own", "group", "both", "group_first", "twice"),
        type: fc.constantFrom("Smoke", "CO_Detector", "WaterLeak"),
      }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      k: fc.constant("restart" as const),
      signal: fc.constantFrom("SIGTERM" as const, "SIGKILL" as const),
      downMs: fc.integer({ min: 0, max: 1500 }),
    }),
  },
  {
    weight: 9,
    arbitrary: fc.record({
      k: fc.constant("pause" as const),
      ms: fc.integer({ min: 0, max: 200 }),
    }),
  },
);

/** Bad events, each naming its own item. */
function invalid(name: string, variant: number): OpenhabEvent {
  const t = `openhab/items/${name}/statechanged`;
  switch (variant) {
    case 0:
      return stateChanged(name, "Decimal", "not a number");
    case 1:
      return { topic: t, payload: "{not json", type: "ItemStateChangedEvent" };
    case 2:
      return { topic: t, payload: JSON.stringify({ value: "ON" }), type: "ItemStateChangedEvent" };
    case 3:
      return stateChanged(name, "OnOff", "1 2 3");
    case 4:
      return stateChanged(name, "DateTime", "the day after tomorrow");
    default:
      return {
        topic: `openhab/items/${name}/extra/segment/statechanged`,
        payload: JSON.stringify({ type: "OnOff", value: "ON" }),
        type: "ItemStateChangedEvent",
      };
  }
}

/** What the test expects and what it saw. */
interface Ledger {
  alarms: { device: string; pushedAt: number }[];
  invalid: string[];
  oversized: string[];
  /** Intervals when joi was not up: [down, up]. */
  downtimes: [number, number][];
  seq: number;
}

function deviceOf(text: string): string | undefined {
  return /ALERT: .+? by (\S+) \(state /.exec(text)?.[1];
}

function alertsOf(s: Stack, device: string, n: number) {
  return s.criticalSends().filter((r) => {
    const text = String(r.params.message);
    return deviceOf(text) === device && text.includes(`Alert ${n} of 2.`);
  });
}

/** When joi was up again at or after `t`. */
function upAfter(l: Ledger, t: number): number {
  for (const [down, up] of l.downtimes) if (t >= down && t < up) return up;
  return t;
}

function downBetween(l: Ledger, a: number, b: number): number {
  return l.downtimes.reduce((sum, [d, u]) => sum + Math.max(0, Math.min(u, b) - Math.max(d, a)), 0);
}

async function until(pred: () => boolean, limitMs: number, what: () => string): Promise<void> {
  const end = Date.now() + limitMs;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`not within ${limitMs} ms: ${what()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function run(s: Stack, l: Ledger, steps: Step[]): Promise<void> {
  const run = ++l.seq;
  let n = 0;
  let pendingStart: Promise<void> | null = null;
  let open = false;
  const mine: { device: string; pushedAt: number }[] = [];
  for (const st of steps) {
    const name = `R${run}_${++n}`;
    switch (st.k) {
      case "valid": {
        const [dev, type, value] = [
          ["Living_Temperature", "Quantity", `${st.value}.5 °C`],
          ["Hall_Light", "OnOff", st.value % 2 ? "ON" : "OFF"],
          ["Front_Door", "OpenClosed", st.value % 2 ? "OPEN" : "CLOSED"],
          ["Living_Humidity", "Decimal", String(Math.abs(st.value))],
        ][st.which]!;
        s.push(stateChanged(dev!, type!, value!));
        break;
      }
      case "string":
        s.push(stateChanged("Garage_Note", "String", st.text));
        break;
      case "trigger":
        s.push(triggered(`mqtt:topic:remote:${name}`, st.event));
        break;
      case "invalid":
        l.invalid.push(`Bad_${name}`);
        s.push(invalid(`Bad_${name}`, st.variant));
        break;
      case "oversized": {
        l.oversized.push(`Big_${name}`);
        const value = st.raw
          ? "data:image/jpeg;base64," + "A".repeat(st.bytes)
          : "w".repeat(st.bytes);
        s.push(stateChanged(`Big_${name}`, st.raw ? "Raw" : "String", value));
        break;
      }
      case "flap":
        for (let i = 0; i < st.n; i++) {
          open = !open;
          s.push(stateChanged("Porch_Contact", "OpenClosed", open ? "OPEN" : "CLOSED"));
        }
        break;
      case "exhaust":
        for (let i = 0; i < EVENT_LIMIT; i++) {
          s.push(stateChanged(`Meter_${i % 40}_Power`, "Decimal", String(i)));
        }
        break;
      case "alarm": {
        const a = st.alarm;
        // a member whose own name tells no class alarms only through its group
        const device = a.kind === "group" ? `${name}_Detector` : `${name}_${a.type}`;
        const group = a.type === "Smoke" ? "gSmoke" : a.type === "WaterLeak" ? "gLeaks" : "gCO";
        const pushedAt = Date.now();
        const own = stateChanged(device, "OnOff", "ON");
        const viaGroup = stateChanged(device, "OnOff", "ON", { group });
        const order = a.kind === "own"
          ? [own]
          : a.kind === "group"
          ? [viaGroup]
          : a.kind === "both"
          ? [own, viaGroup]
          : a.kind === "group_first"
          ? [viaGroup, own]
          : [own, own];
        for (const ev of order) s.push(ev);
        mine.push({ device, pushedAt });
        l.alarms.push({ device, pushedAt });
        break;
      }
      case "restart": {
        await pendingStart;
        const down = Date.now();
        await s.stopJoi(st.signal);
        // the stream goes on while joi is down; it comes back after downMs
        pendingStart = (async () => {
          await new Promise((r) => setTimeout(r, st.downMs));
          await s.startJoi();
          l.downtimes.push([down, Date.now()]);
        })();
        break;
      }
      case "pause":
        await new Promise((r) => setTimeout(r, st.ms));
        break;
    }
  }
  await pendingStart;
  // every alarm of this run: alert 1 exactly once, within the bound
  for (const a of mine) {
    const due = upAfter(l, a.pushedAt) + BOUND_MS;
    await until(
      () => alertsOf(s, a.device, 1).length >= 1,
      Math.max(0, due - Date.now()) + 50,
      () =>
        `alert 1 of ${a.device} (pushed ${new Date(a.pushedAt).toISOString()}); critical sends: ` +
        s.criticalSends().map((r) => String(r.params.message).slice(0, 60)).join(" | "),
    );
    assert.ok(alertsOf(s, a.device, 1)[0]!.at <= due, `${a.device}: alert 1 after the bound`);
  }
  // the log names every refused event
  const named = (events: string[], item: string) =>
    s.logs("relay").some((r) => events.includes(String(r.event)) && r.item === item);
  for (const big of l.oversized) {
    await until(
      () => named(["relay_event_skipped", "relay_event_too_large"], big),
      10_000,
      () => `oversized ${big} is not named in the relay's log`,
    );
  }
  const joiRefused = s.logs("joi").filter((r) =>
    r.event === "ingest_event_refused" && r.code !== "rate_limited" && r.code !== "internal_error"
  );
  for (const r of joiRefused) {
    await until(
      () => named(["relay_event_refused"], String(r.item)),
      5_000,
      () => `joi refused ${r.item} (${r.code}) but the relay's log does not name it`,
    );
  }
}

Deno.test({
  name: "property: every alarm reaches the critical group exactly once per alert step, " +
    "whatever the stream carries and whenever joi restarts; every refusal is named",
  sanitizeOps: false,
  sanitizeResources: false,
  fn: async () => {
    const s = await startStack({
      policy: (doc) => {
        doc.setIn(["iot", "confirmation", "alert_minutes"], [0, 1]);
        doc.setIn(["rate_limits", "openhab", "events"], EVENT_LIMIT);
      },
    });
    const l: Ledger = { alarms: [], invalid: [], oversized: [], downtimes: [], seq: 0 };
    try {
      await fc.assert(
        fc.asyncProperty(fc.array(step, { minLength: 8, maxLength: 24 }), async (steps) => {
          await run(s, l, steps);
        }),
        { numRuns: RUNS, endOnFailure: true, verbose: 1 },
      );
      // every scenario's alarms once more, wherever they are: and a crash meanwhile
      const crashAt = Date.now() + 20_000;
      const last = Math.max(...l.alarms.map((a) => a.pushedAt), Date.now());
      let crash: Promise<void> | null = null;
      const t0 = Date.now();
      await until(
        () => {
          if (crash === null && Date.now() >= crashAt) {
            const down = Date.now();
            crash = s.stopJoi("SIGKILL").then(() => s.startJoi()).then(() => {
              l.downtimes.push([down, Date.now()]);
            });
          }
          return l.alarms.every((a) => alertsOf(s, a.device, 2).length >= 1);
        },
        last - t0 + 60_000 + BOUND_MS + 20_000,
        () =>
          `alert 2 of ${
            l.alarms.filter((a) => alertsOf(s, a.device, 2).length === 0).map((a) => a.device)
          }`,
      );
      await crash;
      await new Promise((r) => setTimeout(r, 2_000)); // a duplicate would have arrived by now
      // exactly once per step, within the bound; nothing else in the critical group
      for (const a of l.alarms) {
        const [first, second] = [alertsOf(s, a.device, 1), alertsOf(s, a.device, 2)];
        assert.equal(first.length, 1, `${a.device}: alert 1 sent ${first.length} times`);
        assert.equal(second.length, 1, `${a.device}: alert 2 sent ${second.length} times`);
        const gap = second[0]!.at - first[0]!.at;
        assert.ok(gap >= 55_000, `${a.device}: alert 2 only ${gap} ms after alert 1`);
        const late = 60_000 + BOUND_MS + downBetween(l, first[0]!.at, second[0]!.at);
        assert.ok(gap <= late, `${a.device}: alert 2 ${gap} ms after alert 1 (bound ${late})`);
      }
      // every invalid event was refused and named, or is still held by the relay because
      // joi asked it to pause ordinary traffic (an exhausted limit): none vanished unnamed
      const relay = s.logs("relay");
      const refusedNamed = l.invalid.filter((i) =>
        relay.some((r) => r.event === "relay_event_refused" && r.item === i)
      );
      const paused = relay.some((r) => r.event === "relay_backing_off");
      assert.ok(
        refusedNamed.length === l.invalid.length || paused,
        `invalid events neither refused nor held: ${
          l.invalid.filter((i) => !refusedNamed.includes(i))
        }`,
      );
      const devices = new Set(l.alarms.map((a) => a.device));
      for (const r of s.criticalSends()) {
        const d = deviceOf(String(r.params.message));
        assert.ok(
          d !== undefined && devices.has(d),
          `unexpected in the critical group: ${r.params.message}`,
        );
      }
      console.log(
        `alarm property: ${RUNS} scenarios, ${l.alarms.length} alarms, ${l.invalid.length} invalid ` +
          `(${refusedNamed.length} refused and named, the rest held by a pause: ${paused}), ` +
          `${l.oversized.length} oversized, ${l.downtimes.length} joi restarts, ` +
          `${s.criticalSends().length} critical sends`,
      );
    } finally {
      await s.close();
    }
  },
});
