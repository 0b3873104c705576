/**
 * Acknowledgement of active alerts by an owner's reply ("ok", "ack", "got it",
 * "on it": policy.yaml `content.ack_words`). The inbound side calls the
 * function {@link createAcknowledger} returns with the message text and the
 * canonical sender id; only the owner acknowledges.
 *
 * @module
 */
import { normalizeForRules } from "./normalize.ts";

/** Normalizes a reply for matching: the rules' normal form, lower case, no punctuation. */
export function normalizeReply(text: string): string {
  return normalizeForRules(text).toLowerCase().replace(/[\s\p{P}\p{S}]+/gu, " ").trim();
}

/**
 * True when `text` is an acknowledgement: the whole reply is one of
 * `ackWords`, or starts with one and stays short ("ok, on my way").
 */
export function isAcknowledgement(text: string, ackWords: string[]): boolean {
  const t = normalizeReply(text);
  if (t === "" || t.length > 40) return false;
  return ackWords.some((w) => {
    const word = normalizeReply(w);
    return t === word || t.startsWith(word + " ");
  });
}

/** `acknowledge(text, sender)`: acknowledged devices, empty when it was no ack. */
export type Acknowledge = (text: string, sender: string) => string[];

/** Builds the acknowledge function over a guard-like `acknowledgeAll`. */
export function createAcknowledger(options: {
  ackWords: string[];
  ownerIds: string[];
  acknowledgeAll: () => string[];
}): Acknowledge {
  const owners = new Set(options.ownerIds);
  return (text, sender) => {
    if (!owners.has(sender)) return [];
    if (!isAcknowledgement(text, options.ackWords)) return [];
    return options.acknowledgeAll();
  };
}
