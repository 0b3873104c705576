/**
 * The fixed texts joi sends without the LLM (busy, down, refused, a voice
 * note not transcribed, an escalation's notice; acknowledgements are the
 * guard's templates, degraded mode the model watch's), and which one answers
 * a failed LLM call. Their
 * constant text is ours, so the outbox checks them as templates.
 *
 * @module
 */
import { LlmError } from "../llm/errors.ts";

/** Fixed texts joi sends without the LLM. */
export const NOTICES = {
  busy: (minutes: number) =>
    `I need a moment: I have been thinking a lot this hour. Ask me again in about ${minutes} minute${
      minutes === 1 ? "" : "s"
    }.`,
  down:
    "I can't answer right now: my language model is not responding. I got your message. Alarms and critical alerts still work.",
  refused:
    "I wrote a reply that broke my output rules, so I did not send it. Please ask me differently.",
  /** The architecture document's reply to a voice note whisper could not transcribe. */
  voiceFailed:
    "I received your voice message but couldn't transcribe it. Could you send that as text?",
  /**
   * All the critical group learns of an urgent reply in another channel:
   * where to look, never the reply.
   */
  escalated: (where: string, direct: boolean) =>
    `Something urgent was raised in ${where}. ${
      direct ? "Check your DM with Joi." : `Check ${where}.`
    }`,
  /** The answer when the model's reply held only a `REMEMBER:` directive. */
  noted: "Noted: I will remember that.",
  /** The answer when the model's reply held no text at all (joi said it would answer). */
  empty: "I have no answer to that. Please ask me again, perhaps in other words.",
  /** Appended to an answer longer than one message may be. */
  cut: " […] (My answer was longer than one message may be; ask me to go on.)",
} as const;

/** The honest answer to a message the LLM could not take: busy (with the wait) or down. */
export function llmFailureNotice(
  e: unknown,
): { text: string; what: "busy_notice" | "down_notice" } {
  if (e instanceof LlmError && e.kind === "busy") {
    const minutes = Math.max(1, Math.ceil((e.retryAfterSeconds ?? 300) / 60));
    return { text: NOTICES.busy(minutes), what: "busy_notice" };
  }
  return { text: NOTICES.down, what: "down_notice" };
}
