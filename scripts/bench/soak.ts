/**
 * The soak: a household's day, compressed to a few minutes, through the real
 * mesh, joi and relay processes (each with its manifest flags and
 * environment, `tests/alarms/stack.ts`), with RSS taken from
 * `/proc/<pid>/smaps` after every hour of the day.
 *
 * Each hour: {@link MESSAGES_PER_HOUR} Signal messages (the owner's and the
 * partner's DMs, the family group), each answered through joi and the LLM
 * stand-in; {@link EVENTS_PER_HOUR} openHAB bus events (temperatures and
 * humidity, motion, doors, lights) through the relay. Across the day: three
 * smoke alarms, each delivered to the critical group and acknowledged there by
 * the owner; openHAB dropping its event stream twice (the relay reconnects);
 * signal-cli restarting twice (the mesh reconnects).
 *
 * Warm-up first: the days before, as {@link WARM_UP_MESSAGES} messages and
 * {@link WARM_UP_EVENTS} events sent as fast as the stack takes them. A
 * household's services have been up for weeks; measured from a cold start,
 * joi's RSS rises for its first ~2,000 messages (V8 growing its heap to its
 * working size) and is flat after: 98.6 MB after 2,000 messages, 98.7 MB after
 * 12,000, its malloc memory in use 13.4 then 13.1 MB (glibc's malloc_info).
 *
 * Printed per process: RSS before and after the warm-up, then at the start,
 * the middle and the end of the day, each the median of the three hourly
 * samples around it (one sample catches a GC at any moment), and the growth
 * from start to end: target < 5%. Not part of CI: `deno task bench soak`.
 *
 * @module
 */
import { describe, mb, type MemoryBreakdown, memoryOf } from "./_memory.ts";
import { startBenchStack } from "./_bench_stack.ts";
import { temperature } from "./relay.ts";
import type { Stack } from "../../tests/alarms/stack.ts";
import { dataEnvelope } from "../../tests/peers/signal_cli/peer.ts";
import { GROUPS, OWNER, PARTNER } from "../../tests/services/mesh/harness.ts";
import {
  channelOfGroup,
  CRITICAL_GROUP,
  FAMILY_GROUP,
} from "../../services/common/policy/household.ts";
import { type OpenhabEvent, stateChanged } from "../../tests/peers/openhab_sse.ts";

const HOURS = 24;
/** One hour of the day, in real milliseconds. */
const HOUR_MS = 7_000;
const MESSAGES_PER_HOUR = 30;
const EVENTS_PER_HOUR = 400;
const WARM_UP_MESSAGES = 2_000;
const WARM_UP_EVENTS = 8_000;
const ALARM_HOURS = new Set([6, 14, 21]);
const STREAM_DROP_HOURS = new Set([4, 16]);
const SIGNAL_RESTART_HOURS = new Set([8, 20]);
const GROWTH_TARGET = 0.05;
const SERVICES = ["mesh", "joi", "relay"] as const;
type Service = typeof SERVICES[number];
/** Signal group ids of the example household's critical and family groups. */
const CRITICAL = GROUPS[channelOfGroup(CRITICAL_GROUP)];
const FAMILY = GROUPS[channelOfGroup(FAMILY_GROUP)];

/** What the day did, to show it really went through. */
export interface DayCounts {
  messages: number;
  replies: number;
  events: number;
  alarms: number;
  alarmMs: number[];
  acknowledged: number;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** The openHAB events of hour `h`, in order. */
function hourEvents(h: number): OpenhabEvent[] {
  const out: OpenhabEvent[] = [];
  for (let i = 0; out.length < EVENTS_PER_HOUR; i++) {
    const k = i % 20;
    if (k < 15) {
      const room = ["Living", "Bedroom", "Kitchen", "Office", "Bath"][i % 5]!;
      const v = 19 + ((h * 7 + i) % 40) / 10;
      out.push(temperature(`${room}_${i % 6}_Temperature`, v));
    } else if (k < 17) {
      out.push(stateChanged(`Zone${i % 6}_Motion`, "OnOff", i % 2 === 0 ? "ON" : "OFF"));
    } else if (k < 18) {
      out.push(stateChanged(`Door${i % 4}_Contact`, "OpenClosed", i % 2 ? "CLOSED" : "OPEN"));
    } else {
      out.push(stateChanged(`Lamp${i % 8}_Switch`, "OnOff", i % 2 === 0 ? "ON" : "OFF"));
    }
  }
  return out;
}

/** Sends to a group or a recipient seen by signal-cli so far. */
function sendsTo(stack: Stack, groupId?: string): number {
  return stack.peer.calls("send").filter((r) =>
    groupId === undefined ? true : (r.params as { groupId?: string }).groupId === groupId
  ).length;
}

/** Polls `pred` every 50 ms for at most `ms`; says whether it held. */
async function within(ms: number, pred: () => boolean): Promise<boolean> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) return false;
    await sleep(50);
  }
  return true;
}

