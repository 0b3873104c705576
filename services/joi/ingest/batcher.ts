/**
 * Batching of high-frequency sensor readings: per sensor, the last, min and
 * max value and a count over the window, flushed every `ingest.batch_minutes`
 * as one context item each. Memory is one small record per sensor.
 *
 * @module
 */
import type { DeviceEvent } from "./types.ts";
import type { ContextItem } from "./context.ts";

interface Window {
  device: string;
  deviceType: string;
  unit?: string;
  last: number;
  min: number;
  max: number;
  count: number;
  lastAt: number;
}

/** Per-sensor aggregation windows. */
export class ReadingBatcher {
  #windows = new Map<string, Window>();
  #periodMs: number;
  #nextFlush: number;

  constructor(batchMinutes: number, now: number) {
    this.#periodMs = batchMinutes * 60_000;
    this.#nextFlush = now + this.#periodMs;
  }

  /** Adds a numeric reading. */
  add(ev: DeviceEvent & { value: number }): void {
    const w = this.#windows.get(ev.device);
    if (!w) {
      this.#windows.set(ev.device, {
        device: ev.device,
        deviceType: ev.deviceType,
        ...(ev.unit ? { unit: ev.unit } : {}),
        last: ev.value,
        min: ev.value,
        max: ev.value,
        count: 1,
        lastAt: ev.observedAt,
      });
      return;
    }
    w.last = ev.value;
    if (ev.value < w.min) w.min = ev.value;
    if (ev.value > w.max) w.max = ev.value;
    w.count++;
    w.lastAt = ev.observedAt;
  }

  /** Sensors with an open window. */
  get size(): number {
    return this.#windows.size;
  }

  /** When due (or forced), the windows as context items, then empty. */
  flush(now: number, force = false): ContextItem[] {
    if (!force && now < this.#nextFlush) return [];
    this.#nextFlush = now + this.#periodMs;
    const out: ContextItem[] = [];
    for (const w of this.#windows.values()) {
      const u = w.unit ? ` ${w.unit}` : "";
      out.push({
        kind: "reading_batch",
        device: w.device,
        summary: `${w.device} (${w.deviceType}): last ${w.last}${u}, min ${w.min}${u}, ` +
          `max ${w.max}${u} over ${w.count} readings`,
        at: w.lastAt,
      });
    }
    this.#windows.clear();
    return out;
  }
}
