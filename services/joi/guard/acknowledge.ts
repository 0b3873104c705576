/**
 * Acknowledgement of alarms, as contracts.md states it: only a reply **in the
 * critical group**, by the owner, and only of alarms whose alerts were sent
 * there. Three forms count:
 *
 * - a typed reply that is an acknowledgement phrase (policy.yaml
 *   `content.ack_words`: "ok", "OK", "ok 👍", "got it", or a lone 👍): every
 *   active, unacknowledged alarm with an alert the mesh confirmed before;
 * - a quote-reply of an alert message (whatever it says): that alert's alarm;
 * - a 👍 reaction (any skin tone) to an alert message: that alert's alarm.
 *
 * The same words anywhere else (a DM, the family group) are ordinary messages
 * and acknowledge nothing. A voice note acknowledges nothing either, in any
 * channel: a transcription ("Okay.") can be a mishearing, and stopping a fire
 * alarm's reminders on one is not a risk worth taking.
 *
 * The quoted or reacted-to message is identified by the mesh, which remembers
 * the Signal timestamp of every message it sent and maps it back to joi's
 * outbox delivery id (`joi_message_id` in the inbound body).
 *
 * @module
 */
import type { AlarmRecord } from "./alarms.ts";
import { normalizeForRules } from "./normalize.ts";

/** Normalizes a reply for matching: the rules' normal form, lower case, no punctuation. */
export function normalizeReply(text: string): string {
  return normalizeForRules(text).toLowerCase().replace(/[\s\p{P}\p{S}]+/gu, " ").trim();
}

const THUMBS_UP = /^\u{1F44D}[\u{1F3FB}-\u{1F3FF}]?\u{FE0F}?$/u;

/** True for 👍, with or without a skin tone. */
export function isThumbsUp(emoji: string): boolean {
  return THUMBS_UP.test(emoji.trim());
}

/**
 * True when `text` is an acknowledgement: the whole reply is one of
 * `ackWords` (emoji and punctuation around it do not matter: "ok 👍", "OK!"),
 * or starts with one and stays short ("ok, on my way"), or is a lone 👍.
 */
export function isAcknowledgement(text: string, ackWords: readonly string[]): boolean {
  if (isThumbsUp(text)) return true;
  const t = normalizeReply(text);
  if (t === "" || t.length > 40) return false;
  return ackWords.some((w) => {
    const word = normalizeReply(w);
    return t === word || t.startsWith(word + " ");
  });
}

/** One inbound message, as far as acknowledgement is concerned. */
export interface AckRequest {
  /** The validated channel it came in. */
  channel: string;
  /** Canonical sender id. */
  sender: string;
  /** The typed text (empty for a reaction). */
  text: string;
  /** True for a voice note (its transcription never acknowledges). */
  voice: boolean;
  /** The outbox delivery id of the message it quotes, when joi sent that message. */
  quotes?: string;
  /** A reaction, with the delivery id of the message it reacts to when joi sent it. */
  reaction?: { emoji: string; to?: string };
}

/** `acknowledge(request)`: the alarms it acknowledged (empty when it was no acknowledgement). */
export type Acknowledge = (request: AckRequest) => AlarmRecord[];

/** What the acknowledger needs from the guard. */
export interface AckTarget {
  /** The alarm an outbox message carried. */
  byDelivery(deliveryId: string): AlarmRecord | undefined;
  /** Active, unacknowledged alarms with an alert the mesh confirmed by `at`. */
  unacknowledgedSent(at: number): AlarmRecord[];
  /** Acknowledges alarms; returns those that were still open. */
  acknowledge(ids: readonly number[], at: number): AlarmRecord[];
}

/** Options of {@link createAcknowledger}. */
export interface AcknowledgerOptions {
  ackWords: readonly string[];
  /** Who may acknowledge (the owner). */
  ownerIds: readonly string[];
  /** The critical group's channel: the only place an acknowledgement counts. */
  criticalChannel: string;
  target: AckTarget;
  now: () => number;
}

/** Builds the acknowledge function. */
export function createAcknowledger(o: AcknowledgerOptions): Acknowledge {
  const owners = new Set(o.ownerIds);
  return (r) => {
    if (r.channel !== o.criticalChannel || !owners.has(r.sender)) return [];
    const now = o.now();
    if (r.reaction) {
      const alarm = r.reaction.to === undefined ? undefined : o.target.byDelivery(r.reaction.to);
      return alarm && isThumbsUp(r.reaction.emoji) ? o.target.acknowledge([alarm.id], now) : [];
    }
    if (r.quotes !== undefined) {
      // a quote-reply of an alert acknowledges its alarm (empty when it already was);
      // a quote of any other message is judged by its words
      const alarm = o.target.byDelivery(r.quotes);
      if (alarm) return o.target.acknowledge([alarm.id], now);
    }
    if (r.voice || !isAcknowledgement(r.text, o.ackWords)) return [];
    return o.target.acknowledge(o.target.unacknowledgedSent(now).map((a) => a.id), now);
  };
}
