/**
 * The openHAB relay: subscribes to openHAB's `/rest/events` stream with an
 * API token, keeps the events joi uses (item state changes, thing status,
 * channel triggers) of items the policy admits, stamps its own receive time
 * and an id on each, and posts them to joi's `POST /api/v1/openhab/events`.
 *
 * Two lanes, so nothing else in the stream can delay or lose an alarm:
 *
 * - **critical**: an event of a critical device class (policy
 *   `iot.critical_device_types`, from the item's or its group's name, as joi
 *   classifies it) is posted at once, on its own, by its own loop, whatever
 *   the ordinary lane is doing (in flight, backing off, rate limited); it is
 *   retried quickly (at most `criticalBackoffMaxMs` apart) until joi has it,
 *   and never dropped for room (a detector flooding its own events keeps only
 *   its latest 20 waiting);
 * - **ordinary**: everything else is buffered (bounded: the oldest are
 *   dropped, counted and named in the log) and posted in batches of at most
 *   `maxBatch` events and `maxBodyBytes` bytes.
 *
 * joi answers a batch per event (`services/joi/ingest/batch.ts`, its contract `batch_answer.ts`): the relay
 * removes exactly the events joi accepted or refused for good (each refusal
 * logged by item name with joi's code and reason), and keeps those that may
 * be retried. A rate-limited answer sets a real backoff: no ordinary post
 * before its `retry_after` (new events do not cut it short). A batch refused
 * as a whole with a 4xx that retrying cannot fix is split and its events
 * posted one by one, so one bad event never takes its neighbours with it.
 *
 * The stream reconnects with backoff when it ends or fails, and when nothing
 * (not even openHAB's 10 s `alive`) arrived for 3 keep-alive periods. A line
 * or event too large (a camera's image item) is skipped and logged, never
 * ending the stream (`sse.ts`).
 *
 * @module
 */
import {
  JsonClient,
  SignedClient,
  WireClientError,
  type WireResponse,
} from "../common/wire/client.ts";
import type { WireKey } from "../common/wire/keys.ts";
import type { Logger } from "../common/log.ts";
import { compileItemFilter, type ItemLists } from "../joi/ingest/items.ts";
import { isRetryable, type RefusedEvent, topicItem } from "../joi/ingest/batch_answer.ts";
import { DeviceClassifier, type DeviceClassPatterns } from "../common/device_classes.ts";
import { cleanIdentifier } from "../joi/ingest/identifier.ts";
import { readCapped } from "../common/wire/read_capped.ts";
import { parseSse, type SseSkip } from "./sse.ts";
import type { CriticalRecord } from "./critical_store.ts";

/** One event as forwarded to joi. */
export interface RelayedEvent {
  topic: string;
  payload: string;
  type: string;
  /** When the relay received it (ms). */
  received_at: number;
  /** The relay's id of it: joi accepts a repeat once (a retry after a lost answer). */
  id: string;
}

/** Options of {@link Relay}. */
export interface RelayOptions {
  /** openHAB base URL, `http://127.0.0.1:8080`. */
  openhabUrl: string;
  /** openHAB API token (never logged). */
  token: string;
  /** joi's ingest base URL, `http://10.42.0.10:8445`. */
  joiUrl: string;
  /** This openHAB node's name as joi's policy lists it. */
  source: string;
  /** policy.yaml `ingest.items`. */
  items: ItemLists;
  /** Events per batch (policy `ingest.max_readings`). */
  maxBatch: number;
  /** Largest serialized event joi accepts (policy `ingest.max_event_bytes`). */
  maxEventBytes: number;
  /** Largest request body joi reads (policy `security.max_body_bytes`; default 64 KiB). */
  maxBodyBytes?: number;
  /** Device classes whose events take the critical lane (policy `iot.critical_device_types`). */
  criticalTypes?: readonly string[];
  /** The household's item patterns -> classes (policy `iot.device_classes`), read as joi reads them. */
  deviceClasses?: DeviceClassPatterns;
  /** openHAB's keep-alive period (10 s); the watchdog fires after 3 of them. */
  keepAliveMs?: number;
  /** Buffered ordinary events at most while joi is unreachable (default 10,000). */
  bufferMax?: number;
  /** Reconnect / repost backoff bounds of the stream and the ordinary lane (ms). */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Longest pause between two tries of a critical event (default 1 s). */
  criticalBackoffMaxMs?: number;
  /** Longest SSE line kept (default 64 KiB); longer ones are skipped and logged. */
  maxLineBytes?: number;
  /** Forward `state`/`stateupdated` too (default: only changes). */
  forwardUpdates?: boolean;
  log: Logger;
  fetch?: typeof fetch;
  now?: () => number;
  /**
   * The openHAB->joi key: when set, every post is signed and only verified
   * answers count (joi requires it in production).
   */
  signingKey?: WireKey | undefined;
  /** Largest accepted `|joi's clock - ours|` in a signed answer (ms; default 5 minutes). */
  toleranceMs?: number | undefined;
  /** The durable record of critical events not yet taken by joi (`critical_store.ts`). */
  record?: CriticalRecord;
}