/** One smoke alarm: delivered to the critical group, acknowledged by the owner, cleared. */
export async function alarm(stack: Stack, counts: DayCounts): Promise<void> {
  const before = sendsTo(stack, CRITICAL);
  const t0 = performance.now();
  stack.push(stateChanged("Kitchen_Smoke", "OnOff", "ON", { oldValue: "OFF" }));
  if (!(await within(30_000, () => sendsTo(stack, CRITICAL) > before))) {
    throw new Error("soak: a smoke alarm did not reach the critical group within 30 s");
  }
  counts.alarms++;
  counts.alarmMs.push(performance.now() - t0);
  stack.peer.push(
    dataEnvelope({
      ...OWNER,
      groupId: CRITICAL,
      timestamp: stack.peer.nextTimestamp(),
      text: "ok",
    }),
  );
  counts.acknowledged++;
  await sleep(200);
  stack.push(stateChanged("Kitchen_Smoke", "OnOff", "OFF", { oldValue: "ON" }));
}

/** Hour `h` of the day: its messages and events spread over {@link HOUR_MS}. */
export async function hour(stack: Stack, h: number, counts: DayCounts): Promise<void> {
  const events = hourEvents(h);
  const senders = [
    { who: OWNER, groupId: undefined },
    { who: OWNER, groupId: undefined },
    { who: PARTNER, groupId: undefined },
    { who: PARTNER, groupId: FAMILY },
  ];
  const slices = MESSAGES_PER_HOUR;
  const perSlice = Math.ceil(events.length / slices);
  const started = performance.now();
  for (let s = 0; s < slices; s++) {
    const m = senders[s % senders.length]!;
    stack.peer.push(
      dataEnvelope({
        ...m.who,
        ...(m.groupId ? { groupId: m.groupId } : {}),
        timestamp: stack.peer.nextTimestamp(),
        text: `joi, message ${s} of hour ${h}: anything new at home?`,
      }),
    );
    counts.messages++;
    for (const ev of events.slice(s * perSlice, (s + 1) * perSlice)) stack.push(ev);
    counts.events += Math.max(0, Math.min(perSlice, events.length - s * perSlice));
    await sleep(Math.max(0, started + ((s + 1) * HOUR_MS) / slices - performance.now()));
  }
}

/** The V8 heap in use (MB) as the mesh and joi report it on `/health`. */
async function heapUsed(stack: Stack): Promise<string> {
  const get = async (port: number) => {
    const r = await fetch(`http://127.0.0.1:${port}/health`);
    return (await r.json()).data as Record<string, Record<string, number>>;
  };
  const mesh = (await get(stack.layout.meshOutbound.port)).memory?.heap_used_mb;
  const joi = (await get(stack.layout.joiInbound.port)).memory_mb?.heap_used;
  return `V8 heap used: mesh ${mesh} joi ${joi}`;
}

/** The median of three hourly samples around hour `h` (by RSS). */
function around(samples: MemoryBreakdown[], h: number): MemoryBreakdown {
  const three = samples.slice(Math.max(0, h - 2), h + 1).sort((a, b) => a.rss - b.rss);
  return three[Math.floor(three.length / 2)]!;
}

/** The days before: messages in rounds of four (each round's replies awaited) and events. */
export async function warmUp(stack: Stack): Promise<void> {
  const events = Array.from(
    { length: WARM_UP_EVENTS / EVENTS_PER_HOUR },
    (_, h) => hourEvents(100 + h),
  ).flat();
  for (let i = 0; i < WARM_UP_MESSAGES; i += 4) {
    const sends = sendsTo(stack);
    for (let k = 0; k < 4; k++) {
      stack.peer.push(
        dataEnvelope({
          ...(k % 2 ? PARTNER : OWNER),
          timestamp: stack.peer.nextTimestamp(),
          text: `joi, warm-up message ${i + k}`,
        }),
      );
    }
    for (const ev of events.slice(i * 4, i * 4 + 16)) stack.push(ev);
    await within(10_000, () => sendsTo(stack) >= sends + 4);
  }
}

