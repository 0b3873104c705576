/**
 * The sliding context window: the system message plus as many of the newest
 * turns as fit, under a hard token budget. The newest message is always kept
 * (cut from its start if it alone is too long). The invariant
 * `promptTokens(result) <= budget` holds for every input.
 *
 * @module
 */
import {
  type ChatMessage,
  cutToTokens,
  MESSAGE_OVERHEAD_TOKENS,
  messageTokens,
  promptTokens,
} from "../llm/tokens.ts";

/** A conversation turn as the window sees it. */
export interface WindowTurn {
  /** Who spoke. */
  role: "user" | "assistant";
  /** What was said. */
  text: string;
}

/** The chat messages for `turns` (oldest first) under `budget` tokens. */
export function buildWindow(
  system: ChatMessage,
  turns: readonly WindowTurn[],
  budget: number,
): ChatMessage[] {
  if (budget < 2 * MESSAGE_OVERHEAD_TOKENS + 2) {
    throw new RangeError(`context budget ${budget} is too small`);
  }
  let sys = system;
  // the system message may use at most 60 % of the budget
  const sysMax = Math.floor(budget * 0.6);
  if (messageTokens(sys) > sysMax) {
    sys = { role: "system", content: cutToTokens(sys.content, sysMax - MESSAGE_OVERHEAD_TOKENS) };
  }
  let room = budget - messageTokens(sys);
  const kept: ChatMessage[] = [];
  for (const turn of [...turns].reverse()) {
    const m: ChatMessage = { role: turn.role, content: turn.text };
    const cost = messageTokens(m);
    if (cost <= room) {
      kept.unshift(m);
      room -= cost;
      continue;
    }
    if (kept.length === 0) {
      // the newest message alone is too long: keep its end
      kept.unshift({
        role: m.role,
        content: cutToTokens(m.content, room - MESSAGE_OVERHEAD_TOKENS, true),
      });
    }
    break;
  }
  const out = [sys, ...kept];
  if (promptTokens(out) > budget) throw new Error("context window exceeded its budget (bug)");
  return out;
}
