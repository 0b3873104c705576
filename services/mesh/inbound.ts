/**
 * Signal -> joi: every `receive` notification goes through these checks, in
 * this order, before anything is queued for joi:
 *
 * 1. parse; receipts, typing, sync, story, call and edit messages stop here;
 *    an exception-only notification is logged (security for identity
 *    problems), never crashed on;
 * 2. the sender must be in identities.yaml (by number, else by uuid), else
 *    the message is dropped silently and logged to the security log;
 * 3. the channel is decided here: DM -> `<recipient>_private_dm`, group ->
 *    its channel; an unlisted group is dropped like an unknown sender;
 * 4. duplicates (same sender uuid and timestamp) are dropped;
 * 5. inbound rate limits (not for the owner nor the critical group): over
 *    the limit the message is dropped and the sender told once how long to
 *    wait;
 * 6. voice notes are transcribed (bounded queue); the message is queued
 *    durably for joi.
 *
 * Attachment files are deleted (signal-cli never deletes them) once handled,
 * whatever the verdict, when the attachments folder is configured.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Logger } from "../common/log.ts";
import { RateLimiter } from "../common/rate_limit.ts";
import type { MeshLimits, MeshSettings } from "./config.ts";
import { addressHash, type IdentityStore, type KnownSender } from "./identity.ts";
import { type MeshStore, QueueFullError } from "./queue.ts";
import { type InboundMessage, isVoiceNote, parseNotification } from "./signal/envelope.ts";
import type { RpcNotification } from "./signal/transport.ts";
import type { TranscriptionResult } from "./voice/transcribe.ts";

/** Transcribes one voice note (the voice queue), when voice is configured. */
export type Transcribe = (
  attachment: { id: string; size: number | null },
) => Promise<TranscriptionResult>;

/** Options of {@link InboundPipeline}. */
export interface InboundOptions {
  identities: IdentityStore;
  store: MeshStore;
  settings: MeshSettings;
  limits: MeshLimits;
  log: Logger;
  /** Tells a rate-limited sender to wait (a DM to their number). */
  notify: (sender: KnownSender, text: string) => Promise<void>;
  /** Called after each enqueue (wakes the forwarder). */
  onQueued: () => void;
  /** Voice transcription; absent when voice is not configured. */
  transcribe?: Transcribe | undefined;
  /** Deletes an attachment file by id; absent when the folder is not configured. */
  deleteAttachment?: ((id: string) => Promise<void>) | undefined;
  /** Clock (ms). */
  now?: (() => number) | undefined;
}

/** A voice note accepted and waiting for transcription (persisted as JSON). */
interface VoiceJob {
  p: InboundMessage;
  recipientId: string;
  channel: string;
  dedupKey: string;
  voice: { id: string; size: number | null };
  now: number;
}

/** Verdict of one notification (returned for tests and the benchmark). */
export type InboundVerdict =
  | "queued"
  | "voice_pending"
  | "ignored"
  | "exception"
  | "malformed"
  | "unknown_sender"
  | "unknown_group"
  | "duplicate"
  | "rate_limited"
  | "queue_full";

/** Deterministic message id of (sender, timestamp). */
export function messageIdOf(sender: string, timestamp: number): string {
  return "sig-" + createHash("sha256").update(`${sender}:${timestamp}`).digest("hex").slice(0, 32);
}

/** Cuts `text` to `max` code points. */
export function capText(text: string, max: number): { text: string; cut: boolean } {
  const cps = Array.from(text);
  return cps.length <= max ? { text, cut: false } : { text: cps.slice(0, max).join(""), cut: true };
}

/** The inbound pipeline. */
export class InboundPipeline {
  readonly #o: InboundOptions;
  readonly #limiter: RateLimiter;
  readonly #told = new Map<string, number>();
  readonly #now: () => number;
  /** Voice transcriptions not yet queued (for health and tests). */
  pendingVoice = 0;
  #voiceDone: Promise<void>[] = [];

  constructor(options: InboundOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
    this.#limiter = new RateLimiter(options.limits.inbound.others, { now: this.#now });
  }

  /** Handles one notification; never throws. */
  handle(n: RpcNotification): InboundVerdict {
    try {
      return this.#handle(n);
    } catch (e) {
      this.#o.log.error("inbound_failed", { error: (e as Error).message });
      return "malformed";
    }
  }

  /** Resolves when every voice note accepted so far has been queued. */
  async settled(): Promise<void> {
    while (this.#voiceDone.length) {
      const all = this.#voiceDone;
      this.#voiceDone = [];
      await Promise.allSettled(all);
    }
  }

