/**
 * Delivers the durable queue to joi, strictly in order: the oldest message
 * is retried (with backoff) until joi answers it, and only then is the next
 * one sent. Each try is signed afresh (mesh->joi key) and carries the
 * validated headers and the mesh's `X-Config-Hash`.
 *
 * Before delivery a message is checked against the identities in force: a
 * sender revoked while the message waited is dropped (security log).
 *
 * Once joi has a message, the mesh remembers where it came from (so joi's
 * answer can quote it), sends a read receipt for a DM and, when joi will
 * answer (`will_respond`), shows the typing indicator until it does.
 *
 * joi's answer decides: 2xx -> delivered; 5xx, network error, 401 (a key
 * problem an operator must fix), 409 -> retry later, nothing lost; 429 ->
 * wait `retry_after`; 403 -> re-sync identities (joi may know of a
 * revocation) then drop if the sender is gone, else drop as refused; other
 * 4xx -> dropped and logged (joi will never accept it; it must not block the
 * queue).
 *
 * @module
 */
import type { Logger } from "../common/log.ts";
import type { ConfigSync } from "./config_sync.ts";
import type { IdentityStore } from "./identity.ts";
import type { JoiClient } from "./joi_client.ts";
import type { Presence } from "./presence.ts";
import type { MeshStore, QueuedMessage } from "./queue.ts";

/** The inbound path on joi. */
export const INBOUND_PATH = "/api/v1/message/inbound";

/** Options of {@link Forwarder}. */
export interface ForwarderOptions {
  store: MeshStore;
  client: JoiClient;
  identities: IdentityStore;
  sync: ConfigSync;
  log: Logger;
  /** Read receipts and typing indicators. */
  presence?: Presence | undefined;
  initialBackoffMs: number;
  maxBackoffMs: number;
  now?: () => number;
}

/** joi reachability, for `/health`. */
export interface JoiStatus {
  reachable: boolean | null;
  lastContact: number | null;
  lastError: string | null;
  delivered: number;
}

/** The queue -> joi delivery loop. */
export class Forwarder {
  readonly #o: ForwarderOptions;
  readonly #now: () => number;
  #status: JoiStatus = { reachable: null, lastContact: null, lastError: null, delivered: 0 };
  #wake: (() => void) | null = null;
  #abort: (() => void) | null = null;
  #woken = false;
  #stopped = false;
  #loop: Promise<void> | null = null;
  #idle: (() => void)[] = [];

