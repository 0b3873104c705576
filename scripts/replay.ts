/**
 * `deno task replay FILE [--speed N]`: posts a recorded day of openHAB events
 * to a running joi (8445), compressed in time by N (1440 plays a day in a
 * minute). Each line of FILE is `{at: "HH:MM:SS", endpoint, body}`; the body
 * gets a fresh `event_id` and times relative to now (`timestamp`,
 * `changed_at`, `measured_at` as `HH:MM:SS`, `expires_at` as `+4h`, forecast
 * dates as `+1d`), so a replay is never refused as a repeat.
 *
 * joi enforces its per-hour ingest limits in real time, so a compressed replay
 * sees 429s for routine sensor batches: they are counted and reported, and
 * show the limits at work. Critical events are never limited.
 *
 * @module
 */
import { parseCommandLine, runMain } from "../services/common/cli.ts";

/** One line of a recording. */
export interface RecordedEvent {
  /** Time of day, `HH:MM:SS`. */
  at: string;
  /** `presence`, `sensors`, `weather`, `alert`, `state` or `events`. */
  endpoint: string;
  /** The request body, with relative times. */
  body: Record<string, unknown>;
}

const ENDPOINTS = new Set(["presence", "sensors", "weather", "alert", "state", "events"]);
const HMS = /^(\d\d):(\d\d):(\d\d)$/;

/** Seconds since midnight of `HH:MM:SS`; throws naming the line. */
export function secondsOf(hms: string, where: string): number {
  const m = HMS.exec(hms);
  if (!m || Number(m[1]) > 23 || Number(m[2]) > 59 || Number(m[3]) > 59) {
    throw new Error(`${where}: "${hms}" is not HH:MM:SS`);
  }
  return Number(m[1]) * 3600 + Number(m[2]) * 60 + Number(m[3]);
}

/** Parses a recording; throws `file:line: problem` for a bad line. */
export function parseRecording(text: string, file = "recording"): RecordedEvent[] {
  const out: RecordedEvent[] = [];
  text.split("\n").forEach((line, i) => {
    if (line.trim() === "") return;
    const where = `${file}:${i + 1}`;
    let x: unknown;
    try {
      x = JSON.parse(line);
    } catch (e) {
      throw new Error(`${where}: not JSON (${(e as Error).message})`);
    }
    const r = x as Partial<RecordedEvent>;
    if (typeof r.at !== "string") throw new Error(`${where}: "at" must be "HH:MM:SS"`);
    secondsOf(r.at, where);
    if (typeof r.endpoint !== "string" || !ENDPOINTS.has(r.endpoint)) {
      throw new Error(`${where}: "endpoint" must be one of ${[...ENDPOINTS].join(", ")}`);
    }
    if (typeof r.body !== "object" || r.body === null) {
      throw new Error(`${where}: "body" must be an object`);
    }
    out.push(r as RecordedEvent);
  });
  return out;
}

/** The body of `ev` for sending at `now` (ms), with times scaled by `speed`. */
export function materialize(
  ev: RecordedEvent,
  now: number,
  speed: number,
): Record<string, unknown> {
  const at = secondsOf(ev.at, ev.at);
  const iso = (ms: number) => new Date(ms).toISOString();
  const body = structuredClone(ev.body);
  if ("event_id" in body) body.event_id = crypto.randomUUID();
  if ("timestamp" in body) body.timestamp = iso(now);
  const data = body.data as Record<string, unknown> | undefined;
  if (data) {
    if ("changed_at" in data) data.changed_at = iso(now);
    if (typeof data.expires_at === "string") {
      const m = /^\+(\d+)h$/.exec(data.expires_at);
      if (m) data.expires_at = iso(now + (Number(m[1]) * 3600_000) / speed);
    }
    if (Array.isArray(data.readings)) {
      for (const r of data.readings as Record<string, unknown>[]) {
        if (typeof r.measured_at === "string" && HMS.test(r.measured_at)) {
          const ago = (at - secondsOf(r.measured_at, ev.at)) * 1000 / speed;
          r.measured_at = iso(now - Math.max(0, ago));
        }
      }
    }
    if (Array.isArray(data.forecast)) {
      for (const f of data.forecast as Record<string, unknown>[]) {
        const m = typeof f.date === "string" ? /^\+(\d+)d$/.exec(f.date) : null;
        if (m) f.date = iso(now + Number(m[1]) * 86_400_000).slice(0, 10);
      }
    }
  }
  return body;
}