/** Counters for health and tests. */
export interface RelayStats {
  connections: number;
  watchdogReconnects: number;
  received: number;
  forwarded: number;
  filtered: number;
  /** Ordinary events dropped for room while joi was unreachable. */
  dropped: number;
  /** Events joi refused for good (each logged by item). */
  refused: number;
  /** Lines or events skipped as too large. */
  skipped: number;
  /** Ordinary events waiting. */
  buffered: number;
  /** Critical events waiting (normally 0). */
  criticalPending: number;
  /** Critical events joi has. */
  criticalForwarded: number;
  postFailures: number;
}

/** The relay's view of openHAB's event stream (the heartbeat reports it). */
export interface StreamState {
  /** Connected, and traffic (events or keep-alives) arrives. */
  connected: boolean;
  /** When `connected` last changed (ms). */
  since: number;
  /** Last event or keep-alive (ms), null before any. */
  lastTrafficAt: number | null;
  /** Why the stream is down (null while connected). */
  error: string | null;
}

/** A waiting event. */
interface Pending {
  ev: RelayedEvent;
  /** Item (or thing, channel) for logs. */
  item: string;
  /** Serialized size (bytes). */
  bytes: number;
  /** Tries that ended in a retryable refusal of this event. */
  attempts: number;
  /** Post it on its own (its batch was refused as a whole). */
  alone: boolean;
}

/** joi's answer to one post, as the lanes need it. */
type PostOutcome =
  | { kind: "verdicts"; accepted: Set<number>; refused: Map<number, RefusedEvent> }
  | { kind: "refused_whole"; status: number; code: string; message: string }
  | { kind: "retry"; status: number; error: string; retryAfterMs?: number };

const FORWARD = new Set(["statechanged", "statuschanged", "triggered"]);
const EVENTS_PATH = "/api/v1/openhab/events";
const UPDATES = new Set(["state", "stateupdated"]);
const encoder = new TextEncoder();
/** A retryable refusal of one event is tried this often, then dropped and logged. */
const MAX_ATTEMPTS = 8;
/** Critical events of one device waiting at most (a flooding detector cannot grow memory). */
const MAX_PENDING_PER_DEVICE = 20;
/** Room for the batch envelope around its events. */
const ENVELOPE_BYTES = 512;

/** A sleep that an event may cut short, and {@link stop} always does. */
class Waker {
  #wake: (() => void) | null = null;

  sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#wake = null;
        resolve();
      }, Math.max(0, ms));
      this.#wake = () => {
        clearTimeout(t);
        this.#wake = null;
        resolve();
      };
    });
  }

  wake(): void {
    this.#wake?.();
  }
}

/** The relay. `run()` until `stop()`. */
export class Relay {
  readonly stats: RelayStats = {
    connections: 0,
    watchdogReconnects: 0,
    received: 0,
    forwarded: 0,
    filtered: 0,
    dropped: 0,
    refused: 0,
    skipped: 0,
    buffered: 0,
    criticalPending: 0,
    criticalForwarded: 0,
    postFailures: 0,
  };
  #o: RelayOptions;
  #filter;
  #critical: Set<string>;
  #classes: DeviceClassifier;
  #ordinary: Pending[] = [];
  #urgent: Pending[] = [];
  #stopped = false;
  #abort: AbortController | null = null;
  #ordinaryWaker = new Waker();
  #criticalWaker = new Waker();
  /** No ordinary post before this time (Retry-After, backoff). */
  #notBefore = 0;
  #fetch: typeof fetch;
  #now: () => number;
  #stream: StreamState;
  #client: JsonClient;
  #loggedOffset: number | undefined;

