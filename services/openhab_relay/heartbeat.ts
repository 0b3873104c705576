/**
 * The relay's heartbeat: every `watch.heartbeat_seconds` a signed
 * `POST /api/v1/openhab/heartbeat` to joi's ingest (see
 * `common/watch/heartbeat.ts` for the body) with openHAB's reachability as the
 * relay sees it, when the relay started, and since when its posts to joi fail
 * (null while they succeed). joi's house watch raises "the house is silent"
 * when these stop, and tells a stopped relay from a cut link when they
 * resume. It runs on its own timer, beside the event lanes: a backlog of
 * events never delays it.
 *
 * @module
 */
import type { Logger } from "../common/log.ts";
import type { CertReader } from "../common/watch/cert_reader.ts";
import { type Heartbeat, HEARTBEAT_PATH } from "../common/watch/heartbeat.ts";
import type { LinkRequester } from "../common/watch/link_ping.ts";
import type { Relay } from "./relay.ts";

/** Options of {@link HeartbeatLoop}. */
export interface HeartbeatOptions {
  relay: Relay;
  /** Signed (production) or JSON client to joi's ingest, one try per beat. */
  client: LinkRequester;
  /** This openHAB node's name as joi's policy lists it. */
  source: string;
  /** `watch.heartbeat_seconds`, ms. */
  intervalMs: number;
  /** The openHAB VM's Nebula certificate. */
  cert: CertReader;
  /** openHAB's keep-alive (10 s): no traffic for 3 of them is "not answering". */
  keepAliveMs?: number;
  log: Logger;
  now?: () => number;
}

/** The heartbeat loop. */
export class HeartbeatLoop {
  readonly #o: HeartbeatOptions;
  readonly #now: () => number;
  readonly #startedAt: number;
  #failingSince: number | null = null;
  #timer: ReturnType<typeof setInterval> | undefined;
  #beating: Promise<boolean> | null = null;
  /** Beats sent and answered. */
  sent = 0;

  /** Creates the loop (not started). */
  constructor(o: HeartbeatOptions) {
    this.#o = o;
    this.#now = o.now ?? Date.now;
    this.#startedAt = this.#now();
  }

  /** The body of the next beat. */
  body(): Heartbeat {
    const now = this.#now();
    const s = this.#o.relay.streamState();
    const stats = this.#o.relay.stats;
    const quiet = s.lastTrafficAt === null ||
      now - s.lastTrafficAt > 3 * (this.#o.keepAliveMs ?? 10_000);
    const reachable = s.connected && !quiet;
    return {
      source: this.#o.source,
      sent_at: now,
      relay: {
        started_at: this.#startedAt,
        failing_since: this.#failingSince,
        pending_critical: stats.criticalPending,
        buffered: stats.buffered,
      },
      openhab: {
        reachable,
        since: s.since,
        last_traffic_at: s.lastTrafficAt,
        error: reachable ? null : s.error ?? "no event stream from openHAB yet",
      },
      cert: this.#o.cert.facts(),
    };
  }

  /** Sends one beat now (single flight); resolves to whether joi took it. */
  beat(): Promise<boolean> {
    this.#beating ??= this.#beat().finally(() => (this.#beating = null));
    return this.#beating;
  }

  async #beat(): Promise<boolean> {
    const body = this.body();
    let ok = false;
    let error = "";
    try {
      const r = await this.#o.client.request("POST", HEARTBEAT_PATH, body);
      ok = r.status >= 200 && r.status < 300;
      if (!ok) {
        error = r.envelope.status === "error"
          ? `${r.status} ${r.envelope.error.code}: ${r.envelope.error.message}`
          : `HTTP ${r.status}`;
      }
    } catch (e) {
      error = (e as Error).message;
    }
    if (ok) {
      if (this.#failingSince !== null) {
        this.#o.log.info("heartbeat_delivered_again", {
          failing_since: new Date(this.#failingSince).toISOString(),
        });
      }
      this.#failingSince = null;
      this.sent++;
      return true;
    }
    if (this.#failingSince === null) {
      this.#failingSince = body.sent_at;
      this.#o.log.warn("heartbeat_failed", { error: error.slice(0, 300) });
    }
    return false;
  }

  /** Beats now and every interval. */
  start(): void {
    if (this.#timer !== undefined) return;
    void this.beat();
    this.#timer = setInterval(() => void this.beat(), this.#o.intervalMs);
  }

  /** Stops beating. */
  stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
