/**
 * joi -> Signal: `POST /api/v1/message/outbound`.
 *
 * The recipient is a canonical id or a channel; the mesh looks the phone
 * number or group id up itself and refuses anything outside the allowlist
 * (security log, nothing sent). Outbound limits (policy.yaml) apply per
 * conversation; an event-triggered critical alert (priority critical, not
 * escalated by joi's judgement) is never limited. Every per-recipient result
 * is read and reported back; identity failures raise a security event.
 *
 * A send that reached nobody for a reason that passes (signal-cli's `-5` rate
 * limit, `-1`/`-3`, every recipient's `NETWORK_FAILURE` or
 * `RATE_LIMIT_FAILURE`) is answered as an error joi retries: 429
 * `rate_limited` with signal-cli's `retryAfterSeconds`, else 500. joi's outbox
 * is durable and owns the retry; the mesh keeps no retry of its own in memory
 * (a restart would lose it) and never tells joi "sent" for a message nobody
 * got. A failure retrying cannot fix (an untrusted identity, an unregistered
 * number) is answered as before: sent, with `outcome: "failed"` and the
 * per-recipient results.
 *
 * An answer (`reply_to`) in a group quotes the message it answers; its
 * sending ends the typing indicator of that message (sent or failed). With
 * `voice_response` and TTS configured, the text goes out at once and the
 * spoken version follows as a voice note.
 *
 * @module
 */
import { z } from "zod";
import type { Logger } from "../common/log.ts";
import { RateLimiter } from "../common/rate_limit.ts";
import type { MeshLimits, MeshSettings } from "./config.ts";
import type { IdentityStore, SendTarget } from "./identity.ts";
import type { Presence } from "./presence.ts";
import type { MeshStore } from "./queue.ts";
import { sendMessage, type SendReport } from "./signal/send.ts";
import type { SignalTransport } from "./signal/transport.ts";

/** The outbound request body (contracts.md). */
export function outboundSchema(maxChars: number) {
  return z.object({
    transport: z.literal("signal").default("signal"),
    recipient: z.object({
      id: z.string().min(1).max(100),
      transport_id: z.string().min(1).max(100).optional(),
    }),
    priority: z.enum(["normal", "critical"]).default("normal"),
    delivery: z.object({
      target: z.enum(["direct", "group"]),
      group_id: z.string().min(1).max(200).optional(),
    }),
    conversation_id: z.string().max(200).optional(),
    content: z.object({
      type: z.literal("text"),
      text: z.string().min(1).max(maxChars),
    }),
    reply_to: z.string().max(200).optional(),
    escalated: z.boolean().default(false),
    voice_response: z.boolean().default(false),
  });
}

/** A parsed outbound request. */
export type OutboundRequest = z.infer<ReturnType<typeof outboundSchema>>;

/** Speaks text for a voice response; resolves to a `data:` URI or null. */
export type Speak = (text: string) => Promise<string | null>;

/** What the handler answers. */
export type OutboundResult =
  | { kind: "refused"; message: string }
  | { kind: "rate_limited"; retryAfterSeconds: number; rule: string }
  | { kind: "unavailable"; message: string }
  | { kind: "undelivered"; message: string; retryAfterSeconds?: number }
  | { kind: "sent"; data: Record<string, unknown> };

/** Per-recipient failures that a later try may not meet. */
const PASSING_FAILURES = new Set(["NETWORK_FAILURE", "RATE_LIMIT_FAILURE"]);

/** signal-cli errors of a send that a later try may not meet (-1 other, -3 I/O, -5 rate limit). */
const PASSING_ERRORS = new Set([-1, -3, -5]);

/**
 * True when a send reached nobody for a reason that passes: every recipient
 * failed with a network or rate-limit failure, or (no results) signal-cli's
 * error was one of {@link PASSING_ERRORS}.
 */
export function undeliveredForNow(report: SendReport): boolean {
  if (report.outcome !== "failed") return false;
  if (report.results.length > 0) return report.results.every((r) => PASSING_FAILURES.has(r.type));
  return report.errorCode !== null && PASSING_ERRORS.has(report.errorCode);
}