/** Options of {@link replay}. */
export interface ReplayOptions {
  events: RecordedEvent[];
  joiUrl: string;
  speed: number;
  /** Start at this time of day (`HH:MM:SS`); earlier lines are skipped. */
  from?: string;
  fetch?: typeof fetch;
  sleep?: (ms: number) => Promise<void>;
  now?: () => number;
  /** Progress lines. */
  print?: (line: string) => void;
}

/** Tally of a replay: HTTP status -> count, per endpoint. */
export type ReplayTally = Record<string, Record<number, number>>;

/** Replays `events` in order, keeping their spacing divided by `speed`. */
export async function replay(o: ReplayOptions): Promise<ReplayTally> {
  const doFetch = o.fetch ?? fetch;
  const sleep = o.sleep ?? ((ms: number) => new Promise<void>((r) => setTimeout(r, ms)));
  const now = o.now ?? Date.now;
  const start = o.from ? secondsOf(o.from, "--from") : 0;
  const events = o.events.filter((e) => secondsOf(e.at, e.at) >= start);
  const tally: ReplayTally = {};
  const t0 = now();
  for (const ev of events) {
    const due = t0 + ((secondsOf(ev.at, ev.at) - start) * 1000) / o.speed;
    const wait = due - now();
    if (wait > 0) await sleep(wait);
    const body = materialize(ev, now(), o.speed);
    let status = 0;
    try {
      const res = await doFetch(new URL(`/api/v1/openhab/${ev.endpoint}`, o.joiUrl), {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(body),
      });
      status = res.status;
      const text = await res.text();
      if (status >= 400 && status !== 429) o.print?.(`${ev.at} ${ev.endpoint}: ${status} ${text}`);
    } catch (e) {
      o.print?.(`${ev.at} ${ev.endpoint}: joi unreachable (${(e as Error).message})`);
    }
    const t = (tally[ev.endpoint] ??= {});
    t[status] = (t[status] ?? 0) + 1;
    if (ev.endpoint !== "sensors") {
      o.print?.(`${ev.at} ${ev.endpoint} -> ${status || "unreachable"}`);
    }
  }
  return tally;
}

async function main(): Promise<number> {
  const { values, positionals } = parseCommandLine("replay", {
    args: Deno.args,
    allowPositionals: true,
    options: {
      "joi-url": { type: "string" },
      speed: { type: "string", default: "1" },
      from: { type: "string" },
    },
  });
  const file = positionals[0] ?? "scripts/data/household_day.jsonl";
  const speed = Number(values.speed);
  if (!Number.isFinite(speed) || speed <= 0) {
    console.error(`replay: --speed must be a positive number, got "${values.speed}"`);
    return 2;
  }
  if (!values["joi-url"]) {
    console.error("replay: --joi-url is required (the manifest's replay entry passes it)");
    return 2;
  }
  let events: RecordedEvent[];
  try {
    events = parseRecording(await Deno.readTextFile(file), file);
  } catch (e) {
    console.error(`replay: ${(e as Error).message}`);
    return 1;
  }
  console.log(`replay: ${events.length} events from ${file} at ${speed}x to ${values["joi-url"]}`);
  const tally = await replay({
    events,
    joiUrl: values["joi-url"],
    speed,
    ...(values.from ? { from: values.from } : {}),
    print: (l) => console.log(l),
  });
  for (const [ep, counts] of Object.entries(tally)) {
    const parts = Object.entries(counts).map(([s, n]) => `${s === "0" ? "unreachable" : s}: ${n}`);
    console.log(`replay: ${ep} ${parts.join(", ")}`);
  }
  if (Object.values(tally).some((c) => c[429])) {
    console.log(
      "replay: 429 = joi's per-hour ingest limit (policy.yaml rate_limits.openhab), " +
        "expected when a day is compressed; critical events are never limited",
    );
  }
  return 0;
}

if (import.meta.main) await runMain(() => main());