  constructor(options: ForwarderOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** Starts the loop. */
  start(): void {
    if (!this.#loop) this.#loop = this.#run();
  }

  /** Wakes the loop (a message was queued). */
  wake(): void {
    this.#woken = true;
    this.#wake?.();
  }

  /** Stops after the current try. */
  async stop(): Promise<void> {
    this.#stopped = true;
    this.#abort?.();
    await this.#loop;
  }

  /** Resolves when the queue is empty. */
  drained(): Promise<void> {
    if (this.#o.store.depth() === 0) return Promise.resolve();
    return new Promise((r) => this.#idle.push(r));
  }

  /** joi reachability. */
  status(): JoiStatus {
    return { ...this.#status };
  }

  /** Sleeps `ms`; a wakeable sleep ends early on {@link wake}; {@link stop} ends any. */
  #sleep(ms: number, wakeable: boolean): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    if (wakeable && this.#woken) {
      this.#woken = false;
      return Promise.resolve();
    }
    return new Promise((resolve) => {
      let timer: ReturnType<typeof setTimeout> | undefined;
      const finish = () => {
        if (timer !== undefined) clearTimeout(timer);
        this.#wake = null;
        this.#abort = null;
        if (wakeable) this.#woken = false;
        resolve();
      };
      if (ms !== Infinity) timer = setTimeout(finish, ms);
      this.#wake = wakeable ? finish : null;
      this.#abort = finish;
    });
  }

  async #run(): Promise<void> {
    let backoff = this.#o.initialBackoffMs;
    while (!this.#stopped) {
      const msg = this.#o.store.peek();
      if (!msg) {
        for (const r of this.#idle.splice(0)) r();
        await this.#sleep(Infinity, true);
        continue;
      }
      let outcome: "done" | "retry" | { waitMs: number };
      try {
        outcome = await this.#deliver(msg);
      } catch (e) {
        this.#o.log.error("forward_failed", { error: (e as Error).message });
        outcome = "retry";
      }
      if (outcome === "done") {
        this.#o.store.remove(msg.seq);
        backoff = this.#o.initialBackoffMs;
        continue;
      }
      // counted on failure only: a successful delivery costs one write, not two
      this.#o.store.noteAttempt(msg.seq);
      const wait = outcome === "retry" ? backoff : outcome.waitMs;
      if (outcome === "retry") backoff = Math.min(backoff * 2, this.#o.maxBackoffMs);
      await this.#sleep(wait, false);
    }
  }

  /** joi has `msg`: remember it (quotes), then the presence cues. Never throws. */
  #taken(msg: QueuedMessage, willRespond: boolean): void {
    try {
      const body = JSON.parse(msg.body) as {
        sender?: { transport_id?: string };
        conversation?: { type?: string };
        content?: { type?: string };
        timestamp?: string;
      };
      const ts = Date.parse(body.timestamp ?? "");
      const author = body.sender?.transport_id;
      if (!Number.isSafeInteger(ts) || !author) return;
      this.#o.store.delivered(msg.messageId, {
        channel: msg.channel,
        author,
        timestamp: ts,
        voice: body.content?.type === "voice",
      }, this.#now());
      const view = this.#o.identities.current;
      const target = body.conversation?.type === "group"
        ? view.target(msg.channel, "group")
        : view.target(msg.recipientId, "direct");
      if (!target || !this.#o.presence) return;
      this.#o.presence.read(target, ts);
      if (willRespond) this.#o.presence.working(target, msg.messageId);
    } catch (e) {
      this.#o.log.warn("presence_skipped", { error: (e as Error).message });
    }
  }

  async #deliver(msg: QueuedMessage): Promise<"done" | "retry" | { waitMs: number }> {
    const { log, identities } = this.#o;
    if (!identities.current.hasRecipient(msg.recipientId)) {
      log.security("queued_message_dropped_revoked", {
        sender: msg.recipientId,
        channel: msg.channel,
      });
      return "done";
    }
    let r;
    try {
      r = await this.#o.client.request("POST", INBOUND_PATH, JSON.parse(msg.body), {
        "X-Validated-Channel": msg.channel,
        "X-Validated-Sender": msg.recipientId,
        "X-Signal-Sender-Hash": msg.senderHash,
        "X-Config-Hash": identities.current.hash,
      });
    } catch (e) {
      this.#status = {
        ...this.#status,
        reachable: false,
        lastError: (e as Error).message.slice(0, 300),
      };
      log.warn("joi_unreachable", { attempts: msg.attempts + 1, queued: this.#o.store.depth() });
      return "retry";
    }
    this.#status = {
      ...this.#status,
      reachable: r.status < 500,
      lastContact: this.#now(),
      lastError: r.status < 400 ? null : `HTTP ${r.status}`,
    };
    if (r.status >= 200 && r.status < 300) {
      this.#status.delivered++;
      log.info("forwarded", { channel: msg.channel, request_id: r.requestId });
      const data = r.envelope.status === "ok" ? r.envelope.data : undefined;
      this.#taken(msg, (data as { will_respond?: unknown } | undefined)?.will_respond === true);
      return "done";
    }
    const code = r.envelope.status === "error" ? r.envelope.error.code : "unknown";
    if (r.status === 429) {
      const s = r.envelope.status === "error" ? r.envelope.error.retry_after ?? 1 : 1;
      return { waitMs: Math.max(1, s) * 1000 };
    }
    if (r.status >= 500 || r.status === 401 || r.status === 409) {
      log.warn("joi_refused_retry", { status: r.status, code, request_id: r.requestId });
      return "retry";
    }
    if (r.status === 403) {
      await this.#o.sync.sync("joi refused a forwarded message (403)");
      if (!identities.current.hasRecipient(msg.recipientId)) {
        log.security("queued_message_dropped_revoked", {
          sender: msg.recipientId,
          channel: msg.channel,
        });
        return "done";
      }
    }
    log.error("joi_rejected_message_dropped", {
      status: r.status,
      code,
      channel: msg.channel,
      request_id: r.requestId,
    });
    return "done";
  }
}
