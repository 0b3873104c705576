/**
 * The agent: always running, it reacts to messages (handed over by the
 * inbound API) and to home context (pushed by the event path), and answers
 * through the outbox.
 *
 * The parts live in their own files: the per-channel queues (`_queue.ts`:
 * messages of one channel in order, channels independent), a turn
 * (`_turn.ts`: knowledge, prompt, LLM, directives, the reply to the channel
 * the message came from; no text of the model or of the user ever chooses a
 * channel or recipient), summaries (`_summarize.ts`) and the fixed notices
 * (`notices.ts`). Escalation goes to the critical channel only as the
 * outbox's rate-limited `escalated` kind; when the LLM is busy or down the
 * user gets a clear, honest reply; critical alerting never depends on the
 * agent.
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";
import type { HouseholdRoles } from "../../common/policy/household.ts";
import type { ConfigSnapshot } from "../config/manager.ts";
import type { AcceptedMessage, MessageSink } from "../inbound/app.ts";
import type { ContextItem } from "../ingest/context.ts";
import type { LlmClient } from "../llm/client.ts";
import type { MemoryStores } from "../memory/stores.ts";
import type { EnqueueResult, OutboundMessage } from "../outbox/mod.ts";
import type { ToolRouter } from "../tools/router.ts";
import { LocalTime } from "../../common/local_time.ts";
import { GroupContext } from "./group_context.ts";
import { ProactiveGate } from "./proactive.ts";
import type { HomeLine, KnowledgeSnippet } from "./prompt.ts";
import type { AlarmLog, AlarmRecord } from "../guard/alarms.ts";
import { typeName } from "../guard/templates.ts";
import { ChannelQueues } from "./_queue.ts";
import { answerMessage, proactiveTurn, type TurnContext, willAnswer } from "./_turn.ts";

/** The outbox as the agent uses it. */
export interface AgentOutbox {
  /** Checks and queues one message. */
  enqueue(m: OutboundMessage): EnqueueResult;
  /** Starts sending. */
  kick(): void;
}

/** Options of {@link Agent}. */
export interface AgentOptions {
  /** The configuration snapshot in force (for context events and notices). */
  config: () => ConfigSnapshot;
  /** Per-channel memory. */
  memory: MemoryStores;
  /** The LLM. */
  llm: LlmClient;
  /** The outbox. */
  outbox: AgentOutbox;
  /** Knowledge retrieval for a channel (run as its channel user by the knowledge caller). */
  retrieve?: ((channel: string, query: string) => Promise<KnowledgeSnippet[]>) | undefined;
  /** Knowledge write to the current channel's folder. */
  saveKnowledge?: ((channel: string, doc: { title: string; body: string }) => void) | undefined;
  /** External tools (web search). */
  tools?: ToolRouter | undefined;
  /** Logger. */
  log: Logger;
  /** The household's owner, owner's DM and critical channel. */
  roles: HouseholdRoles;
  /** Most queued messages per channel before new ones are refused (default 50). */
  maxQueuePerChannel?: number | undefined;
  /** Home context items kept (default 50). */
  maxContextItems?: number | undefined;
  /** The alarm record: active and recently cleared alarms are home context in every channel. */
  alarms?: Pick<AlarmLog, "recent"> | undefined;
  /** Clock. */
  now?: (() => number) | undefined;
}

/** The agent. Implements the inbound {@link MessageSink} and the event path's ContextSink. */
export class Agent implements MessageSink {
  #o: AgentOptions;
  #queues: ChannelQueues;
  #context: ContextItem[] = [];
  #groupChat = new GroupContext();
  #proactive: ProactiveGate;
  #turn: TurnContext;

