/**
 * The openHAB relay: subscribes to openHAB's `/rest/events` stream with an
 * API token, keeps the events joi uses (item state changes, thing status,
 * channel triggers) of items the policy admits, stamps its own receive time,
 * and posts them to joi's `POST /api/v1/openhab/events` in batches.
 *
 * - reconnects with backoff when the stream ends or fails, and when nothing
 *   (not even openHAB's 10 s `alive`) arrived for 3 keep-alive periods;
 * - buffers while joi is unreachable (bounded: the oldest are dropped and
 *   counted), retrying with backoff; a 4xx other than 429 drops the batch
 *   (retrying cannot fix it) and is logged.
 *
 * @module
 */
import { signedHeaders } from "../common/wire/sign.ts";
import type { Logger } from "../common/log.ts";
import { compileItemFilter, type ItemLists } from "../joi/ingest/items.ts";
import { parseSse } from "./sse.ts";

/** One event as forwarded to joi. */
export interface RelayedEvent {
  topic: string;
  payload: string;
  type: string;
  /** When the relay received it (ms). */
  received_at: number;
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
  /** openHAB's keep-alive period (10 s); the watchdog fires after 3 of them. */
  keepAliveMs?: number;
  /** Buffered events at most while joi is unreachable (default 10,000). */
  bufferMax?: number;
  /** Reconnect / repost backoff bounds (ms). */
  backoffMinMs?: number;
  backoffMaxMs?: number;
  /** Forward `state`/`stateupdated` too (default: only changes). */
  forwardUpdates?: boolean;
  log: Logger;
  fetch?: typeof fetch;
  now?: () => number;
  /** The openHAB->joi HMAC key: when set, every post is signed (joi requires it in production). */
  signingKey?: CryptoKey;
}

/** Counters for health and tests. */
export interface RelayStats {
  connections: number;
  watchdogReconnects: number;
  received: number;
  forwarded: number;
  filtered: number;
  dropped: number;
  buffered: number;
  postFailures: number;
}

const FORWARD = new Set(["statechanged", "statuschanged", "triggered"]);
const UPDATES = new Set(["state", "stateupdated"]);
const encoder = new TextEncoder();

/** The relay. `run()` until `stop()`. */
export class Relay {
  readonly stats: RelayStats = {
    connections: 0,
    watchdogReconnects: 0,
    received: 0,
    forwarded: 0,
    filtered: 0,
    dropped: 0,
    buffered: 0,
    postFailures: 0,
  };
  #o: RelayOptions;
  #filter;
  #buffer: RelayedEvent[] = [];
  /** Events ever trimmed from the front of the buffer by overflow. */
  #trimmed = 0;
  #stopped = false;
  #abort: AbortController | null = null;
  #wake: (() => void) | null = null;
  #fetch: typeof fetch;
  #now: () => number;

  constructor(o: RelayOptions) {
    this.#o = o;
    this.#filter = compileItemFilter(o.items);
    this.#fetch = o.fetch ?? fetch;
    this.#now = o.now ?? Date.now;
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

  /** Accepts one SSE `message` data line (a JSON `{topic, payload, type}`). */
  accept(data: string): void {
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
      this.#o.log.warn("relay_bad_event", { reason: "not {topic, payload, type}" });
      return;
    }
    if (!this.admits(ev.topic)) {
      this.stats.filtered++;
      return;
    }
    const out: RelayedEvent = {
      topic: ev.topic,
      payload: ev.payload,
      type: ev.type,
      received_at: this.#now(),
    };
    if (encoder.encode(JSON.stringify(out)).length > this.#o.maxEventBytes) {
      this.stats.filtered++;
      this.#o.log.warn("relay_event_too_large", { topic_kind: ev.topic.split("/")[1] });
      return;
    }
    this.#buffer.push(out);
    const max = this.#o.bufferMax ?? 10_000;
    if (this.#buffer.length > max) {
      const n = this.#buffer.length - max;
      this.#buffer.splice(0, n);
      this.#trimmed += n;
      this.stats.dropped += n;
      this.#o.log.warn("relay_buffer_full", { dropped: n });
    }
    this.stats.buffered = this.#buffer.length;
    this.#wake?.();
  }

  /** Runs the stream and the sender until {@link stop}. */
  async run(): Promise<void> {
    await Promise.all([this.#streamLoop(), this.#sendLoop()]);
  }

  /** Stops both loops. */
  stop(): void {
    this.#stopped = true;
    this.#abort?.abort();
    this.#wake?.();
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#wake = null;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(t);
        this.#wake = null;
        resolve();
      };
    });
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
        this.#o.log.info("relay_connected", { connections: this.stats.connections });
        backoff = min;
        for await (const ev of parseSse(res.body)) {
          arm();
          if (ev.event === "message") this.accept(ev.data);
        }
        if (!this.#stopped) this.#o.log.warn("relay_stream_ended", {});
      } catch (e) {
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

  async #sendLoop(): Promise<void> {
    const min = this.#o.backoffMinMs ?? 500;
    const max = this.#o.backoffMaxMs ?? 30_000;
    let backoff = min;
    const url = new URL("/api/v1/openhab/events", this.#o.joiUrl);
    while (!this.#stopped) {
      if (this.#buffer.length === 0) {
        await this.#sleep(60_000);
        continue;
      }
      const batch = this.#buffer.slice(0, this.#o.maxBatch);
      const trimmedBefore = this.#trimmed;
      const body = JSON.stringify({
        event_id: crypto.randomUUID(),
        event_type: "openhab_events",
        timestamp: this.#now(),
        source: this.#o.source,
        events: batch,
      });
      let status = 0;
      try {
        const raw = encoder.encode(body);
        const headers: Record<string, string> = { "content-type": "application/json" };
        if (this.#o.signingKey) {
          Object.assign(
            headers,
            await signedHeaders({
              key: this.#o.signingKey,
              direction: "openhab_to_joi",
              method: "POST",
              path: url.pathname,
              body: raw,
              timestamp: this.#now(),
            }),
          );
        }
        const res = await this.#fetch(url, {
          method: "POST",
          headers,
          body: raw,
          signal: AbortSignal.timeout(10_000),
        });
        status = res.status;
        await res.body?.cancel();
      } catch (e) {
        this.#o.log.warn("relay_joi_unreachable", {
          error: (e as Error).message,
          buffered: this.#buffer.length,
        });
      }
      // Overflow during the post may have trimmed part of `batch` off the front
      // already: remove only what is left of it, never events not yet sent.
      const settle = () =>
        this.#buffer.splice(0, Math.max(0, batch.length - (this.#trimmed - trimmedBefore)));
      if (status >= 200 && status < 300) {
        settle();
        this.stats.forwarded += batch.length;
        this.stats.buffered = this.#buffer.length;
        backoff = min;
        continue;
      }
      if (status >= 400 && status < 500 && status !== 429 && status !== 408) {
        settle();
        this.stats.dropped += batch.length;
        this.stats.buffered = this.#buffer.length;
        this.#o.log.error("relay_batch_refused", { status, events: batch.length });
        continue;
      }
      this.stats.postFailures++;
      await this.#sleep(backoff);
      backoff = Math.min(max, backoff * 2);
    }
  }
}