  constructor(o: RelayOptions) {
    this.#o = o;
    this.#filter = compileItemFilter(o.items);
    this.#critical = new Set(o.criticalTypes ?? []);
    this.#classes = new DeviceClassifier(o.deviceClasses);
    this.#fetch = o.fetch ?? fetch;
    this.#now = o.now ?? Date.now;
    this.#stream = { connected: false, since: this.#now(), lastTrafficAt: null, error: null };
    // one try per post: the lanes own retries and backoff
    const common = {
      baseUrl: o.joiUrl,
      maxRetries: 0,
      timeoutMs: 10_000,
      fetch: this.#fetch,
      now: this.#now,
      log: o.log,
    };
    this.#client = o.signingKey
      ? new SignedClient({
        ...common,
        key: o.signingKey,
        direction: "openhab_to_joi",
        toleranceMs: o.toleranceMs,
      })
      : new JsonClient(common);
  }

  /** joi's clock minus ours from its last signed answer (`{offset_ms, rtt_ms, measured_at}`), or null. */
  joiClock(): ReturnType<SignedClient["clock"]["health"]> {
    return this.#client instanceof SignedClient ? this.#client.clock.health() : null;
  }

  /** Logs joi's clock offset when first measured and when it moved by a second or more. */
  #noteClock(): void {
    const c = this.joiClock();
    if (c === null) return;
    if (this.#loggedOffset === undefined || Math.abs(c.offset_ms - this.#loggedOffset) >= 1000) {
      this.#loggedOffset = c.offset_ms;
      this.#o.log.info("relay_joi_clock", { offset_ms: c.offset_ms, rtt_ms: c.rtt_ms });
    }
  }

  /** openHAB's event stream as the relay sees it. */
  streamState(): StreamState {
    return { ...this.#stream };
  }

  #streamUp(up: boolean, error: string | null): void {
    if (this.#stream.connected !== up) this.#stream.since = this.#now();
    this.#stream.connected = up;
    this.#stream.error = error;
  }

  /** Decides whether a bus event is forwarded (topic kind, action, item filter). */
  admits(topic: string): boolean {
    const s = topic.split("/");
    const [root, kind, first, second] = s;
    const action = s.at(-1);
    // four segments at least: openhab/<kind>/<name>/<action>
    if (root !== "openhab" || first === undefined || second === undefined) return false;
    if (action === undefined) return false;
    if (!FORWARD.has(action) && !(this.#o.forwardUpdates && UPDATES.has(action))) return false;
    if (kind === "items") {
      const names = s.length === 5 ? [first, second] : [first];
      return names.every((n) => this.#filter.admits(n));
    }
    return kind === "things" || kind === "channels";
  }

  /**
   * True for an item event of a critical device class, read exactly as joi's
   * ingest reads it (`DeviceClassifier.itemClasses` on the cleaned names,
   * with the payload's value type): the item's class, or its group's.
   */
  isCritical(topic: string, valueType?: string): boolean {
    const s = topic.split("/");
    if (s[1] !== "items" || this.#critical.size === 0) return false;
    const item = s.length === 5 ? s[3] : s[2];
    if (!item) return false;
    const group = s.length === 5 && s[2] ? cleanIdentifier(s[2]) : undefined;
    const c = this.#classes.itemClasses(cleanIdentifier(item), group, valueType);
    return this.#critical.has(c.deviceType) ||
      (c.groupType !== undefined && this.#critical.has(c.groupType));
  }

  /**
   * Accepts one SSE `message` data line (a JSON `{topic, payload, type}`);
   * `resync` marks a state the relay read itself (it passes the topic filter).
   */
  accept(data: string, o: { resync?: boolean } = {}): void {
    this.stats.received++;
    let ev: { topic?: unknown; payload?: unknown; type?: unknown };
    try {
      ev = JSON.parse(data);
    } catch {
      this.#o.log.warn("relay_bad_event", { reason: "data is not JSON", bytes: data.length });
      return;
    }
    if (
      typeof ev.topic !== "string" || typeof ev.payload !== "string" || typeof ev.type !== "string"
    ) {
      this.#o.log.warn("relay_bad_event", {
        reason: "not {topic, payload, type}",
        ...(topicItem(ev.topic) ? { item: topicItem(ev.topic) } : {}),
      });
      return;
    }
    if (!o.resync && !this.admits(ev.topic)) {
      this.stats.filtered++;
      return;
    }
    const out: RelayedEvent = {
      topic: ev.topic,
      payload: ev.payload,
      type: ev.type,
      received_at: this.#now(),
      id: crypto.randomUUID(),
    };
    const item = topicItem(ev.topic) ?? "(unknown)";
    const bytes = encoder.encode(JSON.stringify(out)).length;
    if (bytes > this.#o.maxEventBytes) {
      this.stats.filtered++;
      this.stats.skipped++;
      this.#o.log.warn("relay_event_too_large", {
        item,
        topic: ev.topic.slice(0, 200),
        bytes,
        limit: this.#o.maxEventBytes,
      });
      return;
    }
    const p: Pending = { ev: out, item, bytes, attempts: 0, alone: false };
    const valueType = ev.topic.startsWith("openhab/items/") ? payloadType(ev.payload) : undefined;
    if (this.isCritical(ev.topic, valueType)) {
      // on disk before anything else: a relay killed now still posts it when it starts
      this.#o.record?.put({ ev: out, item });
      this.#urgentPush(p);
      return;
    }
    this.#ordinary.push(p);
    const max = this.#o.bufferMax ?? 10_000;
    if (this.#ordinary.length > max) {
      const gone = this.#ordinary.splice(0, this.#ordinary.length - max);
      this.stats.dropped += gone.length;
      this.#o.log.warn("relay_buffer_full", {
        dropped: gone.length,
        items: [...new Set(gone.map((g) => g.item))].slice(0, 20),
      });
    }
    this.stats.buffered = this.#ordinary.length;
    // while joi asked for a pause, new events wait for it: they never cut it short
    if (this.#now() >= this.#notBefore) this.#ordinaryWaker.wake();
  }

  /**
   * Queues a critical event. Memory stays bounded even when a broken (or
   * pwned) detector floods: one device holds at most
   * {@link MAX_PENDING_PER_DEVICE} waiting events, its oldest give way (joi's
   * flood guard would suppress such a device anyway); no other device's alarm
   * is ever dropped for it.
   */
  #urgentPush(p: Pending): void {
    const same = this.#urgent.filter((q) => q.ev.topic === p.ev.topic);
    if (same.length >= MAX_PENDING_PER_DEVICE) {
      const oldest = same[0]!;
      this.#urgent.splice(this.#urgent.indexOf(oldest), 1);
      this.#o.record?.remove(oldest.ev.id);
      this.stats.dropped++;
      this.#o.log.warn("relay_critical_flood", {
        item: p.item,
        waiting: same.length,
        reason: "this device reports faster than joi takes its events; its oldest gives way",
      });
    }
    this.#urgent.push(p);
    this.stats.criticalPending = this.#urgent.length;
    this.#criticalWaker.wake();
  }

  /**
   * Reads the current state of every critical item and sends each through
   * the critical lane as an `ItemStateEvent`, so an alarm that began while the
   * relay was down or the stream was broken still reaches joi; joi drops a
   * report of the state it already knows. Two bounded reads: the item list
   * without states (`GET /rest/items?fields=name,type,groupNames`: an image
   * item's state would be megabytes), then each critical item's state
   * (`GET /rest/items/<name>/state`). Called at each (re)connect; a failure
   * is logged and retried at the next one.
   */
  async #resync(signal: AbortSignal): Promise<void> {
    const get = async (path: string, params: Record<string, string>, max: number) => {
      const url = new URL(path, this.#o.openhabUrl);
      for (const [k, v] of Object.entries(params)) url.searchParams.set(k, v);
      const res = await this.#fetch(url, {
        headers: { authorization: `Bearer ${this.#o.token}` },
        signal: AbortSignal.any([signal, AbortSignal.timeout(10_000)]),
      });
      if (!res.ok) {
        await res.body?.cancel();
        throw new Error(`openHAB answered ${res.status} to GET ${url.pathname}`);
      }
      const bytes = await readCapped(res.body, max, signal);
      if (bytes === undefined) throw new Error(`GET ${url.pathname}: more than ${max} bytes`);
      return new TextDecoder().decode(bytes);
    };
    let sent = 0;
    try {
      const list = JSON.parse(
        await get("/rest/items", { recursive: "false", fields: "name,type,groupNames" }, 4 << 20),
      );
      if (!Array.isArray(list)) throw new Error("GET /rest/items: not a list of items");
      for (
        const c of resyncCandidates(
          list,
          (n) => this.#filter.admits(n),
          (t, v) => this.isCritical(t, v),
        )
      ) {
        const state = (await get(`/rest/items/${encodeURIComponent(c.name)}/state`, {}, 4096))
          .trim();
        if (state === "" || state === "NULL" || state === "UNDEF") continue;
        this.accept(
          JSON.stringify({
            topic: c.topic,
            payload: JSON.stringify({ type: c.valueType, value: state }),
            type: "ItemStateEvent",
          }),
          { resync: true },
        );
        sent++;
      }
    } catch (e) {
      if (!this.#stopped && !signal.aborted) {
        this.#o.log.warn("relay_resync_failed", { error: (e as Error).message, sent });
      }
      return;
    }
    if (sent) this.#o.log.info("relay_resynced", { critical_items: sent });
  }

  /** An over-long SSE line or event was skipped: say which item it was, when known. */
  #skipped(s: SseSkip): void {
    this.stats.skipped++;
    this.#o.log.warn("relay_event_skipped", {
      reason: s.what === "line" ? "SSE line too long" : "SSE event too long",
      bytes: s.bytes,
      limit: s.limit,
      ...(s.topic ? { topic: s.topic.slice(0, 200), item: topicItem(s.topic) } : {}),
    });
  }

  /** Runs the stream and both lanes until {@link stop}. */
  async run(): Promise<void> {
    // alarms a previous run received and joi had not taken: first in line
    const left = this.#o.record?.all() ?? [];
    for (const { ev, item } of left) {
      const bytes = encoder.encode(JSON.stringify(ev)).length;
      this.#urgent.push({ ev, item, bytes, attempts: 0, alone: false });
    }
    if (left.length) {
      this.stats.criticalPending = this.#urgent.length;
      this.#o.log.warn("relay_critical_resumed", {
        events: left.length,
        items: [...new Set(left.map((l) => l.item))].slice(0, 20),
      });
    }
    await Promise.all([this.#streamLoop(), this.#criticalLoop(), this.#ordinaryLoop()]);
  }

  /** Stops the stream and both lanes. */
  stop(): void {
    this.#stopped = true;
    this.#abort?.abort();
    this.#ordinaryWaker.wake();
    this.#criticalWaker.wake();
  }

  async #streamLoop(): Promise<void> {
    const min = this.#o.backoffMinMs ?? 500;
    const max = this.#o.backoffMaxMs ?? 30_000;
    const keepAlive = this.#o.keepAliveMs ?? 10_000;
    let backoff = min;
    const url = new URL("/rest/events", this.#o.openhabUrl);
    url.searchParams.set("topics", "openhab/items/*,openhab/things/*,openhab/channels/*");
    while (!this.#stopped) {
      const abort = new AbortController();
      this.#abort = abort;
      let watchdog: ReturnType<typeof setTimeout> | undefined;
      const arm = () => {
        clearTimeout(watchdog);
        watchdog = setTimeout(() => {
          this.stats.watchdogReconnects++;
          this.#o.log.warn("relay_stream_silent", { after_ms: 3 * keepAlive });
          abort.abort();
        }, 3 * keepAlive);
      };
      try {
        arm();
        const res = await this.#fetch(url, {
          headers: { accept: "text/event-stream", authorization: `Bearer ${this.#o.token}` },
          signal: abort.signal,
        });
        if (!res.ok || !res.body) {
          await res.body?.cancel();
          throw new Error(
            `openHAB answered ${res.status} to the event stream` +
              (res.status === 401 ? " (check the API token file)" : ""),
          );
        }
        this.stats.connections++;
        this.#streamUp(true, null);
        this.#o.log.info("relay_connected", { connections: this.stats.connections });
        backoff = min;
        // openHAB does not replay what it sent while we were away: read the critical
        // items' states now that the stream is up (so nothing falls between the two)
        void this.#resync(abort.signal);
        const events = parseSse(res.body, {
          maxLineBytes: this.#o.maxLineBytes ?? 65_536,
          onSkip: (s) => {
            arm(); // a skipped line is traffic too
            this.#stream.lastTrafficAt = this.#now();
            this.#skipped(s);
          },
        });
        for await (const ev of events) {
          // an aborted fetch may still yield what it had buffered: stop reading (the
          // generator's return cancels the body)
          if (abort.signal.aborted) break;
          arm();
          this.#stream.lastTrafficAt = this.#now();
          if (ev.event === "message") this.accept(ev.data);
        }
        if (!this.#stopped) this.#o.log.warn("relay_stream_ended", {});
        this.#streamUp(false, "openHAB ended the event stream");
      } catch (e) {
        this.#streamUp(
          false,
          abort.signal.aborted
            ? "openHAB's event stream went silent (no keep-alive)"
            : (e as Error).message.slice(0, 200),
        );
        if (!this.#stopped && !abort.signal.aborted) {
          this.#o.log.warn("relay_stream_failed", {
            error: (e as Error).message,
            retry_ms: backoff,
          });
        }
      } finally {
        clearTimeout(watchdog);
      }
      if (this.#stopped) return;
      await new Promise((r) => setTimeout(r, backoff));
      backoff = Math.min(max, backoff * 2);
    }
  }

  /** The critical lane: each event on its own, at once, retried until joi has it. */
  async #criticalLoop(): Promise<void> {
    const min = Math.min(this.#o.backoffMinMs ?? 500, 100);
    const max = this.#o.criticalBackoffMaxMs ?? 1_000;
    let backoff = min;
    while (!this.#stopped) {
      const p = this.#urgent[0];
      if (!p) {
        await this.#criticalWaker.sleep(60_000);
        continue;
      }
      const out = await this.#post([p]);
      if (this.#settle([p], out, this.#urgent) === "progress") {
        this.stats.criticalPending = this.#urgent.length;
        backoff = min;
        continue;
      }
      this.stats.criticalPending = this.#urgent.length;
      await this.#criticalWaker.sleep(backoff);
      backoff = Math.min(max, backoff * 2);
    }
  }

  /** The ordinary lane: batches, honouring joi's Retry-After with a real backoff. */
  async #ordinaryLoop(): Promise<void> {
    const min = this.#o.backoffMinMs ?? 500;
    const max = this.#o.backoffMaxMs ?? 30_000;
    let backoff = min;
    while (!this.#stopped) {
      const wait = this.#notBefore - this.#now();
      if (wait > 0) {
        // an arriving event may wake this sleep; the gate still holds until notBefore
        await this.#ordinaryWaker.sleep(wait);
        continue;
      }
      if (this.#ordinary.length === 0) {
        await this.#ordinaryWaker.sleep(60_000);
        continue;
      }
      const batch = this.#nextBatch();
      const out = await this.#post(batch);
      const result = this.#settle(batch, out, this.#ordinary);
      this.stats.buffered = this.#ordinary.length;
      // joi's Retry-After (whole request or per event) holds even when others got through
      const asked = out.kind === "retry"
        ? out.retryAfterMs ?? 0
        : out.kind === "verdicts"
        ? Math.max(0, ...[...out.refused.values()].map((r) => (r.retry_after ?? 0) * 1000))
        : 0;
      if (result === "progress" && asked === 0) {
        backoff = min;
        continue;
      }
      const pause = result === "progress" ? asked : Math.max(backoff, asked);
      this.#notBefore = this.#now() + pause;
      if (asked > 0) {
        this.#o.log.info("relay_backing_off", { ms: pause, reason: "joi asked to retry later" });
      }
      if (result !== "progress") backoff = Math.min(max, backoff * 2);
    }
  }

  /** The next ordinary batch: in order, at most `maxBatch` events and `maxBodyBytes` bytes. */
  #nextBatch(): Pending[] {
    const first = this.#ordinary[0]!;
    if (first.alone) return [first];
    const room = (this.#o.maxBodyBytes ?? 65_536) - ENVELOPE_BYTES;
    const batch: Pending[] = [];
    let bytes = 0;
    for (const p of this.#ordinary) {
      if (batch.length >= this.#o.maxBatch || p.alone) break;
      if (batch.length > 0 && bytes + p.bytes + 1 > room) break;
      batch.push(p);
      bytes += p.bytes + 1;
    }
    return batch;
  }

  /**
   * Applies joi's answer to `sent` (taken from `queue`): removes exactly the
   * events joi has or refused for good. Returns `progress` when something
   * left the queue, `stalled` when everything must be tried again later.
   */
  #settle(sent: Pending[], out: PostOutcome, queue: Pending[]): "progress" | "stalled" {
    const done = new Set<Pending>();
    if (out.kind === "verdicts") {
      sent.forEach((p, i) => {
        if (out.accepted.has(i)) {
          done.add(p);
          return;
        }
        const r = out.refused.get(i);
        if (!r) return; // neither accepted nor refused: send again
        if (isRetryable(r.code) && (r.code === "rate_limited" || ++p.attempts < MAX_ATTEMPTS)) {
          return;
        }
        done.add(p);
        this.#refused(p, r.code, r.reason);
      });
      const forwarded = sent.filter((_, i) => out.accepted.has(i)).length;
      this.stats.forwarded += forwarded;
      if (queue === this.#urgent) {
        this.stats.criticalForwarded += forwarded;
        // alarms are rare: each one joi took is worth a line (with how long it took)
        sent.forEach((p, i) => {
          if (!out.accepted.has(i)) return;
          this.#o.log.info("relay_critical_forwarded", {
            item: p.item,
            ms: this.#now() - p.ev.received_at,
          });
        });
      }
    } else if (out.kind === "refused_whole") {
      if (sent.length === 1) {
        done.add(sent[0]!);
        this.#refused(sent[0]!, out.code, out.message);
      } else {
        // one of them (or the envelope) is bad: try each on its own
        for (const p of sent) p.alone = true;
        this.#o.log.warn("relay_batch_split", { status: out.status, events: sent.length });
        return "progress";
      }
    } else {
      this.stats.postFailures++;
      if (out.status === 401 || out.status === 403) {
        // a key or address an operator must fix: nothing is dropped meanwhile
        this.#o.log.error("relay_batch_refused", {
          status: out.status,
          error: out.error,
          events: sent.length,
          retrying: true,
          fix: out.status === 401
            ? "install the same openhab_to_joi.key on the relay and joi; check both clocks"
            : "list this host in joi's policy ingest.allowed_sources",
        });
        return "stalled";
      }
      this.#o.log.warn("relay_joi_unreachable", {
        status: out.status,
        error: out.error,
        events: sent.length,
        lane: queue === this.#urgent ? "critical" : "ordinary",
        waiting: queue.length,
      });
      return "stalled";
    }
    if (done.size === 0) return "stalled";
    if (queue === this.#urgent) { for (const p of done) this.#o.record?.remove(p.ev.id); }
    const keep = queue.filter((p) => !done.has(p));
    queue.splice(0, queue.length, ...keep);
    return "progress";
  }

  #refused(p: Pending, code: string, reason: string): void {
    this.stats.refused++;
    this.#o.log.error("relay_event_refused", {
      item: p.item,
      topic: p.ev.topic.slice(0, 200),
      code,
      reason: reason.slice(0, 300),
    });
  }

  /**
   * Posts `events` as one batch; reads joi's per-event answer. Never throws.
   * With the key, the answer counts only once verified (signed by joi, bound
   * to this post): a forged "accepted" cannot make the relay drop events.
   */
  async #post(events: Pending[]): Promise<PostOutcome> {
    const body = {
      event_id: crypto.randomUUID(),
      event_type: "openhab_events",
      timestamp: this.#now(),
      source: this.#o.source,
      events: events.map((p) => p.ev),
    };
    let answer: WireResponse;
    try {
      answer = await this.#client.request("POST", EVENTS_PATH, body);
      this.#noteClock();
    } catch (e) {
      const w = e instanceof WireClientError ? e : undefined;
      if (w?.kind === "unverified") {
        this.#o.log.warn("relay_answer_refused", { error: w.message.slice(0, 300) });
      }
      if (
        w?.kind === "bad_answer" && w.status !== undefined && w.status >= 400 && w.status < 500 &&
        ![401, 403, 408, 409, 429].includes(w.status)
      ) {
        return {
          kind: "refused_whole",
          status: w.status,
          code: `http_${w.status}`,
          message: w.message,
        };
      }
      return { kind: "retry", status: w?.status ?? 0, error: (e as Error).message };
    }
    const res = { status: answer.status };
    const env = answer.envelope;
    const err = env.status === "error" ? env.error : undefined;
    const json = env.status === "ok" ? { data: env.data } : undefined;
    const code = err?.code ?? `http_${res.status}`;
    const message = err?.message ?? `HTTP ${res.status}`;
    if (res.status >= 200 && res.status < 300) {
      const data = (json?.data ?? {}) as { accepted?: unknown; refused?: unknown };
      if (!Array.isArray(data.accepted)) {
        // an answer without verdicts (an older joi): it took the whole batch
        return {
          kind: "verdicts",
          accepted: new Set(events.map((_, i) => i)),
          refused: new Map(),
        };
      }
      const refused = new Map<number, RefusedEvent>();
      if (Array.isArray(data.refused)) {
        for (const r of data.refused as RefusedEvent[]) {
          if (typeof r?.index === "number") refused.set(r.index, r);
        }
      }
      return {
        kind: "verdicts",
        accepted: new Set(
          (data.accepted as unknown[]).filter((i) => typeof i === "number") as number[],
        ),
        refused,
      };
    }
    const retryAfterS = err?.retry_after;
    const retryAfterMs = retryAfterS !== undefined ? retryAfterS * 1000 : undefined;
    // 5xx, 429, a timeout, an auth or source problem an operator fixes, a nonce
    // collision: the events are fine, later tries may succeed
    const retry = res.status >= 500 || [401, 403, 408, 409, 429].includes(res.status);
    if (retry) {
      return {
        kind: "retry",
        status: res.status,
        error: `joi answered ${res.status} ${code}: ${message.slice(0, 200)}`,
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      };
    }
    return { kind: "refused_whole", status: res.status, code, message };
  }
}

