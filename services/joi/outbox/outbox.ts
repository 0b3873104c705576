/**
 * The one way out to the mesh. Every outgoing message (critical alerts,
 * replies, proactive chatter) is checked against the outbound content rules,
 * committed to the durable queue, and sent by {@link Outbox.pump}:
 *
 * - two lanes: critical alerts are sent by their own loop, oldest first, never
 *   waiting behind an ordinary message in flight (a slow signal-cli reply to
 *   the family cannot hold an alarm back); ordinary messages oldest first;
 * - outbound rate limits per contracts.md (class by channel and kind), and the
 *   circuit breaker; event-triggered critical alerts bypass both, since a real
 *   alarm is never blocked;
 * - retry with exponential backoff (policy `outbox.retry`), honouring the
 *   mesh's `retry_after`;
 * - staleness on delivery: a critical alert is always delivered, marked as
 *   delayed with its original time; a non-critical message older than its TTL
 *   is dropped and logged.
 *
 * @module
 */
import type { DatabaseSync } from "node:sqlite";
import type { Logger } from "../../common/log.ts";
import { RateLimiter } from "../../common/rate_limit.ts";
import { CircuitBreaker } from "../../common/circuit_breaker.ts";
import { ContentRules } from "../guard/content_rules.ts";
import type { Policy } from "../../common/policy/policy.ts";
import type { LocalTime } from "../../common/local_time.ts";
import { delayedPrefix } from "../guard/templates.ts";
import { meshBody, type OutboundMessage, type QueuedMessage } from "./message.ts";
import {
  type HouseholdRoles,
  isPrivateChannel,
  recipientOfChannel,
} from "../../common/policy/household.ts";
import { OutboxStore } from "./store.ts";
import type { MeshTransport } from "./mesh_transport.ts";

/** The policy figures the outbox uses (policy.yaml keys). */
export type OutboxPolicy = Pick<Policy, "rate_limits" | "content" | "outbox">;

/** Options of {@link Outbox}. */
export interface OutboxOptions {
  db: DatabaseSync;
  policy: OutboxPolicy;
  transport: MeshTransport;
  log: Logger;
  /** The household: the owner (groups are addressed through them) and the owner's DM. */
  roles: HouseholdRoles;
  /** The household's clock (policy `household.timezone`), for the delayed marker. */
  time: LocalTime;
  /** Clock (ms). */
  now?: () => number;
  /** A critical alert sent this much after it was raised is marked delayed (default 60 s). */
  delayedAfterMs?: number;
}

/** Result of {@link Outbox.enqueue}. */
export type EnqueueResult =
  | { accepted: true; id: number; deliveryId: string }
  | { accepted: false; rule: string; message: string };

/** Rate class of a message; null when it bypasses limits and breaker. */
export function rateClass(
  m: Pick<QueuedMessage, "kind" | "channel">,
  roles: Pick<HouseholdRoles, "ownerDm">,
): "owner_dm" | "other_dm" | "regular_group" | "critical_escalated" | null {
  if (m.kind === "event_critical") return null;
  if (m.kind === "escalated") return "critical_escalated";
  if (m.channel === roles.ownerDm) return "owner_dm";
  if (isPrivateChannel(m.channel)) return "other_dm";
  return "regular_group";
}

