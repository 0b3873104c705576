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
 * 4. in a group, the sender must be one of its expected members
 *    (identities.yaml), else the message is dropped and logged: a known
 *    person writing in a group that is not theirs gets nothing of it;
 * 5. duplicates (same sender uuid and timestamp) are dropped;
 * 6. inbound rate limits, per sender, in every group and in every DM but the
 *    owner's: over the limit the message is dropped and the sender told once
 *    how long to wait;
 * 7. the body: a long text's `text/x-signal-plain` attachment is read as the
 *    body; mention placeholders become `@name`; in a group whose rule is
 *    `respond: mentioned`, a line that neither mentions joi's account,
 *    addresses it by name nor quote-replies one of joi's messages goes to joi
 *    marked `addressed: false` (context only); a text over the limit is cut
 *    and its sender told where;
 * 8. voice notes (an audio attachment without a file name; without a
 *    content type, when its bytes are audio) are transcribed (bounded
 *    queue); the message is queued durably for joi.
 *
 * Attachment files are deleted (signal-cli never deletes them) once handled,
 * whatever the verdict, when the attachments folder is configured.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Logger } from "../common/log.ts";
import { channelOfRecipient } from "../common/policy/household.ts";
import { RateLimiter } from "../common/rate_limit.ts";
import {
  addressedByName,
  mentionsSelf,
  renderMentions,
  respondRule,
  type SelfAccount,
} from "./addressing.ts";
import type { MeshLimits, MeshSettings } from "./config.ts";
import {
  addressHash,
  type IdentityStore,
  type IdentityView,
  type KnownSender,
} from "./identity.ts";
import { bodyIsPartial, capText, cutNotice, partNotice, readLongText } from "./long_text.ts";
import { type MeshStore, QueueFullError } from "./queue.ts";
import {
  type InboundMessage,
  isLongText,
  isUntypedNote,
  isVoiceNote,
  parseNotification,
} from "./signal/envelope.ts";
import { attachmentIsAudio } from "./voice/sniff.ts";
import type { RpcNotification } from "./signal/transport.ts";
import type { TranscriptionResult } from "./voice/transcribe.ts";

/** Transcribes one voice note (the voice queue), when voice is configured. */
export type Transcribe = (
  attachment: { id: string; size: number | null },
) => Promise<TranscriptionResult>;

/** Where a notice to a sender goes: their DM, or the group the message came in, quoting it. */
export interface NoticeTarget {
  sender: KnownSender;
  /** The group of the message, or null for a DM. */
  groupId: string | null;
  channel: string;
  /** The message the notice is about (quoted in a group). */
  quote?: { timestamp: number; author: string } | undefined;
}

