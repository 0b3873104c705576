/**
 * joi's inbound API on 8443, called by the mesh only (joi's composition
 * root mounts it next to `GET /health`):
 *
 * - `POST /api/v1/message/inbound` (alias `/api/v1/signal/inbound`), signed
 *   with the mesh->joi key. Defense in depth on top of the mesh's checks:
 *   the channel comes only from `X-Validated-Channel` and must be listed in
 *   channel_users.yaml (default deny); the canonical sender must be an
 *   allowed identity whose registered number equals `sender.transport_id`;
 *   `X-Validated-Sender` must name the same sender; a DM must be the sender's
 *   own private channel and a group channel must be a known group's. Every
 *   refusal is a security event. Each message is shown to the guard's
 *   acknowledger, which acknowledges alarms only for the owner's replies in
 *   the critical group (`guard/acknowledge.ts`).
 * - `GET /config/identities` (signed, mesh address only): `{hash, config}`.
 *
 * The message is handed to the agent and answered at once
 * (`{received: true, will_respond}`); the reply goes out through the outbox.
 *
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import type { Logger } from "../../common/log.ts";
import { channelOfRecipient, type HouseholdRoles } from "../../common/policy/household.ts";
import type { RateLimiter } from "../../common/rate_limit.ts";
import { fail, jsonBody, ok, peerAddress } from "../../common/wire/mod.ts";
import type { ConfigManager, ConfigSnapshot } from "../config/manager.ts";
import type { Acknowledge, AckRequest } from "../guard/acknowledge.ts";
import type { AlarmRecord } from "../guard/alarms.ts";
import type { InboundLedger } from "./ledger.ts";
import { type InboundMessage, inboundMessageSchema, messageText } from "./schema.ts";

/** A message that passed every check, as the agent receives it. */
export interface AcceptedMessage {
  /** The validated body. */
  message: InboundMessage;
  /** The validated channel (`owner_private_dm`, `family_group`, ...). */
  channel: string;
  /** Its channel user (knowledge retrieval runs as this user). */
  channelUser: string;
  /** Canonical sender id. */
  sender: string;
  /** The text joi reads (text, transcription or caption). */
  text: string;
  /** The configuration snapshot the checks used. */
  config: ConfigSnapshot;
  /** Alarms this message acknowledged (critical group only), if any. */
  acknowledged: AlarmRecord[];
}

/** Where accepted messages go (the agent). */
export interface MessageSink {
  /** Queues the message; returns whether joi will respond. */
  accept(m: AcceptedMessage): boolean;
  /** Keeps a group line not addressed to joi as that group's context (no answer). */
  note?(m: AcceptedMessage): void;
}

/** Options of {@link createInboundApp}. */
export interface InboundAppOptions {
  /** The configuration manager. */
  config: ConfigManager;
  /** `signedRoutes(...)` for the mesh->joi direction (its allowedSources = the mesh). */
  auth: MiddlewareHandler;
  /** The mesh's address(es): the only callers of `/config/identities`. */
  meshSources: readonly string[];
  /** The agent. */
  sink: MessageSink;
  /** Inbound limit for non-owner senders (policy `rate_limits.inbound.others`). */
  inboundLimiter?: RateLimiter | undefined;
  /** Repeated message ids. */
  ledger?: InboundLedger | undefined;
  /** Acknowledges active alerts on the owner's ack words (guard's `createAcknowledger`). */
  acknowledge?: Acknowledge | undefined;
  /** The household: the owner (unlimited, ack words) and the critical channel (unlimited). */
  roles: HouseholdRoles;
  /** Logger. */
  log: Logger;
}

const INBOUND_PATHS = ["/api/v1/message/inbound", "/api/v1/signal/inbound"] as const;