/** Options of {@link Outbound}. */
export interface OutboundOptions {
  identities: IdentityStore;
  transport: SignalTransport;
  limits: MeshLimits;
  settings: MeshSettings;
  log: Logger;
  /** Where the messages joi took are remembered (the mesh's store): answers quote them. */
  delivered?: Pick<MeshStore, "deliveredMessage"> | undefined;
  /** Typing indicators (ended by the answer). */
  presence?: Presence | undefined;
  speak?: Speak | undefined;
  now?: (() => number) | undefined;
  /** Waits before a rate-limited retry (tests). */
  sleep?: ((ms: number) => Promise<void>) | undefined;
  /** What was sent, by joi's request id (the mesh's store): repeats and quotes map back. */
  sent?: SentLog | undefined;
}

/** The part of the mesh's store that remembers sent messages. */
export type SentLog = Pick<MeshStore, "rememberSent" | "sentAnswer">;

/** A request id joi may give (`X-Request-ID`): its outbox delivery id. */
const REQUEST_ID = /^[A-Za-z0-9-]{8,64}$/;

type LimitClass = keyof MeshLimits["outbound"] | "unlimited";

/** Outbound sending for joi. */
export class Outbound {
  readonly #o: OutboundOptions;
  readonly #limiters: Record<keyof MeshLimits["outbound"], RateLimiter>;
  readonly #now: () => number;
  /** Voice sends still running; each leaves the set as it ends (none is kept after). */
  readonly #background = new Set<Promise<unknown>>();
  /** Requests being sent now, by request id: a concurrent repeat waits for the first. */
  #inflight = new Map<string, Promise<OutboundResult>>();

  constructor(options: OutboundOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    const l = options.limits.outbound;
    const opt = { now: this.#now };
    this.#limiters = {
      owner_dm: new RateLimiter(l.owner_dm, opt),
      other_dm: new RateLimiter(l.other_dm, opt),
      regular_group: new RateLimiter(l.regular_group, opt),
      critical_escalated: new RateLimiter(l.critical_escalated, opt),
    };
  }

  /** Resolves when background sends started so far are done. */
  async settled(): Promise<void> {
    while (this.#background.size) await Promise.allSettled([...this.#background]);
  }

  /** Voice sends still running (tests wait for it to reach 0). */
  get backgroundSends(): number {
    return this.#background.size;
  }

  /** Runs `send` in the background, forgetting it once it ends. */
  #inBackground(send: Promise<unknown>): void {
    this.#background.add(send);
    const forget = () => this.#background.delete(send);
    send.then(forget, forget);
  }

  /** Which limit applies. */
  limitClass(req: OutboundRequest, target: SendTarget): LimitClass {
    if (req.priority === "critical") return req.escalated ? "critical_escalated" : "unlimited";
    if (target.kind === "group") return "regular_group";
    return target.recipientId === this.#o.settings.owner_recipient ? "owner_dm" : "other_dm";
  }

  /**
   * Handles one validated request. With joi's request id (`X-Request-ID`, its
   * outbox delivery id, stable across its retries) the send is idempotent: a
   * repeat of a request already sent gets the first answer and sends nothing,
   * so an alert is never sent twice because an answer was lost.
   */
  handle(req: OutboundRequest, requestId?: string): Promise<OutboundResult> {
    const id = requestId !== undefined && REQUEST_ID.test(requestId) ? requestId : undefined;
    if (id === undefined) return this.#handle(req, undefined);
    const prior = this.#o.sent?.sentAnswer(id);
    if (prior) {
      this.#o.log.info("outbound_repeat_answered", { request_id: id });
      return Promise.resolve({ kind: "sent", data: { ...JSON.parse(prior), repeat: true } });
    }
    const running = this.#inflight.get(id);
    if (running) return running;
    const p = this.#handle(req, id).finally(() => this.#inflight.delete(id));
    this.#inflight.set(id, p);
    return p;
  }

