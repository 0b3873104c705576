/**
 * One turn of the agent: a message answered, or a proactive message
 * considered. For a message: remember the user's turn, retrieve knowledge as
 * the channel's user, build the prompt (our system prompt, home context and
 * knowledge as tagged data, the conversation window under its hard token
 * budget), call the LLM (with at most one web search), take out its
 * directives (`URGENT:`, `REMEMBER:`), and queue the reply to the channel
 * the message came from. Internal to the agent folder.
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";
import type { ConfigSnapshot } from "../config/manager.ts";
import { isAcknowledgement } from "../guard/acknowledge.ts";
import { acknowledgedText } from "../guard/templates.ts";
import type { AcceptedMessage } from "../inbound/app.ts";
import type { ContextItem } from "../ingest/context.ts";
import { LlmError } from "../llm/errors.ts";
import type { EnqueueResult, OutboundMessage } from "../outbox/mod.ts";
import type { AgentOptions } from "./agent.ts";
import { llmFailureNotice, NOTICES } from "./notices.ts";
import type { ProactiveGate } from "./proactive.ts";
import type { LocalTime } from "../../common/local_time.ts";
import { parseChannel } from "../../common/policy/household.ts";
import {
  type HomeLine,
  type KnowledgeSnippet,
  parseReply,
  systemMessage,
  systemPrompt,
} from "./prompt.ts";
import { maybeSummarize } from "./_summarize.ts";
import { buildWindow } from "./window.ts";
import { searchTerms } from "../knowledge/search_terms.ts";

/** What a turn uses of the agent. */
export interface TurnContext {
  /** The agent's options (config, memory, LLM, tools, knowledge, roles). */
  o: AgentOptions;
  log: Logger;
  /** Clock (ms). */
  now(): number;
  /** The household's clock and language (policy.yaml `household`). */
  time(): LocalTime;
  /** Home context lines, newest last. */
  homeContext(): HomeLine[];
  /** Recent lines of a group not addressed to joi (context only), oldest first. */
  groupChat(channel: string): string[];
  /** Queues one message through the outbox (refusals logged as security events). */
  send(m: OutboundMessage, what: string): EnqueueResult;
}

/** Tokens reserved for the model's answer inside the LLM context. */
const ANSWER_RESERVE = 1024;

/** The prompt budget: the smaller of memory.context_tokens and the LLM's context less the answer. */
function promptBudget(snap: ConfigSnapshot): number {
  const llmCtx = snap.policies.llm.context_tokens - ANSWER_RESERVE;
  return Math.max(256, Math.min(snap.policies.policy.memory.context_tokens, llmCtx));
}

/** True when `m` gets an answer: text, a voice note not transcribed, or an acknowledgement. */
export function willAnswer(m: AcceptedMessage): boolean {
  const c = m.message.content;
  return m.acknowledged.length > 0 || m.text.trim() !== "" ||
    (c.type === "voice" && c.voice_transcription_failed);
}

/**
 * `text` within `max` characters: whole when it fits, else cut at the last
 * sentence or line end that leaves room for the {@link NOTICES.cut} note.
 */
export function fitReply(text: string, max: number): string {
  const chars = Array.from(text);
  if (chars.length <= max) return text;
  const room = chars.slice(0, Math.max(0, max - Array.from(NOTICES.cut).length)).join("");
  const end = Math.max(
    room.lastIndexOf(". "),
    room.lastIndexOf("\n"),
    room.lastIndexOf("! "),
    room.lastIndexOf("? "),
  );
  return (end > room.length / 2 ? room.slice(0, end + 1) : room).trimEnd() + NOTICES.cut;
}