  #handle(n: RpcNotification): InboundVerdict {
    const { log } = this.#o;
    const p = parseNotification(n.method, n.params);
    if (p.kind === "exception") {
      const identity = /identity|untrusted/i.test(p.type);
      (identity ? log.security : log.warn)("signal_exception", { type: p.type });
      return "exception";
    }
    if (p.kind === "malformed") {
      log.warn("signal_malformed_envelope", { reason: p.reason });
      return "malformed";
    }
    if (p.kind === "ignored") {
      log.debug("signal_ignored", { reason: p.reason });
      return "ignored";
    }
    const view = this.#o.identities.current;
    const sender = view.sender(p.senderNumber, p.senderUuid);
    if (!sender) {
      this.#cleanup(p);
      log.security("unknown_sender_dropped", {
        sender_hash: addressHash(p.senderNumber ?? p.senderUuid ?? ""),
        by: p.senderNumber ? "number" : "uuid",
        conversation: p.groupId ? "group" : "direct",
        group_hash: p.groupId ? addressHash(p.groupId) : undefined,
      });
      return "unknown_sender";
    }
    const channel = view.channelFor(sender, p.groupId);
    if (!channel) {
      this.#cleanup(p);
      log.security("unknown_group_dropped", {
        sender: sender.recipientId,
        group_hash: addressHash(p.groupId ?? ""),
      });
      return "unknown_group";
    }
    const dedupKey = p.senderUuid?.toLowerCase() ?? sender.uuid ?? sender.number;
    const now = this.#now();
    if (this.#o.store.seen(dedupKey, p.timestamp)) {
      log.debug("duplicate_dropped", { channel });
      return "duplicate";
    }
    if (!this.#limited(sender, channel)) {
      const verdict = this.#limit(sender, channel, now);
      if (verdict !== null) {
        // remember it so a redelivery is not counted twice
        this.#o.store.markSeen(dedupKey, p.timestamp, now);
        this.#cleanup(p);
        return verdict;
      }
    }
    const voice = p.attachments.find(isVoiceNote);
    if (voice) {
      const job: VoiceJob = { p, recipientId: sender.recipientId, channel, dedupKey, voice, now };
      const id = this.#o.store.acceptVoice(dedupKey, p.timestamp, JSON.stringify(job), now);
      if (id === null) {
        log.debug("duplicate_dropped", { channel });
        return "duplicate";
      }
      this.#voice(id, job, sender);
      return "voice_pending";
    }
    const body = this.#body(p, sender, channel, dedupKey, now, this.#content(p, channel));
    this.#cleanup(p);
    try {
      const accepted = this.#o.store.acceptOnce(dedupKey, p.timestamp, {
        messageId: body.message_id as string,
        channel,
        recipientId: sender.recipientId,
        senderHash: addressHash(sender.number),
        body: JSON.stringify(body),
        enqueuedAt: now,
      });
      if (!accepted) {
        log.debug("duplicate_dropped", { channel });
        return "duplicate";
      }
    } catch (e) {
      if (e instanceof QueueFullError) {
        log.error("queue_full", { channel, error: e.message });
        return "queue_full";
      }
      throw e;
    }
    log.info("inbound_queued", { channel, sender: sender.recipientId });
    this.#o.onQueued();
    return "queued";
  }

  /** True when the sender is never limited (owner, critical channel). */
  #limited(sender: KnownSender, channel: string): boolean {
    const s = this.#o.settings;
    return sender.recipientId === s.owner_recipient || channel === s.critical_channel;
  }

  #limit(sender: KnownSender, channel: string, now: number): InboundVerdict | null {
    const key = `${sender.recipientId}:${channel}`;
    const v = this.#limiter.check(key, now);
    if (v.allowed) return null;
    const toldUntil = this.#told.get(key) ?? 0;
    this.#o.log.warn("inbound_rate_limited", {
      channel,
      sender: sender.recipientId,
      retry_after_seconds: v.retryAfterSeconds,
      told: toldUntil <= now,
    });
    if (toldUntil <= now) {
      this.#told.set(key, now + v.retryAfterSeconds * 1000);
      const minutes = Math.ceil(v.retryAfterSeconds / 60);
      const wait = v.retryAfterSeconds < 120
        ? `${v.retryAfterSeconds} seconds`
        : `${minutes} minutes`;
      this.#o.notify(
        sender,
        `You are sending messages faster than I can take them. Please wait ${wait} ` +
          `before writing again; messages sent before then are not read.`,
      ).catch((e) => this.#o.log.warn("rate_notice_failed", { error: (e as Error).message }));
    }
    return "rate_limited";
  }

  #content(p: InboundMessage, channel: string): Record<string, unknown> {
    const max = this.#o.settings.inbound_max_chars;
    if (p.reaction) {
      const to = p.reaction.targetTimestamp;
      return {
        type: "reaction",
        reaction: p.reaction.emoji,
        voice_transcription_failed: false,
        ...(to !== null
          ? { reaction_to: this.#target(to, p.reaction.targetAuthorNumber, channel, p.account) }
          : {}),
      };
    }
    const att = p.attachments[0];
    const text = p.text === null ? undefined : capText(p.text, max).text;
    if (att) {
      const type = att.contentType.startsWith("image/") ? "image" : "file";
      const c: Record<string, unknown> = { type, voice_transcription_failed: false };
      if (text !== undefined) c.text = text;
      if (att.caption) c.caption = capText(att.caption, max).text;
      return c;
    }
    return { type: "text", text: text ?? "", voice_transcription_failed: false };
  }

  #body(
    p: InboundMessage,
    sender: KnownSender,
    channel: string,
    dedupKey: string,
    now: number,
    content: Record<string, unknown>,
  ): Record<string, unknown> {
    const format = p.attachments.length
      ? p.attachments.map((a) => a.contentType).join(",")
      : p.reaction
      ? "reaction"
      : "text";
    const body: Record<string, unknown> = {
      transport: "signal",
      message_id: messageIdOf(dedupKey, p.timestamp),
      sender: {
        id: sender.recipientId,
        transport_id: sender.number,
        ...(sender.name ? { display_name: sender.name } : {}),
      },
      conversation: { type: p.groupId ? "group" : "direct", id: channel },
      priority: channel === this.#o.settings.critical_channel ? "critical" : "normal",
      content,
      metadata: { mesh_received_at: new Date(now).toISOString(), original_format: format },
      timestamp: new Date(p.timestamp).toISOString(),
    };
    if (p.quote) {
      body.quote = {
        ...this.#target(p.quote.id, p.quote.authorNumber, channel, p.account),
        text: p.quote.text === null
          ? ""
          : capText(p.quote.text, this.#o.settings.inbound_max_chars).text,
      };
    }
    return body;
  }

  /**
   * The message a quote or reaction points at: Signal's id of it, and joi's
   * own id when it is a message the mesh sent for joi in this channel (by its
   * Signal timestamp; an author other than this account never matches).
   */
  #target(
    ts: number,
    author: string | null,
    channel: string,
    account: string | null,
  ): Record<string, string> {
    const ours = author === null || account === null || author === account;
    const joi = ours ? this.#o.store.requestForSignal(ts, channel) : null;
    return { message_id: `sig-ts-${ts}`, ...(joi !== null ? { joi_message_id: joi } : {}) };
  }

  /**
   * Resumes voice notes accepted before a crash or restart (their attachment
   * may be gone by now: joi then gets the structured `file_missing` failure).
   */
  resumeVoice(): number {
    let n = 0;
    for (const { id, job } of this.#o.store.pendingVoice()) {
      let j: VoiceJob;
      try {
        j = JSON.parse(job) as VoiceJob;
      } catch {
        this.#o.store.dropVoice(id);
        continue;
      }
      const sender = this.#o.identities.current.recipient(j.recipientId);
      if (!sender) {
        this.#o.log.security("queued_message_dropped_revoked", { sender: j.recipientId });
        this.#o.store.dropVoice(id);
        continue;
      }
      this.#voice(id, j, sender);
      n++;
    }
    if (n) this.#o.log.info("voice_resumed", { jobs: n });
    return n;
  }

  #voice(id: number, job: VoiceJob, sender: KnownSender): void {
    const { p, channel, dedupKey, voice, now } = job;
    this.pendingVoice++;
    const run = async () => {
      let result: TranscriptionResult;
      if (!this.#o.transcribe) {
        result = { ok: false, reason: "voice_not_configured", durationMs: null };
      } else {
        try {
          result = await this.#o.transcribe(voice);
        } catch (e) {
          this.#o.log.error("voice_failed", { error: (e as Error).message });
          result = { ok: false, reason: "whisper_error", durationMs: null };
        }
      }
      this.#cleanup(p);
      const content: Record<string, unknown> = result.ok
        ? {
          type: "voice",
          voice_transcription: capText(result.text, this.#o.settings.inbound_max_chars).text,
          voice_transcription_failed: false,
        }
        : {
          type: "voice",
          voice_transcription: null,
          voice_transcription_failed: true,
          voice_failure_reason: result.reason,
        };
      if (result.durationMs !== null) content.voice_duration_ms = result.durationMs;
      if (p.text) content.text = capText(p.text, this.#o.settings.inbound_max_chars).text;
      const body = this.#body(p, sender, channel, dedupKey, now, content);
      try {
        this.#o.store.finishVoice(id, {
          messageId: body.message_id as string,
          channel,
          recipientId: sender.recipientId,
          senderHash: addressHash(sender.number),
          body: JSON.stringify(body),
          enqueuedAt: this.#now(),
        });
        this.#o.log.info("inbound_queued", { channel, sender: sender.recipientId, voice: true });
        this.#o.onQueued();
      } catch (e) {
        this.#o.log.error("queue_full", { channel, error: (e as Error).message });
      }
    };
    const done = run().finally(() => this.pendingVoice--);
    this.#voiceDone.push(done);
  }

  #cleanup(p: InboundMessage): void {
    const del = this.#o.deleteAttachment;
    if (!del) return;
    for (const a of p.attachments) {
      del(a.id).catch((e) =>
        this.#o.log.warn("attachment_delete_failed", { error: (e as Error).message })
      );
    }
  }
}