/** openHAB item types -> the value type their state has on the event bus. */
const VALUE_TYPES: Record<string, string> = {
  Switch: "OnOff",
  Contact: "OpenClosed",
  Number: "Decimal",
  Dimmer: "Percent",
  Rollershutter: "Percent",
  String: "String",
  DateTime: "DateTime",
  Color: "HSB",
  Location: "Point",
};

/** A critical item to read back at (re)connect: its name, the topic to report it on, its value type. */
export interface ResyncCandidate {
  name: string;
  topic: string;
  valueType: string;
}

/**
 * The critical items of a `GET /rest/items` list: those whose own name, or a
 * group's, tells a critical class (reported through that group then), minus
 * groups, types without a bus value and items the filter refuses.
 */
export function resyncCandidates(
  items: readonly unknown[],
  admits: (name: string) => boolean,
  isCritical: (topic: string, valueType: string) => boolean,
): ResyncCandidate[] {
  const out: ResyncCandidate[] = [];
  for (const raw of items) {
    const it = raw as { name?: unknown; type?: unknown; groupNames?: unknown };
    if (typeof it.name !== "string" || typeof it.type !== "string") continue;
    if (it.type.startsWith("Group") || !admits(it.name)) continue;
    const valueType = it.type.startsWith("Number:") ? "Quantity" : VALUE_TYPES[it.type];
    if (valueType === undefined) continue;
    const own = `openhab/items/${it.name}/state`;
    const groups = Array.isArray(it.groupNames)
      ? it.groupNames.filter((g): g is string => typeof g === "string" && admits(g))
      : [];
    const topic = isCritical(own, valueType)
      ? own
      : groups.map((g) => `openhab/items/${g}/${it.name}/state`).find((t) =>
        isCritical(t, valueType)
      );
    if (topic !== undefined) out.push({ name: it.name, topic, valueType });
  }
  return out;
}

/** The value type of an item event's payload (`{"type":"OnOff",...}`), if it names one. */
function payloadType(payload: string): string | undefined {
  try {
    const p: unknown = JSON.parse(payload);
    const t = (p as { type?: unknown } | null)?.type;
    return typeof t === "string" ? t : undefined;
  } catch {
    return undefined; // joi refuses it and says why; the class comes from the names alone
  }
}
