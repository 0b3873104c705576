/**
 * Presence cues, as people expect them from a Signal contact:
 *
 * - **read receipts** for direct messages, once joi has the message
 *   (`sendReceipt type: read`), when mesh.yaml `presence.read_receipts` is on;
 * - **typing** while joi works on a message it will answer: started when joi
 *   takes the message (`will_respond: true`), refreshed every
 *   `typing_refresh_seconds` (Signal shows an indicator for 15 s), stopped
 *   when the answer to every message joi is working on in that conversation
 *   has been sent, when sending it failed, or after `typing_max_seconds`
 *   (joi decided not to answer, or never could).
 *
 * Everything here is best effort: a failed cue is logged and never delays or
 * blocks a message.
 *
 * @module
 */
import type { Logger } from "../common/log.ts";
import type { MeshSettings } from "./config.ts";
import type { SendTarget } from "./identity.ts";
import type { SignalTransport } from "./signal/transport.ts";

/** mesh.yaml `presence` (its schema's type: one statement of the shape). */
export type PresenceSettings = MeshSettings["presence"];

/** Options of {@link Presence}. */
export interface PresenceOptions {
  transport: SignalTransport;
  settings: PresenceSettings;
  log: Logger;
  now?: () => number;
}

interface Session {
  target: SendTarget;
  pending: Set<string>;
  startedAt: number;
  timer: ReturnType<typeof setInterval>;
}

function typingParams(target: SendTarget, stop: boolean): Record<string, unknown> {
  return target.kind === "group"
    ? { groupId: target.groupId, stop }
    : { recipient: [target.number], stop };
}

/** Typing sessions per conversation, and read receipts. */
export class Presence {
  readonly #o: PresenceOptions;
  readonly #now: () => number;
  readonly #sessions = new Map<string, Session>();
  /** Messages already answered (a fast reply may overtake joi's acceptance). */
  readonly #done = new Map<string, number>();

  constructor(options: PresenceOptions) {
    this.#o = options;
    this.#now = options.now ?? Date.now;
  }

  /** Conversations with a typing indicator on (for /health and tests). */
  get typing(): string[] {
    return [...this.#sessions.keys()];
  }

  /** Sends a read receipt for a direct message (`timestamp`: the envelope's). */
  read(target: SendTarget, timestamp: number): void {
    if (!this.#o.settings.read_receipts || target.kind !== "direct") return;
    this.#call("sendReceipt", {
      recipient: target.number,
      targetTimestamp: [timestamp],
      type: "read",
    });
  }

  /** joi will answer `messageId` in `target`: show (or keep showing) the typing indicator. */
  working(target: SendTarget, messageId: string): void {
    if (!this.#o.settings.typing || this.#done.has(messageId)) return;
    const s = this.#sessions.get(target.channel);
    if (s) {
      s.pending.add(messageId);
      return;
    }
    const session: Session = {
      target,
      pending: new Set([messageId]),
      startedAt: this.#now(),
      timer: setInterval(
        () => this.#refresh(target.channel),
        this.#o.settings.typing_refresh_seconds * 1000,
      ),
    };
    this.#sessions.set(target.channel, session);
    this.#call("sendTyping", typingParams(target, false));
  }

  /**
   * A message went to `channel` (or failed to): when it answers `replyTo`,
   * that message is done; when nothing is left to answer there, typing stops.
   */
  answered(channel: string, replyTo: string | undefined): void {
    if (replyTo !== undefined) this.#remember(replyTo);
    const s = this.#sessions.get(channel);
    if (!s || replyTo === undefined || !s.pending.delete(replyTo)) return;
    if (s.pending.size === 0) this.#stop(channel, "answered");
  }

  /** Stops every indicator (shutdown). */
  close(): void {
    for (const channel of [...this.#sessions.keys()]) this.#stop(channel, "shutdown");
  }

  #remember(messageId: string): void {
    const now = this.#now();
    this.#done.set(messageId, now);
    if (this.#done.size > 256) {
      for (const [id, at] of this.#done) {
        if (this.#done.size <= 128 && now - at < 600_000) break;
        this.#done.delete(id);
      }
    }
  }

  #refresh(channel: string): void {
    const s = this.#sessions.get(channel);
    if (!s) return;
    if (this.#now() - s.startedAt >= this.#o.settings.typing_max_seconds * 1000) {
      this.#stop(channel, "timeout");
      return;
    }
    this.#call("sendTyping", typingParams(s.target, false));
  }

  #stop(channel: string, why: string): void {
    const s = this.#sessions.get(channel);
    if (!s) return;
    clearInterval(s.timer);
    this.#sessions.delete(channel);
    this.#o.log.debug("typing_stopped", { channel, why, pending: s.pending.size });
    this.#call("sendTyping", typingParams(s.target, true));
  }

  #call(method: string, params: Record<string, unknown>): void {
    this.#o.transport.request(method, params).catch((e) =>
      this.#o.log.warn("presence_failed", { method, error: (e as Error).message })
    );
  }
}