/** The durable outbox. */
export class Outbox {
  readonly store: OutboxStore;
  readonly breaker: CircuitBreaker;
  #p: OutboxPolicy;
  #rules: ContentRules;
  #limiters: Record<keyof OutboxPolicy["rate_limits"]["outbound"], RateLimiter>;
  #transport: MeshTransport;
  #log: Logger;
  #now: () => number;
  #roles: HouseholdRoles;
  #time: LocalTime;
  #delayedAfter: number;
  /** One sending loop per priority: each runs alone, the two run side by side. */
  #lanes = {
    critical: { pumping: null as Promise<number> | null, again: false },
    normal: { pumping: null as Promise<number> | null, again: false },
  };
  #lastMeshContact: number | null = null;
  #listeners = new Set<(m: QueuedMessage) => void>();

  constructor(o: OutboxOptions) {
    this.store = new OutboxStore(o.db);
    this.#p = o.policy;
    this.#rules = new ContentRules(o.policy.content);
    this.#now = o.now ?? Date.now;
    const out = o.policy.rate_limits.outbound;
    this.#limiters = {
      owner_dm: new RateLimiter(out.owner_dm, { now: this.#now }),
      other_dm: new RateLimiter(out.other_dm, { now: this.#now }),
      regular_group: new RateLimiter(out.regular_group, { now: this.#now }),
      critical_escalated: new RateLimiter(out.critical_escalated, { now: this.#now }),
    };
    this.breaker = new CircuitBreaker({
      failures: o.policy.outbox.circuit_breaker.failures,
      openSeconds: o.policy.outbox.circuit_breaker.open_seconds,
      now: this.#now,
      onStateChange: (from, to) => this.#log.warn("mesh_breaker", { from, to }),
    });
    this.#transport = o.transport;
    this.#log = o.log;
    this.#roles = o.roles;
    this.#time = o.time;
    this.#delayedAfter = o.delayedAfterMs ?? 60_000;
  }

  /** Called after each successful send (tests, health). */
  onSent(fn: (m: QueuedMessage) => void): () => void {
    this.#listeners.add(fn);
    return () => this.#listeners.delete(fn);
  }

  /** Last time the mesh answered anything (ms), for /health. */
  get lastMeshContact(): number | null {
    return this.#lastMeshContact;
  }

  #ttl(m: OutboundMessage): number | null {
    if (m.priority === "critical") return null;
    if (m.ttlMs !== undefined) return m.ttlMs;
    const t = this.#p.outbox.ttl_minutes;
    return (m.kind === "proactive" ? t.proactive : t.normal) * 60_000;
  }

  /**
   * Checks and commits one message. Synchronous: when it returns `accepted`,
   * the message is on disk. Call {@link kick} afterwards to send it now.
   */
  enqueue(m: OutboundMessage): EnqueueResult {
    const verdict = this.#rules.check(m.text, {
      proactive: m.kind === "proactive",
      template: m.template === true,
    });
    if (!verdict.ok) {
      this.#log.security("outbound_refused", {
        rule: verdict.rule,
        reason: verdict.message,
        channel: m.channel,
        kind: m.kind,
        chars: m.text.length,
      });
      return { accepted: false, rule: verdict.rule, message: verdict.message };
    }
    const now = this.#now();
    const { id, deliveryId } = this.store.insert(
      {
        channel: m.channel,
        recipient: m.recipient ?? recipientOfChannel(m.channel) ?? this.#roles.owner,
        text: verdict.text,
        priority: m.priority,
        kind: m.kind,
        createdAt: m.createdAt ?? now,
        ttlMs: this.#ttl(m),
        template: m.template === true,
        replyTo: m.replyTo ?? null,
        conversationId: m.conversationId ?? null,
        voiceResponse: m.voiceResponse === true,
      },
      now,
      m.notBefore,
    );
    return { accepted: true, id, deliveryId };
  }

  /** Starts a pump in the background (coalescing concurrent kicks). */
  kick(): void {
    this.pump().catch((e) => this.#log.error("outbox_pump_failed", { error: String(e) }));
  }

  /**
   * Sends what is due in both lanes; resolves to the number sent. Concurrent
   * calls share each lane's run.
   */
  async pump(): Promise<number> {
    const [critical, normal] = await Promise.all([
      this.#pumpLane("critical"),
      this.#pumpLane("normal"),
    ]);
    return critical + normal;
  }

  #pumpLane(priority: "critical" | "normal"): Promise<number> {
    const lane = this.#lanes[priority];
    if (lane.pumping) {
      lane.again = true;
      return lane.pumping;
    }
    lane.pumping = (async () => {
      let sent = 0;
      try {
        do {
          lane.again = false;
          sent += await this.#drain(priority);
        } while (lane.again);
      } finally {
        lane.pumping = null;
      }
      return sent;
    })();
    return lane.pumping;
  }

  #backoff(attempts: number, retryAfterMs?: number): number {
    const r = this.#p.outbox.retry;
    const exp = Math.min(r.max_seconds * 1000, r.initial_seconds * 1000 * 2 ** (attempts - 1));
    return Math.max(exp, retryAfterMs ?? 0);
  }

  async #drain(priority: "critical" | "normal"): Promise<number> {
    let sent = 0;
    for (;;) {
      const now = this.#now();
      const batch = this.store.due(now, 32, priority);
      if (batch.length === 0) return sent;
      let progressed = false;
      for (const m of batch) {
        const r = await this.#one(m);
        if (r === "sent") sent++;
        if (r !== "deferred") progressed = true;
      }
      if (!progressed) return sent;
    }
  }

  async #one(m: QueuedMessage): Promise<"sent" | "deferred" | "retry" | "final"> {
    const now = this.#now();
    const age = now - m.createdAt;
    if (m.priority !== "critical" && m.ttlMs !== null && age > m.ttlMs) {
      this.store.finish(
        m.id,
        "dropped",
        `stale: ${Math.round(age / 1000)} s old, ttl ${m.ttlMs / 1000} s`,
      );
      this.#log.info("outbound_dropped_stale", {
        id: m.id,
        kind: m.kind,
        channel: m.channel,
        age_seconds: Math.round(age / 1000),
      });
      return "final";
    }
    const cls = rateClass(m, this.#roles);
    if (cls !== null) {
      const key = cls === "owner_dm" ? m.conversationId ?? m.channel : m.channel;
      const v = this.#limiters[cls].peek(key, now);
      if (!v.allowed) {
        const wait = v.retryAfterSeconds * 1000;
        this.store.reschedule(m.id, m.attempts, now + wait, `rate limited (${v.reason})`);
        this.#log.info("outbound_rate_limited", {
          id: m.id,
          class: cls,
          retry_after: v.retryAfterSeconds,
        });
        return "deferred";
      }
      if (!this.breaker.allow()) {
        const wait = Math.max(1000, this.breaker.retryAfterMs());
        this.store.reschedule(m.id, m.attempts, now + wait, "circuit breaker open");
        return "deferred";
      }
    }
    const delayed = m.priority === "critical" && (age > this.#delayedAfter || m.attempts > 0);
    const text = delayed ? delayedPrefix(m.createdAt, this.#time, now) + m.text : m.text;
    const result = await this.#transport.send(meshBody(m, text), m.deliveryId);
    const after = this.#now();
    if (result.ok) {
      this.#lastMeshContact = after;
      this.store.markSent(m.id, after, delayed);
      if (cls !== null) {
        this.breaker.success();
        const key = cls === "owner_dm" ? m.conversationId ?? m.channel : m.channel;
        this.#limiters[cls].record(key, after);
      } else if (this.breaker.state !== "closed") {
        this.breaker.success(); // a critical alert got through: the mesh is back
      }
      this.#log.info("outbound_sent", {
        id: m.id,
        kind: m.kind,
        channel: m.channel,
        delayed,
        attempts: m.attempts + 1,
      });
      for (const fn of this.#listeners) fn({ ...m, text, status: "sent", sentAt: after });
      return "sent";
    }
    if (!result.error.startsWith("mesh unreachable")) this.#lastMeshContact = after;
    this.breaker.failure();
    const attempts = m.attempts + 1;
    if (!result.retryable) {
      this.store.finish(m.id, "failed", result.error);
      this.#log.security("outbound_refused_by_mesh", {
        id: m.id,
        channel: m.channel,
        error: result.error,
      });
      return "final";
    }
    const wait = this.#backoff(attempts, result.retryAfterMs);
    this.store.reschedule(m.id, attempts, after + wait, result.error);
    this.#log.warn("outbound_retry", { id: m.id, attempts, wait_ms: wait, error: result.error });
    return "retry";
  }
}