/** Options of {@link InboundPipeline}. */
export interface InboundOptions {
  identities: IdentityStore;
  store: MeshStore;
  settings: MeshSettings;
  limits: MeshLimits;
  /** The most characters forwarded to joi (mesh.yaml, capped by policy.yaml). */
  maxChars: number;
  /** The account the mesh speaks as (mentions, name addressing). */
  self: () => SelfAccount;
  /** signal-cli's attachments folder (long texts, voice notes); absent: none are read. */
  attachmentsDir?: string | undefined;
  log: Logger;
  /** Tells a sender something (rate limit: in their DM; a cut message: where it was sent). */
  notify: (to: NoticeTarget, text: string) => Promise<void>;
  /** signal-cli named the account it runs as (`params.account`, E.164). */
  onAccount?: ((number: string) => void) | undefined;
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
  | "not_a_member"
  | "duplicate"
  | "rate_limited"
  | "queue_full";

/** Deterministic message id of (sender, timestamp). */
export function messageIdOf(sender: string, timestamp: number): string {
  return "sig-" + createHash("sha256").update(`${sender}:${timestamp}`).digest("hex").slice(0, 32);
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
    if (p.account !== null && /^\+[1-9]\d{6,14}$/.test(p.account)) this.#o.onAccount?.(p.account);
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
    if (p.groupId !== null) {
      const members = view.group(p.groupId)?.expected_members ?? [];
      if (!members.includes(sender.recipientId)) {
        this.#cleanup(p);
        log.security("group_sender_not_member_dropped", {
          sender: sender.recipientId,
          channel,
          expected_members: members,
        });
        return "not_a_member";
      }
    }
    const dedupKey = p.senderUuid?.toLowerCase() ?? sender.uuid ?? sender.number;
    const now = this.#now();
    if (this.#o.store.seen(dedupKey, p.timestamp)) {
      log.debug("duplicate_dropped", { channel });
      return "duplicate";
    }
    if (!this.#unlimited(sender, p.groupId)) {
      const verdict = this.#limit(sender, channel, now);
      if (verdict !== null) {
        // remember it so a redelivery is not counted twice
        this.#o.store.markSeen(dedupKey, p.timestamp, now);
        this.#cleanup(p);
        return verdict;
      }
    }
    const dir = this.#o.attachmentsDir;
    const voice = p.attachments.find((a) =>
      isVoiceNote(a) || (dir !== undefined && isUntypedNote(a) && attachmentIsAudio(dir, a.id))
    );
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
    const { text, partial } = this.#text(p, view);
    const addressed = this.#addressed(p, view, text ?? "");
    const content = this.#content(p, text, addressed, { sender, channel }, partial);
    const body = this.#body(p, sender, channel, dedupKey, now, content, addressed);
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

  /** Only the owner's own DMs are never limited; in a group everyone is, per sender. */
  #unlimited(sender: KnownSender, groupId: string | null): boolean {
    return groupId === null && sender.recipientId === this.#o.settings.owner_recipient;
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
        { sender, groupId: null, channel: channelOfRecipient(sender.recipientId, "private") },
        `You are sending messages faster than I can take them. Please wait ${wait} ` +
          `before writing again; messages sent before then are not read.`,
      ).catch((e) => this.#o.log.warn("rate_notice_failed", { error: (e as Error).message }));
    }
    return "rate_limited";
  }

  /**
   * The text of a message: a long text's attachment when there is one (it is
   * the whole body; signal-cli may put a cut prefix in `message`), with each
   * mention shown as `@name`; null when there is none. `partial`: only the
   * text's beginning is known (its attachment could not be read, or held
   * more than the reading cap), so the sender is told.
   */
  #text(p: InboundMessage, view: IdentityView): { text: string | null; partial: boolean } {
    let text = p.text;
    let partial = false;
    const long = p.attachments.find(isLongText);
    if (long) {
      const r = this.#o.attachmentsDir
        ? readLongText(this.#o.attachmentsDir, long.id)
        : { ok: false as const, reason: "no attachments folder configured" };
      if (r.ok && r.text.length >= (text?.length ?? 0)) {
        text = r.text;
        partial = !r.complete;
        this.#o.log.info("long_text_read", { chars: r.text.length, complete: r.complete });
      } else if (!r.ok) {
        // signal-cli 0.14 reads it too; when neither could, `message` is the cut body
        partial = bodyIsPartial(text, long.size);
        this.#o.log.warn("long_text_unreadable", { reason: r.reason, partial });
      }
    }
    if (text === null || p.mentions.length === 0) return { text, partial };
    const self = this.#o.self();
    const rendered = renderMentions(text, p.mentions, (m) => {
      if (mentionsSelf([m], self, this.#member(view))) return self.name;
      const s = view.sender(m.number, m.uuid);
      return s ? s.name ?? s.recipientId : "someone";
    });
    return { text: rendered, partial };
  }

  /** Whether joi should answer: always in a DM; in a group by its respond rule. */
  #addressed(p: InboundMessage, view: IdentityView, text: string): boolean {
    if (p.groupId === null) return true;
    const group = view.group(p.groupId);
    if (!group || respondRule(group) === "always") return true;
    const self = this.#o.self();
    const member = this.#member(view);
    // a quote-reply of one of joi's own messages answers joi, as in any chat
    const q = p.quote;
    const author = { number: q?.authorNumber ?? null, uuid: q?.authorUuid ?? null };
    const repliesToJoi = q !== null &&
      mentionsSelf([{ ...author, start: 0, length: 0 }], self, member);
    return repliesToJoi || mentionsSelf(p.mentions, self, member) ||
      addressedByName(text, self.name);
  }

  /** Whether a Signal address is a household member's (identities.yaml). */
  #member(view: IdentityView): (m: { number: string | null; uuid: string | null }) => boolean {
    return (m) => view.memberId(m.number, m.uuid) !== null;
  }

  /**
   * Cuts `text` to the limit; tells the sender where, when joi is to answer
   * it (also when it was not cut but only its beginning reached the mesh).
   */
  #cap(
    p: InboundMessage,
    text: string,
    addressed: boolean,
    to: { sender: KnownSender; channel: string },
    partial = false,
  ): string {
    const max = this.#o.maxChars;
    const c = capText(text, max);
    if (!c.cut && !partial) return text;
    if (c.cut) {
      this.#o.log.info("inbound_cut", { channel: to.channel, chars: text.length, max, partial });
    }
    if (addressed) {
      this.#o.notify({
        ...to,
        groupId: p.groupId,
        quote: {
          timestamp: p.timestamp,
          author: p.senderNumber ?? p.senderUuid ?? to.sender.number,
        },
      }, c.cut ? cutNotice(text, c.text, partial) : partNotice(text)).catch((e) =>
        this.#o.log.warn("cut_notice_failed", { error: (e as Error).message })
      );
    }
    return c.text;
  }

  #content(
    p: InboundMessage,
    text: string | null,
    addressed: boolean,
    to: { sender: KnownSender; channel: string },
    partial: boolean,
  ): Record<string, unknown> {
    const max = this.#o.maxChars;
    if (p.reaction) {
      const at = p.reaction.targetTimestamp;
      return {
        type: "reaction",
        reaction: p.reaction.emoji,
        voice_transcription_failed: false,
        ...(at !== null
          ? { reaction_to: this.#target(at, p.reaction.targetAuthorNumber, to.channel, p.account) }
          : {}),
      };
    }
    const capped = text === null ? undefined : this.#cap(p, text, addressed, to, partial);
    const att = p.attachments.find((a) => !isLongText(a));
    if (att) {
      const type = att.contentType?.startsWith("image/") ? "image" : "file";
      const c: Record<string, unknown> = { type, voice_transcription_failed: false };
      if (capped !== undefined) c.text = capped;
      if (att.caption) c.caption = capText(att.caption, max).text;
      return c;
    }
    return { type: "text", text: capped ?? "", voice_transcription_failed: false };
  }

  #body(
    p: InboundMessage,
    sender: KnownSender,
    channel: string,
    dedupKey: string,
    now: number,
    content: Record<string, unknown>,
    addressed: boolean,
  ): Record<string, unknown> {
    const format = p.attachments.length
      ? p.attachments.map((a) => a.contentType ?? "unknown").join(",")
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
    // only a line not meant for joi says so: joi keeps it as context, answers nothing
    if (!addressed) body.addressed = false;
    if (p.quote) {
      body.quote = {
        ...this.#target(p.quote.id, p.quote.authorNumber, channel, p.account),
        text: p.quote.text === null ? "" : capText(p.quote.text, this.#o.maxChars).text,
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
      j.p.mentions ??= []; // a job accepted by an older mesh
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
      const view = this.#o.identities.current;
      const caption = p.text === null ? null : this.#text(p, view).text;
      this.#cleanup(p);
      // in a mention-gated group, a spoken "Joi, ..." addresses joi like a typed one
      const addressed = this.#addressed(p, view, result.ok ? result.text : "") ||
        (caption !== null && this.#addressed(p, view, caption));
      const content: Record<string, unknown> = result.ok
        ? {
          type: "voice",
          voice_transcription: this.#cap(p, result.text, addressed, { sender, channel }),
          voice_transcription_failed: false,
        }
        : {
          type: "voice",
          voice_transcription: null,
          voice_transcription_failed: true,
          voice_failure_reason: result.reason,
        };
      if (result.durationMs !== null) content.voice_duration_ms = result.durationMs;
      if (caption) content.text = capText(caption, this.#o.maxChars).text;
      const body = this.#body(p, sender, channel, dedupKey, now, content, addressed);
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
