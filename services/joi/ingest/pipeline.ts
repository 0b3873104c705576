/**
 * From normalized events to actions: the flood guard decides, critical alerts
 * go to the outbox with their fixed templates (no LLM on this path), numeric
 * readings are batched, everything else becomes agent context. One request's
 * effects (event id, device state, queued messages) commit in one SQLite
 * transaction, before joi answers: nothing accepted is lost on a kill.
 *
 * {@link EventPipeline.tick} drives the timers: the confirmation loop, batch
 * flushes, forecast summaries, event-id pruning, and outbox retries.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import { transaction } from "../../common/db.ts";
import type { Logger } from "../../common/log.ts";
import type { HouseholdRoles } from "../../common/policy/household.ts";
import type { FloodGuard, GuardAction } from "../guard/flood.ts";
import { LocalTime } from "../../common/local_time.ts";
import { criticalAlertText, demotedReminderText, malfunctionText } from "../guard/templates.ts";
import type { Outbox } from "../outbox/outbox.ts";
import type { OutboundMessage } from "../outbox/message.ts";
import type { ContextSink } from "./context.ts";
import { ReadingBatcher } from "./batcher.ts";
import { EventIds } from "./event_ids.ts";
import type { DeviceEvent } from "./types.ts";

/** Figures the pipeline uses (policy.yaml keys). */
export interface PipelinePolicy {
  /** `ingest.batch_minutes`. */
  batchMinutes: number;
  /** `ingest.event_id_window_minutes`. */
  eventIdWindowMinutes: number;
  /** `ingest.summaries` ("07:00"). */
  summaries: string[];
  /** `iot.flapping.window_minutes`. */
  flappingWindowMinutes: number;
  /** `household.timezone`: alert times and summary slots are in this zone. */
  timeZone: string;
  /** First of `content.ack_words`, quoted in alerts. */
  ackWord: string;
}

/** Latest weather, for the scheduled summaries. */
export interface WeatherSnapshot {
  condition: string;
  temperature: number;
  humidity: number;
  forecast: { date: string; high: number; low: number; condition: string; rain: number }[];
  at: number;
}

/** Options of {@link EventPipeline}. */
export interface PipelineOptions {
  db: DatabaseSync;
  guard: FloodGuard;
  outbox: Outbox;
  context: ContextSink;
  policy: PipelinePolicy;
  log: Logger;
  /** The household: malfunction warnings and demoted reminders go to the owner's DM, alarms to the critical channel. */
  roles: HouseholdRoles;
  now: () => number;
}

/** Per-request extras. */
export interface HandleOptions {
  /** Contract `event_id` to record (repeat refused by the caller beforehand). */
  eventId?: string | undefined;
  /** An alert's end time. */
  expiresAt?: number | undefined;
  /** Latest weather carried by this request. */
  weather?: Omit<WeatherSnapshot, "at"> | undefined;
}

/** What became of one item of {@link EventPipeline.handleEach}. */
export type ItemResult = "handled" | "duplicate" | "failed";

/** The event pipeline. */
export class EventPipeline {
  readonly eventIds: EventIds;
  readonly batcher: ReadingBatcher;
  #o: PipelineOptions;
  #weather: WeatherSnapshot | null = null;
  #summariesDone = new Set<string>();
  /** The household's clock (its formatters are built once, not on every tick). */
  #time: LocalTime;
  #prunedAt: number;

  constructor(o: PipelineOptions) {
    this.#o = o;
    this.#time = new LocalTime(o.policy.timeZone);
    this.#prunedAt = o.now();
    this.eventIds = new EventIds(o.db, o.policy.eventIdWindowMinutes);
    this.batcher = new ReadingBatcher(o.policy.batchMinutes, o.now());
  }

  /** The latest weather seen. */
  get weather(): WeatherSnapshot | null {
    return this.#weather;
  }