  /** Creates the agent. */
  constructor(o: AgentOptions) {
    this.#o = o;
    const now = o.now ?? Date.now;
    const policy = () => o.config().policies.policy;
    this.#queues = new ChannelQueues(o.maxQueuePerChannel ?? 50, o.log);
    this.#proactive = new ProactiveGate(
      policy().rate_limits.proactive.per_day,
      () => ({ ...policy().quiet_hours, timezone: policy().household.timezone }),
      now,
    );
    this.#turn = {
      o,
      log: o.log,
      now,
      time: () => this.#time(),
      homeContext: () => this.homeContext(),
      groupChat: (channel) => {
        const time = this.#time();
        return this.#groupChat.lines(channel, now(), (at) => time.when(at, now()));
      },
      send: (m, what) => this.#send(m, what),
    };
  }

  /** Queues an accepted message; false when the channel's queue is full. */
  accept(m: AcceptedMessage): boolean {
    if (!willAnswer(m)) {
      // a reaction, a picture without words: nothing to answer (in a group: context)
      if (m.message.conversation.type === "group") this.note(m);
      return false;
    }
    return this.#queues.enqueue(m.channel, () => answerMessage(this.#turn, m));
  }

  /** A group line not addressed to joi: kept as that group's recent context, nothing else. */
  note(m: AcceptedMessage): void {
    const now = (this.#o.now ?? Date.now)();
    this.#groupChat.add(m.channel, m.message.sender.display_name ?? m.sender, m.text, now);
  }

  /** The event path's context sink: keeps the item as home context; may start a conversation. */
  push(item: ContextItem): void {
    this.#context.push(item);
    const max = this.#o.maxContextItems ?? 50;
    if (this.#context.length > max) this.#context.splice(0, this.#context.length - max);
    if (isProactiveTrigger(item)) {
      const channel = this.#o.roles.ownerDm;
      this.#queues.enqueue(
        channel,
        () => proactiveTurn(this.#turn, this.#proactive, channel, item),
      );
    }
  }

  /** Resolves when every queued message has been handled (tests, shutdown). */
  idle(): Promise<void> {
    return this.#queues.idle();
  }

  /**
   * Home context lines at the household's local time, newest last: the
   * context items (outside text beside the template, shown quoted and
   * tagged), then the alarms active or cleared within a day (last, so a full
   * context block cuts them last).
   */
  homeContext(): HomeLine[] {
    const time = this.#time();
    const now = (this.#o.now ?? Date.now)();
    const lines: HomeLine[] = this.#context.map((c) => {
      const text = `${time.when(c.at, now)} ${c.kind}: ${c.summary}`;
      return c.data !== undefined ? { text, untrusted: c.data } : text;
    });
    const alarms = this.#o.alarms?.recent(now - ALARM_MEMORY_MS, 10) ?? [];
    for (const a of alarms.reverse()) lines.push(alarmLine(a, time, now));
    return lines;
  }

  /** The household's clock and language (policy.yaml `household`, reloadable). */
  #time(): LocalTime {
    const h = this.#o.config().policies.policy.household;
    return new LocalTime(h.timezone, h.language);
  }

  /** Queue depth for /health. */
  queueDepth(): number {
    return this.#queues.depth();
  }

  #send(m: OutboundMessage, what: string): EnqueueResult {
    const res = this.#o.outbox.enqueue(m);
    if (res.accepted) {
      this.#o.outbox.kick();
    } else {
      this.#o.log.security("agent_output_refused", { what, channel: m.channel, rule: res.rule });
    }
    return res;
  }
}

/** How long a cleared alarm stays in the home context. */
const ALARM_MEMORY_MS = 24 * 3_600_000;

/** One alarm as a home context line: what, where, since when, acknowledged or not, cleared. */
export function alarmLine(a: AlarmRecord, time: LocalTime, now: number): HomeLine {
  const status = a.clearedAt !== null ? `cleared ${time.when(a.clearedAt, now)}` : "ACTIVE";
  const ack = a.acknowledgedAt !== null
    ? `acknowledged ${time.when(a.acknowledgedAt, now)}`
    : "not acknowledged";
  const text = `${time.when(a.startedAt, now)} alarm (${status}, ${ack}): ` +
    `${typeName(a.deviceType)} at ${a.device} (state ${a.state})`;
  return a.label ? { text, untrusted: a.label } : text;
}

/** Context items that may start a conversation: presence changes and weather summaries. */
export function isProactiveTrigger(item: ContextItem): boolean {
  if (item.kind === "weather_summary") return true;
  return item.kind === "event" && /^presence/i.test(item.device);
}