/** Answers one accepted message, to the channel it came from. */
export async function answerMessage(t: TurnContext, m: AcceptedMessage): Promise<void> {
  const { o, log } = t;
  const { channel, config: snap } = m;
  const conv = m.message.conversation.id;
  const c = m.message.content;
  const replyBase = {
    channel,
    priority: "normal" as const,
    kind: "reply" as const,
    replyTo: m.message.message_id,
    conversationId: conv,
    // spoken back when spoken to (the mesh speaks it when TTS is configured)
    voiceResponse: c.type === "voice" && !c.voice_transcription_failed,
  };
  if (c.type === "voice" && c.voice_transcription_failed) {
    log.info("voice_not_transcribed", { channel, reason: c.voice_failure_reason });
    t.send({ ...replyBase, text: NOTICES.voiceFailed, template: true }, "voice_failed");
    if (m.text.trim() === "") return; // a caption beside the note is still answered
  }
  if (m.acknowledged.length > 0) {
    const policy = snap.policies.policy;
    t.send({
      ...replyBase,
      text: acknowledgedText(m.acknowledged, t.time(), t.now()),
      template: true,
    }, "ack");
    // an acknowledgement needs no LLM; a quote-reply that says more is answered too
    if (m.text.trim() === "" || isAcknowledgement(m.text, policy.content.ack_words)) return;
  }
  if (m.text.trim() === "") return; // reactions, files without text: nothing to answer
  const store = o.memory.store(channel);
  await remember(
    log,
    () => store.appendTurn({ conversationId: conv, role: "user", sender: m.sender, text: m.text }),
  );
  const budget = promptBudget(snap);
  let knowledge: KnowledgeSnippet[] = [];
  const terms = searchTerms(m.text);
  if (o.retrieve && terms !== "") {
    try {
      knowledge = await o.retrieve(channel, terms);
    } catch (e) {
      log.warn("knowledge_retrieve_failed", { channel, error: (e as Error).message });
    }
  }
  const state = await store.conversation(conv);
  const facts = await store.facts(20);
  const tools = o.tools?.enabled("web_search") ? o.tools : undefined;
  const time = t.time();
  const prompt = (searchResults?: string) =>
    buildWindow(
      systemMessage({
        system: systemPrompt(time.language, { search: tools !== undefined && !searchResults }),
        language: time.language,
        now: time.long(t.now()),
        conversation: describe(channel, m.sender, m.message.conversation.type),
        homeContext: t.homeContext(),
        groupChat: t.groupChat(channel),
        knowledge,
        summary: state.summary?.text,
        facts,
        searchResults,
        budget: Math.floor(budget * 0.6),
      }),
      state.turns.map((turn) => ({ role: turn.role, text: turn.text })),
      budget,
    );
  let raw: string;
  try {
    raw = (await o.llm.chat(prompt(), { channel })).content;
    const query = tools ? /^\s*SEARCH:\s*(.+)$/im.exec(raw)?.[1] : undefined;
    if (tools && query !== undefined) {
      // one search per message; its results are data in their own tag
      let results: string;
      try {
        results = await tools.call("web_search", { query: query.trim().slice(0, 300) });
      } catch (e) {
        results = `<search_results>\nno results (${(e as Error).message})\n</search_results>`;
      }
      const inner = results.replace(/^<search_results>\n?|\n?<\/search_results>$/g, "");
      raw = (await o.llm.chat(prompt(inner), { channel })).content
        .replace(/^\s*SEARCH:.*$/gim, "");
    }
  } catch (e) {
    const notice = llmFailureNotice(e);
    if (notice.what === "down_notice") {
      log.error("agent_llm_unavailable", { kind: e instanceof LlmError ? e.kind : "unknown" });
    }
    t.send({ ...replyBase, text: notice.text, template: true }, notice.what);
    return;
  }
  const parsed = parseReply(raw);
  for (const fact of parsed.remember) await saveFact(t, m, fact);
  if (parsed.text === "") {
    // joi said it would answer (the sender sees it typing): it does, briefly
    const text = parsed.remember.length > 0 ? NOTICES.noted : NOTICES.empty;
    t.send({ ...replyBase, text, template: true }, "empty_reply");
    return;
  }
  const max = snap.policies.policy.content.max_outbound_chars;
  const reply = { ...parsed, text: fitReply(parsed.text, max) };
  if (reply.text !== parsed.text) {
    log.info("reply_cut", { channel, chars: parsed.text.length, max });
  }
  const res = t.send({ ...replyBase, text: reply.text }, "reply");
  if (!res.accepted) {
    t.send({ ...replyBase, text: NOTICES.refused, template: true }, "refused_notice");
  } else {
    await remember(log, () =>
      store.appendTurn({
        conversationId: conv,
        role: "assistant",
        sender: "joi",
        text: reply.text,
      }));
  }
  if (reply.urgent && res.accepted) escalate(t, m);
  await maybeSummarize({ store, llm: o.llm, log }, snap, channel, conv, budget);
}