  async #handle(req: OutboundRequest, requestId: string | undefined): Promise<OutboundResult> {
    const { log } = this.#o;
    const view = this.#o.identities.current;
    const target = view.target(
      req.recipient.id,
      req.delivery.target,
      req.delivery.group_id,
      req.recipient.transport_id,
    );
    if (!target) {
      log.security("outbound_refused_not_allowlisted", {
        recipient: req.recipient.id.slice(0, 100),
        delivery: req.delivery.target,
        has_transport_id: req.recipient.transport_id !== undefined,
      });
      return {
        kind: "refused",
        message: `recipient ${JSON.stringify(req.recipient.id)} (${req.delivery.target}) is not ` +
          `in the mesh's allowlist`,
      };
    }
    const cls = this.limitClass(req, target);
    if (cls !== "unlimited") {
      const v = this.#limiters[cls].check(target.channel);
      if (!v.allowed) {
        log.warn("outbound_rate_limited", {
          channel: target.channel,
          rule: `${cls}.${v.reason}`,
          retry_after_seconds: v.retryAfterSeconds,
        });
        return {
          kind: "rate_limited",
          retryAfterSeconds: v.retryAfterSeconds,
          rule: `${cls}.${v.reason}`,
        };
      }
    }
    const messageId = crypto.randomUUID();
    const sentAt = new Date(this.#now()).toISOString();
    let report: SendReport;
    try {
      report = await this.#send(req.content.text, target, [], this.#quote(req, target));
    } catch (e) {
      return { kind: "unavailable", message: (e as Error).message };
    } finally {
      this.#o.presence?.answered(target.channel, req.reply_to);
    }
    if (undeliveredForNow(report)) {
      // nobody got it, for now: joi's durable outbox sends it again (after signal-cli's
      // retryAfterSeconds when it gave one); nothing is remembered, so that try sends
      log.warn("outbound_undelivered", {
        channel: target.channel,
        priority: req.priority,
        error_code: report.errorCode,
        failures: [...new Set(report.results.map((r) => r.type))],
        retry_after_seconds: report.retryAfterSeconds,
      });
      return {
        kind: "undelivered",
        message: `signal-cli delivered the message to nobody (${
          report.results[0]?.type ?? `error ${report.errorCode}`
        }); send it again`,
        ...(report.retryAfterSeconds !== null
          ? { retryAfterSeconds: report.retryAfterSeconds }
          : {}),
      };
    }
    const voice = req.voice_response && this.#o.speak !== undefined;
    if (voice && report.outcome !== "failed") this.#inBackground(this.#voiceSend(req, target));
    const data = {
      message_id: messageId,
      transport: "signal",
      sent_at: sentAt,
      delivered: false,
      outcome: report.outcome,
      results: report.results,
      ...(voice ? { voice: "pending" } : {}),
      ...(report.signalTimestamp !== null ? { signal_timestamp: report.signalTimestamp } : {}),
    };
    // remembered once someone got it: joi's repeat of this request then sends nothing,
    // and a quote of it maps back to joi's id
    if (requestId !== undefined && report.outcome !== "failed") {
      this.#o.sent?.rememberSent(
        requestId,
        target.channel,
        report.signalTimestamp,
        this.#now(),
        JSON.stringify(data),
      );
    }
    return { kind: "sent", data };
  }

  /** In a group, the answer quotes the message it answers (when the mesh still knows it). */
  #quote(
    req: OutboundRequest,
    target: SendTarget,
  ): { timestamp: number; author: string } | undefined {
    if (target.kind !== "group" || req.reply_to === undefined) return undefined;
    const m = this.#o.delivered?.deliveredMessage(req.reply_to);
    return m && m.channel === target.channel
      ? { timestamp: m.timestamp, author: m.author }
      : undefined;
  }

  #send(
    text: string,
    target: SendTarget,
    attachments: string[],
    quote?: { timestamp: number; author: string },
  ): Promise<SendReport> {
    return sendMessage({
      transport: this.#o.transport,
      log: this.#o.log,
      target,
      text,
      attachments,
      voiceNote: attachments.length > 0,
      quote,
      purpose: attachments.length ? "joi_voice" : "joi_outbound",
      // a text is joi's: its outbox retries what reached nobody. A voice note follows
      // a text already sent, and nobody retries it but us
      retries: attachments.length ? undefined : 0,
      sleep: this.#o.sleep,
      onRetry: (r) => this.#o.log.info("send_retried", { outcome: r.outcome }),
    });
  }

  /** The spoken version of an answer, after its text: a voice note, or nothing. */
  async #voiceSend(req: OutboundRequest, target: SendTarget): Promise<void> {
    let uri: string | null = null;
    try {
      uri = await this.#o.speak!(req.content.text);
    } catch (e) {
      this.#o.log.warn("voice_response_failed", { error: (e as Error).message });
    }
    if (uri === null) return;
    try {
      await this.#send("", target, [uri]);
    } catch (e) {
      this.#o.log.error("voice_response_send_failed", { error: (e as Error).message });
    }
  }
}
