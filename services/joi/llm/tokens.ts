/**
 * Token accounting without a tokenizer.
 *
 * joi has no access to the model's tokenizer, so it over-estimates: one token
 * per 3 UTF-8 bytes (Llama-family tokenizers average about 4 bytes per token
 * on English and about 3 on Slovak), plus a fixed overhead per chat message
 * for the role markers. Budgets computed with it are therefore safe bounds.
 *
 * @module
 */

const encoder = new TextEncoder();

/** Tokens charged per chat message for the template's role markers. */
export const MESSAGE_OVERHEAD_TOKENS = 4;

/** A chat message of the OpenAI format. */
export interface ChatMessage {
  /** Who speaks. */
  role: "system" | "user" | "assistant";
  /** The text. */
  content: string;
}

/** Estimated tokens of a text (an upper bound in practice). */
export function estimateTokens(text: string): number {
  return Math.ceil(encoder.encode(text).length / 3);
}

/** Estimated tokens of one chat message, with its overhead. */
export function messageTokens(m: ChatMessage): number {
  return estimateTokens(m.content) + MESSAGE_OVERHEAD_TOKENS;
}

/** Estimated tokens of a whole prompt. */
export function promptTokens(messages: readonly ChatMessage[]): number {
  let n = 0;
  for (const m of messages) n += messageTokens(m);
  return n;
}

/**
 * Shrinks a prompt to at most `budget` tokens: keeps every leading system
 * message and the final message, and drops the oldest messages in between.
 * If that is still too large, the final message is cut from its start.
 */
export function trimToBudget(messages: readonly ChatMessage[], budget: number): ChatMessage[] {
  const last = messages.at(-1);
  if (last === undefined || promptTokens(messages) <= budget) return [...messages];
  let head = 0;
  while (head < messages.length - 1 && messages[head]!.role === "system") head++;
  const system = messages.slice(0, head);
  const middle = messages.slice(head, messages.length - 1);
  let total = promptTokens(system) + messageTokens(last) + promptTokens(middle);
  while (middle.length > 0 && total > budget) {
    total -= messageTokens(middle.shift()!);
  }
  if (total <= budget) return [...system, ...middle, last];
  const room = budget - promptTokens(system) - MESSAGE_OVERHEAD_TOKENS;
  return [...system, ...middle, {
    ...last,
    content: cutToTokens(last.content, Math.max(0, room), true),
  }];
}

/** Cuts `text` to at most `tokens` estimated tokens, keeping its end (or start). */
export function cutToTokens(text: string, tokens: number, keepEnd = false): string {
  if (estimateTokens(text) <= tokens) return text;
  const chars = Array.from(text);
  let lo = 0;
  let hi = chars.length;
  while (lo < hi) {
    const mid = Math.ceil((lo + hi) / 2);
    const piece = keepEnd ? chars.slice(chars.length - mid).join("") : chars.slice(0, mid).join("");
    if (estimateTokens(piece) <= tokens) lo = mid;
    else hi = mid - 1;
  }
  return keepEnd ? chars.slice(chars.length - lo).join("") : chars.slice(0, lo).join("");
}
