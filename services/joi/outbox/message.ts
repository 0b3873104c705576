/**
 * The outbox message model, shared by the event path and the agent, and its
 * mapping onto the mesh's `POST /api/v1/message/outbound` body (contracts.md).
 *
 * @module
 */
import { isPrivateChannel } from "../../common/policy/household.ts";

/** Why a message is sent; decides rate limits, content rules and staleness. */
export type MessageKind = "event_critical" | "escalated" | "reply" | "proactive";

/** A message handed to the outbox. */
export interface OutboundMessage {
  /** Channel it goes to (`critical_group`, `owner_private_dm`, `family_group`...). */
  channel: string;
  /** Canonical recipient id; derived from the channel when absent. */
  recipient?: string;
  /** The text (checked against the outbound content rules). */
  text: string;
  /** `critical` alerts are never dropped as stale. */
  priority: "normal" | "critical";
  /** Why it is sent. */
  kind: MessageKind;
  /** When it was raised (ms); default now. */
  createdAt?: number;
  /** Time to live (ms) for non-critical messages; default from policy by kind. */
  ttlMs?: number;
  /** A fixed critical template: content patterns are skipped (length/printable still apply). */
  template?: boolean;
  /** Mesh message id this replies to. */
  replyTo?: string;
  /** Conversation id for the mesh, when it is not the channel. */
  conversationId?: string;
  /** Ask the mesh for a voice response. */
  voiceResponse?: boolean;
  /** Not sent before this time (ms): a watch message waiting for quiet hours to end. */
  notBefore?: number;
}

/** A queued message as the store holds it. */
export interface QueuedMessage extends
  Required<
    Omit<
      OutboundMessage,
      | "replyTo"
      | "conversationId"
      | "voiceResponse"
      | "ttlMs"
      | "recipient"
      | "template"
      | "createdAt"
      | "notBefore"
    >
  > {
  id: number;
  /** Idempotency id sent as `X-Request-ID`, stable across retries. */
  deliveryId: string;
  recipient: string;
  createdAt: number;
  ttlMs: number | null;
  template: boolean;
  replyTo: string | null;
  conversationId: string | null;
  voiceResponse: boolean;
  status: "queued" | "sent" | "dropped" | "failed";
  attempts: number;
  nextAttemptAt: number;
  lastError: string | null;
  sentAt: number | null;
}

/** The mesh's outbound request body (contracts.md, "mesh, port 8444"). */
export interface MeshOutboundBody {
  transport: "signal";
  recipient: { id: string };
  priority: "normal" | "critical";
  delivery: { target: "direct" } | { target: "group"; group_id: string };
  conversation_id?: string;
  content: { type: "text"; text: string };
  reply_to?: string;
  escalated: boolean;
  voice_response: boolean;
}

/**
 * Where a channel is delivered: a recipient's private channel is a direct
 * message to them; every other channel is a Signal group the mesh maps by
 * channel name.
 */
export function deliveryOf(channel: string): MeshOutboundBody["delivery"] {
  return isPrivateChannel(channel) ? { target: "direct" } : { target: "group", group_id: channel };
}

/** Builds the mesh body of a queued message with its final text. */
export function meshBody(m: QueuedMessage, text: string): MeshOutboundBody {
  return {
    transport: "signal",
    recipient: { id: m.recipient },
    priority: m.priority,
    delivery: deliveryOf(m.channel),
    conversation_id: m.conversationId ?? m.channel,
    content: { type: "text", text },
    ...(m.replyTo ? { reply_to: m.replyTo } : {}),
    escalated: m.kind === "escalated",
    voice_response: m.voiceResponse,
  };
}