/** Builds the signed routes of the 8443 app (mounted by joi's root with `app.route`). */
export function createInboundApp(o: InboundAppOptions): Hono {
  const app = new Hono();
  const log = o.log;
  const ownerId = o.roles.owner;

  app.use("/api/*", o.auth);
  app.use("/config/*", o.auth);

  app.get("/config/identities", (c) => {
    const peer = peerAddress(c);
    if (peer === undefined || !o.meshSources.includes(peer)) {
      log.security("config_identities_refused", { peer: peer ?? "unknown" });
      return fail(c, "forbidden", "only the mesh may read the identity configuration");
    }
    const snap = o.config.current();
    return ok(c, { hash: snap.identitiesHash, config: snap.policies.identities });
  });

  for (const path of INBOUND_PATHS) {
    app.post(path, (c) => {
      const snap = o.config.current(); // one snapshot for the whole message
      const schema = inboundMessageSchema(snap.policies.policy.content.max_inbound_chars);
      const parsed = schema.safeParse(jsonBody(c));
      if (!parsed.success) {
        const issue = parsed.error.issues[0];
        const where = issue?.path.length ? issue.path.join(".") : "(body)";
        return fail(c, "invalid_request", `${where}: ${issue?.message ?? "invalid body"}`);
      }
      const m = parsed.data;
      const refuse = (event: string, message: string, fields: Record<string, unknown> = {}) => {
        log.security(event, {
          message_id: m.message_id,
          sender: m.sender.id,
          sender_hash: c.req.header("x-signal-sender-hash"),
          ...fields,
        });
        return fail(c, "forbidden", message);
      };
      const channel = c.req.header("x-validated-channel");
      if (!channel) return refuse("inbound_no_channel", "X-Validated-Channel is missing");
      const channelUser = Object.hasOwn(snap.policies.channelUsers.allowed_channel_users, channel)
        ? snap.policies.channelUsers.allowed_channel_users[channel]
        : undefined;
      if (channelUser === undefined) {
        return refuse("inbound_unknown_channel", "channel is not allowed", {
          channel: channel.slice(0, 64),
        });
      }
      const validatedSender = c.req.header("x-validated-sender");
      if (validatedSender !== m.sender.id) {
        return refuse(
          "inbound_sender_header_mismatch",
          "X-Validated-Sender does not match sender.id",
          { channel },
        );
      }
      const binding = snap.bindings.get(m.sender.id);
      if (binding === undefined) {
        return refuse("inbound_unknown_sender", "sender is not an allowed identity", { channel });
      }
      if (binding !== m.sender.transport_id) {
        return refuse(
          "inbound_binding_mismatch",
          "sender.transport_id does not match its registered binding",
          {
            channel,
          },
        );
      }
      if (!channelFits(snap, m, channel)) {
        return refuse("inbound_channel_mismatch", "channel does not fit the conversation", {
          channel,
          conversation_type: m.conversation.type,
        });
      }
      const configHash = c.req.header("x-config-hash");
      if (configHash && configHash !== snap.identitiesHash) {
        log.info("mesh_config_stale", { mesh_hash: configHash.slice(0, 16) });
      }
      if (o.ledger && !o.ledger.firstSeen(`${m.sender.id}:${m.message_id}`)) {
        log.info("inbound_duplicate", { message_id: m.message_id, channel });
        return ok(c, { received: true, will_respond: false, duplicate: true });
      }
      // per sender in every group; in DMs everyone but the owner (as the mesh limits)
      const ownerDm = m.conversation.type === "direct" && m.sender.id === ownerId;
      if (!ownerDm && o.inboundLimiter) {
        const v = o.inboundLimiter.check(`${channel}:${m.sender.id}`);
        if (!v.allowed) {
          log.warn("inbound_rate_limited", {
            channel,
            sender: m.sender.id,
            retry_after: v.retryAfterSeconds,
          });
          return fail(c, "rate_limited", `too many messages; wait ${v.retryAfterSeconds} s`, {
            retryAfter: v.retryAfterSeconds,
          });
        }
      }
      const accepted = {
        message: m,
        channel,
        channelUser,
        sender: m.sender.id,
        text: messageText(m),
        config: snap,
        acknowledged: [] as AcceptedMessage["acknowledged"],
      };
      // an acknowledgement counts whether or not the line addressed joi (in a critical
      // group of several people, the owner's "ok" or 👍 mentions nobody)
      accepted.acknowledged = o.acknowledge?.(ackRequest(m, channel)) ?? [];
      if (m.addressed === false && m.conversation.type === "group") {
        // the group's rule says this line is not for joi: context, no model call, and
        // no answer but the acknowledgement's
        o.sink.note?.(accepted);
        log.info("inbound_context", {
          message_id: m.message_id,
          channel,
          sender: m.sender.id,
          acknowledged: accepted.acknowledged.length,
        });
        if (accepted.acknowledged.length === 0) {
          return ok(c, { received: true, will_respond: false });
        }
        accepted.text = "";
      }
      if (accepted.acknowledged.length > 0) {
        log.info("alerts_acknowledged", { count: accepted.acknowledged.length, channel });
      }
      const willRespond = o.sink.accept(accepted);
      log.info("inbound_accepted", {
        message_id: m.message_id,
        channel,
        sender: m.sender.id,
        content_type: m.content.type,
        chars: accepted.text.length,
        will_respond: willRespond,
      });
      return ok(c, { received: true, will_respond: willRespond });
    });
  }

  app.notFound((c) => fail(c, "not_found", `no route ${c.req.method} ${c.req.path}`));
  app.onError((e, c) => {
    log.error("inbound_error", { error: e.message, path: c.req.path });
    return fail(c, "internal_error", "internal error");
  });
  return app;
}

/** What acknowledgement looks at: the typed text (never a transcription), the quote, the reaction. */
function ackRequest(m: InboundMessage, channel: string): AckRequest {
  const c = m.content;
  return {
    channel,
    sender: m.sender.id,
    text: c.type === "voice" ? "" : c.text ?? "",
    voice: c.type === "voice",
    ...(m.quote?.joi_message_id ? { quotes: m.quote.joi_message_id } : {}),
    ...(c.type === "reaction" && c.reaction
      ? {
        reaction: {
          emoji: c.reaction,
          ...(c.reaction_to?.joi_message_id ? { to: c.reaction_to.joi_message_id } : {}),
        },
      }
      : {}),
  };
}

/** A DM must be the sender's own private channel; a group channel must be a known group's. */
function channelFits(snap: ConfigSnapshot, m: InboundMessage, channel: string): boolean {
  if (m.conversation.type === "direct") {
    return channel === channelOfRecipient(m.sender.id, "private");
  }
  return Object.values(snap.policies.identities.groups).some((g) => g.channel === channel);
}
