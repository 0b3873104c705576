/**
 * The inbound message of contracts.md ("joi, port 8443"), as the mesh posts
 * it. Unknown fields are refused so a protocol drift is noticed, not ignored.
 *
 * @module
 */
import { z } from "zod";

const id = z.string().min(1).max(200);
const time = z.union([z.string().min(1).max(64), z.number().int().nonnegative()]);

let built: { maxChars: number; schema: ReturnType<typeof buildSchema> } | undefined;

/**
 * The schema with the policy's `content.max_inbound_chars`, built once per
 * limit: building (and zod's first-parse compilation) costs ~60 times a parse,
 * so it must not happen per message.
 */
export function inboundMessageSchema(maxChars: number): ReturnType<typeof buildSchema> {
  if (built?.maxChars !== maxChars) built = { maxChars, schema: buildSchema(maxChars) };
  return built.schema;
}

/** joi's outbox delivery id (`X-Request-ID` of the outbound request that sent a message). */
const joiId = z.uuid();

/** The message a reaction is to: Signal's id, and joi's own id when joi sent it. */
const target = z.object({ message_id: id, joi_message_id: joiId.optional() }).strict();

function buildSchema(maxChars: number) {
  const text = z.string().max(maxChars, { error: `longer than max_inbound_chars (${maxChars})` });
  return z.object({
    transport: z.literal("signal"),
    message_id: id,
    sender: z.object({
      id: z.string().regex(/^[a-z][a-z0-9_]{0,31}$/, { error: "not a canonical recipient id" }),
      transport_id: z.string().min(1).max(64),
      display_name: z.string().max(200).optional(),
    }).strict(),
    conversation: z.object({ type: z.enum(["direct", "group"]), id }).strict(),
    priority: z.enum(["normal", "critical"]),
    content: z.object({
      type: z.enum(["text", "voice", "image", "file", "reaction"]),
      text: text.optional(),
      voice_transcription: text.nullable().optional(),
      voice_transcription_failed: z.boolean(),
      voice_failure_reason: z.string().max(200).optional(),
      voice_duration_ms: z.number().int().nonnegative().optional(),
      caption: text.optional(),
      reaction: z.string().max(64).optional(),
      /** What the reaction is to (the mesh maps a message joi sent back to joi's id). */
      reaction_to: target.optional(),
    }).strict(),
    metadata: z.object({ mesh_received_at: time, original_format: z.string().max(200) }).strict(),
    timestamp: time,
    quote: z.object({ message_id: id, text: text, joi_message_id: joiId.optional() }).strict()
      .optional(),
    // false: a group line not addressed to joi (the group's respond rule): context only
    addressed: z.boolean().optional(),
  }).strict();
}

/** A validated inbound message. */
export type InboundMessage = z.infer<ReturnType<typeof inboundMessageSchema>>;

/** The text joi reads from a message: text, else transcription, else caption. */
export function messageText(m: InboundMessage): string {
  const c = m.content;
  if (c.type === "voice") {
    return [c.voice_transcription ?? "", c.text ?? ""].filter((s) => s !== "").join("\n");
  }
  return [c.text ?? "", c.caption ?? ""].filter((s) => s !== "").join("\n");
}