/** Considers a short message to the owner after a change at home (gated: per day, quiet hours). */
export async function proactiveTurn(
  t: TurnContext,
  gate: ProactiveGate,
  channel: string,
  item: ContextItem,
): Promise<void> {
  const allowed = gate.allow(false);
  if (!allowed.allowed) {
    t.log.info("proactive_suppressed", { reason: allowed.reason, kind: item.kind });
    return;
  }
  const budget = promptBudget(t.o.config());
  const time = t.time();
  const system = systemMessage({
    language: time.language,
    now: time.long(t.now()),
    conversation: `a private chat with ${t.o.roles.owner}; you may start a conversation`,
    homeContext: t.homeContext(),
    knowledge: [],
    facts: [],
    budget: Math.floor(budget * 0.6),
  });
  const ask = {
    role: "user" as const,
    text:
      "(system) Something changed at home (see the newest home context). If it is worth a short, " +
      "friendly message to the owner, write it. Otherwise answer exactly: NOTHING",
  };
  let raw: string;
  try {
    raw = (await t.o.llm.chat(buildWindow(system, [ask], budget), { channel })).content;
  } catch {
    return; // proactive chatter is optional
  }
  const reply = parseReply(raw);
  if (reply.text === "" || /^nothing\.?$/i.test(reply.text)) return;
  t.send({ channel, text: reply.text, priority: "normal", kind: "proactive" }, "proactive");
}

/**
 * `URGENT:` from the owner (outside the critical channel): the critical group
 * is told, as the rate-limited escalated kind, that something urgent was
 * raised and where, never what (the answer may hold the private knowledge of
 * the channel it was written for).
 */
function escalate(t: TurnContext, m: AcceptedMessage): void {
  const critical = t.o.roles.criticalChannel;
  if (m.channel === critical) return;
  if (m.sender !== t.o.roles.owner) {
    t.log.info("escalation_not_allowed", { channel: m.channel, sender: m.sender });
    return;
  }
  t.send({
    channel: critical,
    text: NOTICES.escalated(channelName(m.channel), m.message.conversation.type === "direct"),
    priority: "critical",
    kind: "escalated",
    template: true,
  }, "escalation");
}

/** A channel as people call it: `owner's private chat with Joi`, `the family group`. */
function channelName(channel: string): string {
  const c = parseChannel(channel);
  if (c === undefined) return `the ${channel} conversation`;
  if (c.kind === "group") return `the ${c.group} group`;
  return c.kind === "private"
    ? `${c.recipient}'s private chat with Joi`
    : `${c.recipient}'s own group with Joi`;
}

/** `REMEMBER:` keeps a fact in the channel's memory and its knowledge folder, never another's. */
async function saveFact(t: TurnContext, m: AcceptedMessage, fact: string): Promise<void> {
  const conv = m.message.conversation.id;
  await remember(t.log, () =>
    t.o.memory.store(m.channel).appendFact({
      conversationId: conv,
      sender: m.sender,
      text: fact,
    }));
  if (!t.o.saveKnowledge) return;
  try {
    // always the channel the message came from: the writer refuses any other folder
    t.o.saveKnowledge(m.channel, { title: fact.slice(0, 80), body: fact });
  } catch (e) {
    t.log.warn("knowledge_save_failed", { channel: m.channel, error: (e as Error).message });
  }
}

async function remember(log: Logger, fn: () => Promise<unknown>): Promise<void> {
  try {
    await fn();
  } catch (e) {
    log.error("memory_write_failed", { error: (e as Error).message });
  }
}

function describe(channel: string, sender: string, type: "direct" | "group"): string {
  if (type === "direct") return `a private chat with ${sender} (channel ${channel})`;
  return `the group channel ${channel}; this message is from ${sender}`;
}