  #route(ev: DeviceEvent): DeviceEvent | null {
    const g = this.#o.guard;
    const critical = g.isCritical(ev);
    // high-frequency numbers (readings, quantities with a unit) are batched, never counted
    // as transitions: a temperature changing every few seconds is not a flapping device
    const numeric = ev.value !== undefined && (ev.kind === "reading" || ev.unit !== undefined);
    if (numeric && !critical) {
      this.batcher.add(ev as DeviceEvent & { value: number });
      return null;
    }
    if (critical && ev.value !== undefined && ev.state !== null) {
      // a numeric reading of a critical sensor (CO ppm, leak level): 0 is clear
      return { ...ev, state: ev.value === 0 ? "0" : "DETECTED" };
    }
    return ev;
  }

  /**
   * Handles the events of one accepted request; returns how many outbound
   * messages were queued. Throws only on storage failure (answer 500).
   */
  handle(events: DeviceEvent[], opts: HandleOptions = {}): number {
    const { eventId, ...rest } = opts;
    const r = this.handleEach([{ events, ...(eventId ? { id: eventId } : {}) }], rest);
    if (r.results[0] === "failed") throw new Error("the event could not be handled");
    return r.queued;
  }

  /**
   * Handles the events of a batch, each item on its own: one transaction for
   * the request, a savepoint per item, so an item that fails is rolled back
   * alone and reported, never taking its neighbours with it. An item's `id`
   * (the relay's per-event id) is recorded with its effects; an item whose id
   * was already recorded is reported `duplicate` and not handled again.
   * Throws only when the transaction itself cannot commit (answer 500).
   */
  handleEach(
    items: readonly { events: readonly DeviceEvent[]; id?: string }[],
    opts: HandleOptions = {},
  ): { queued: number; results: ItemResult[] } {
    const now = this.#o.now();
    const results: ItemResult[] = [];
    let queued = 0;
    try {
      queued = transaction(this.#o.db, () => {
        if (opts.eventId) this.eventIds.record(opts.eventId, now);
        let n = 0;
        for (const item of items) {
          if (item.id !== undefined && this.eventIds.isRepeat(item.id, now)) {
            results.push("duplicate");
            continue;
          }
          this.#o.db.exec("SAVEPOINT ingest_item");
          try {
            let m = 0;
            if (item.id !== undefined) this.eventIds.record(item.id, now);
            for (const raw of item.events) {
              const ev = this.#route(raw);
              if (!ev) continue;
              for (const a of this.#o.guard.observe(ev, now, opts.expiresAt)) m += this.#act(a);
            }
            this.#o.db.exec("RELEASE ingest_item");
            n += m;
            results.push("handled");
          } catch (e) {
            this.#o.db.exec("ROLLBACK TO ingest_item");
            this.#o.db.exec("RELEASE ingest_item");
            // the guard's cache may hold what was just rolled back: the rows are the truth
            this.#o.guard.invalidate();
            this.#o.log.error("ingest_item_failed", {
              devices: item.events.map((e) => e.device).join(","),
              error: String(e),
            });
            results.push("failed");
          }
        }
        return n;
      });
    } catch (e) {
      this.#o.guard.invalidate();
      throw e;
    }
    if (opts.weather) this.#weather = { ...opts.weather, at: now };
    if (queued > 0) this.#o.outbox.kick();
    return { queued, results };
  }

  #enqueue(m: OutboundMessage): number {
    const r = this.#o.outbox.enqueue(m);
    return r.accepted ? 1 : 0;
  }

  #act(a: GuardAction): number {
    const p = this.#o.policy;
    const direct = this.#o.roles.ownerDm;
    switch (a.type) {
      case "critical_alert": {
        this.#o.log.info("critical_alert", {
          device: a.device,
          device_type: a.deviceType,
          alert_number: a.alertNumber,
        });
        const now = this.#o.now();
        const r = this.#o.outbox.enqueue({
          channel: this.#o.roles.criticalChannel,
          text: criticalAlertText(a, this.#time, p.ackWord, now),
          priority: "critical",
          kind: "event_critical",
          template: true,
          // the first alert was raised when the device was observed (an alarm the relay
          // held while joi was cut off is delivered marked delayed, and the link
          // watch's summary counts it); reminders are raised when they are due
          ...(a.alertNumber === 1 ? { createdAt: Math.min(a.observedAt, now) } : {}),
        });
        if (!r.accepted) return 0;
        // which alarm this message carries: a quote or 👍 of it acknowledges that alarm
        this.#o.guard.alarms.carriedBy(a.alarmId, r.deliveryId, a.alertNumber);
        return 1;
      }
      case "demoted_reminder":
        return this.#enqueue({
          channel: direct,
          text: demotedReminderText(a),
          priority: "normal",
          kind: "event_critical",
          template: true,
        });
      case "malfunction":
        return this.#enqueue({
          channel: direct,
          text: malfunctionText(a, p.flappingWindowMinutes),
          priority: "normal",
          kind: "proactive",
          template: true,
        });
      case "cleared":
        this.#o.context.push({
          kind: "cleared",
          device: a.device,
          summary: `${a.device} (${a.deviceType}) returned to ${a.event.state}`,
          at: a.event.observedAt,
        });
        return 0;
      case "context": {
        const e = a.event;
        // outside text (a String item's value, a trigger's event, a label) goes beside
        // the summary, never in it: the prompt shows it quoted in <untrusted_data>
        const data = e.freeText ? e.state ?? "" : e.label?.replace(/^“|”$/g, "") ?? "";
        this.#o.context.push({
          kind: "event",
          device: e.device,
          summary: `${e.device} (${e.deviceType}, ${e.kind})${e.freeText ? "" : `: ${e.state}`}`,
          ...(data !== "" ? { data } : {}),
          at: e.observedAt,
        });
        return 0;
      }
    }
  }

  /** Fires due timers at `now`; returns the number of messages queued. */
  tick(now: number = this.#o.now()): number {
    let queued = 0;
    try {
      queued = transaction(this.#o.db, () => {
        let n = 0;
        for (const a of this.#o.guard.tick(now)) n += this.#act(a);
        return n;
      });
    } catch (e) {
      this.#o.guard.invalidate();
      throw e;
    }
    for (const item of this.batcher.flush(now)) this.#o.context.push(item);
    this.#summaries(now);
    if (now - this.#prunedAt >= 60_000) {
      this.eventIds.prune(now);
      this.#prunedAt = now;
    }
    const next = this.#o.outbox.store.nextDue();
    if (queued > 0 || (next !== null && next <= now)) this.#o.outbox.kick();
    return queued;
  }

  #summaries(now: number): void {
    const p = this.#o.policy;
    if (p.summaries.length === 0) return;
    const t = this.#time.parts(now);
    const two = (n: number) => String(n).padStart(2, "0");
    const hm = `${two(t.hour)}:${two(t.minute)}`;
    const day = `${t.year}-${two(t.month)}-${two(t.day)}`;
    for (const slot of p.summaries) {
      if (hm !== slot) continue;
      const key = `${day} ${slot}`;
      if (this.#summariesDone.has(key)) continue;
      this.#summariesDone.add(key);
      if (this.#summariesDone.size > 16) {
        this.#summariesDone.delete(this.#summariesDone.values().next().value!);
      }
      const w = this.#weather;
      if (!w) continue;
      const f = w.forecast.slice(0, 2).map((d) =>
        `${this.#time.date(d.date, now)}: ${d.condition}, ${d.low} to ${d.high} °C, rain ${d.rain}%`
      ).join("; ");
      this.#o.context.push({
        kind: "weather_summary",
        device: "weather",
        summary: `Forecast at ${slot} (weather from ${this.#time.when(w.at, now)}): now ` +
          `${w.condition}, ${w.temperature} °C, humidity ${w.humidity}%. ${f}`,
        at: now,
      });
    }
  }
}