/** Counters at zero. */
export function newDayCounts(): DayCounts {
  return { messages: 0, replies: 0, events: 0, alarms: 0, alarmMs: [], acknowledged: 0 };
}

/** Runs the benchmark and prints its figures. */
export async function bench(): Promise<void> {
  const stack = await startBenchStack();
  const counts = newDayCounts();
  const samples = new Map<Service, MemoryBreakdown[]>(SERVICES.map((s) => [s, []]));
  const t0 = performance.now();
  try {
    const rssOf = async (svc: Service) => (await memoryOf(stack[svc].process.pid)).rss;
    const cold = await Promise.all(SERVICES.map(rssOf));
    await warmUp(stack);
    const warm = await Promise.all(SERVICES.map(rssOf));
    console.log(
      `warm-up (${WARM_UP_MESSAGES} messages, ${WARM_UP_EVENTS} events): RSS MB ` +
        SERVICES.map((s, i) => `${s} ${mb(cold[i]!)} -> ${mb(warm[i]!)}`).join("  "),
    );
    const sendsBefore = sendsTo(stack);
    for (let h = 1; h <= HOURS; h++) {
      if (STREAM_DROP_HOURS.has(h)) stack.sse.dropAll();
      if (SIGNAL_RESTART_HOURS.has(h)) {
        await stack.peer.stop();
        await sleep(300);
        stack.peer.listen();
      }
      await hour(stack, h, counts);
      if (ALARM_HOURS.has(h)) await alarm(stack, counts);
      for (const s of SERVICES) {
        const pid = stack[s].process.pid;
        samples.get(s)!.push(await memoryOf(pid));
      }
      const line = SERVICES.map((s) => `${s} ${mb(samples.get(s)!.at(-1)!.rss)}`).join("  ");
      console.log(`hour ${String(h).padStart(2)}: RSS MB  ${line}  (${await heapUsed(stack)})`);
    }
    // the replies of the last hour may still be on their way
    await within(20_000, () => sendsTo(stack) - sendsBefore >= counts.messages);
    counts.replies = sendsTo(stack) - sendsBefore - counts.alarms;
    const secs = (performance.now() - t0) / 1000;
    console.log(
      `day: ${counts.messages} messages (${counts.replies} sends back, alerts excluded), ` +
        `${counts.events} openHAB events, ${counts.alarms} smoke alarms delivered to the ` +
        `critical group (${counts.alarmMs.map((ms) => `${ms.toFixed(0)} ms`).join(", ")}) and ` +
        `${counts.acknowledged} acknowledged; openHAB stream dropped ${STREAM_DROP_HOURS.size}x ` +
        `(relay connections ${stack.sse.connections}), signal-cli restarted ` +
        `${SIGNAL_RESTART_HOURS.size}x (mesh connections ${stack.peer.connections}); ` +
        `${secs.toFixed(0)} s`,
    );
    const middle = Math.round(HOURS / 2);
    let worst = 0;
    for (const s of SERVICES) {
      const all = samples.get(s)!;
      const start = around(all, 2);
      const mid = around(all, middle - 1);
      const end = around(all, HOURS - 1);
      const growth = end.rss / start.rss - 1;
      worst = Math.max(worst, growth);
      console.log(
        `${s}: RSS start ${mb(start.rss)} MB, middle ${mb(mid.rss)} MB, end ${mb(end.rss)} MB ` +
          `(anon ${mb(start.anon)} -> ${mb(end.anon)} MB); growth ${(growth * 100).toFixed(1)}% ` +
          `(target < ${GROWTH_TARGET * 100}%): ${growth < GROWTH_TARGET ? "MET" : "MISSED"}`,
      );
      console.log(`  end: ${describe(end)}`);
    }
    console.log(
      `soak: worst growth ${(worst * 100).toFixed(1)}% over the day, after the warm-up`,
    );
    for (const s of SERVICES) {
      const warned = stack.logs(s).filter((l) => l.level !== "info" && l.level !== "debug");
      if (warned.length) {
        console.log(`${s}: ${warned.length} warnings; last: ${JSON.stringify(warned.at(-1))}`);
      }
    }
  } finally {
    await stack.close();
  }
}

if (import.meta.main) await bench();
