/**
 * Parsing of signal-cli `receive` notifications into what the mesh acts on.
 *
 * Both notification forms are read (`params.envelope` and the
 * `subscribeReceive` form `params.result.envelope`). Only data messages are
 * conversation: receipts, typing indicators, sync, story, call and edit
 * messages are classified as `ignored` and never reach joi. A notification
 * carrying only `exception` is classified as `exception`. Nothing here throws
 * on malformed input: the worst case is `{kind: "malformed"}`.
 *
 * @module
 */

/** An attachment as signal-cli describes it. */
export interface Attachment {
  /** The MIME type, or null when the sender's client gave none (older clients, voice notes). */
  contentType: string | null;
  filename: string | null;
  id: string;
  size: number | null;
  caption: string | null;
}

/** A conversation message from one sender. */
export interface InboundMessage {
  kind: "message";
  /** `sourceNumber`; null when the sender hides it (match by uuid then). */
  senderNumber: string | null;
  /** `sourceUuid` (ACI). */
  senderUuid: string | null;
  /** `sourceName` (display name the sender chose; untrusted). */
  senderName: string | null;
  /** Envelope timestamp (ms): the message id together with the sender. */
  timestamp: number;
  /** Base64 group id, or null for a direct message. */
  groupId: string | null;
  /** Text, or null when there is none. */
  text: string | null;
  /** Attachments (possibly empty). */
  attachments: Attachment[];
  /** A reaction, when the message is one: the emoji and the message it is to. */
  reaction: {
    emoji: string;
    /** The reacted-to message's timestamp (its id together with its author). */
    targetTimestamp: number | null;
    targetAuthorNumber: string | null;
    targetAuthorUuid: string | null;
  } | null;
  /** A quoted message: its timestamp (`id`), text and author. */
  quote: {
    id: number;
    text: string | null;
    authorNumber: string | null;
    authorUuid: string | null;
  } | null;
  /** Mentions (`mentions[]`): the text holds U+FFFC at each. */
  mentions: Mention[];
  /** The account the daemon runs for (`params.account`), when given. */
  account: string | null;
}

/** A mention as signal-cli prints it; either address may be null. */
export interface Mention {
  number: string | null;
  uuid: string | null;
  start: number;
  length: number;
}

/** Result of {@link parseNotification}. */
export type ParsedNotification =
  | InboundMessage
  | { kind: "ignored"; reason: string; senderUuid: string | null }
  | { kind: "exception"; type: string; message: string }
  | { kind: "malformed"; reason: string };

const NON_CONVERSATION = [
  "receiptMessage",
  "typingMessage",
  "syncMessage",
  "storyMessage",
  "callMessage",
  "editMessage",
] as const;

function obj(v: unknown): Record<string, unknown> | null {
  return typeof v === "object" && v !== null && !Array.isArray(v)
    ? v as Record<string, unknown>
    : null;
}

function str(v: unknown): string | null {
  return typeof v === "string" ? v : null;
}

function positive(v: unknown): number | null {
  return typeof v === "number" && Number.isSafeInteger(v) && v > 0 ? v : null;
}

/** Parses one JSON-RPC notification from signal-cli. */
export function parseNotification(method: string, rawParams: unknown): ParsedNotification {
  if (method !== "receive") {
    return { kind: "ignored", reason: `method ${method}`, senderUuid: null };
  }
  let params = obj(rawParams);
  if (params && obj(params.result) && "subscription" in params) params = obj(params.result);
  if (!params) return { kind: "malformed", reason: "receive without params" };
  const envelope = obj(params.envelope);
  const exception = obj(params.exception);
  if (!envelope) {
    if (exception) {
      return {
        kind: "exception",
        type: str(exception.type) ?? "unknown",
        message: str(exception.message) ?? "",
      };
    }
    return { kind: "malformed", reason: "receive without envelope" };
  }
  const senderUuid = str(envelope.sourceUuid);
  let senderNumber = str(envelope.sourceNumber);
  if (senderNumber === null) {
    // `source` is deprecated: it holds the number, or the uuid when hidden.
    const source = str(envelope.source);
    if (source?.startsWith("+")) senderNumber = source;
  }
  for (const k of NON_CONVERSATION) {
    if (envelope[k] !== undefined && envelope[k] !== null) {
      return { kind: "ignored", reason: k, senderUuid };
    }
  }
  const data = obj(envelope.dataMessage);
  if (!data) return { kind: "ignored", reason: "no dataMessage", senderUuid };
  const timestamp = envelope.timestamp;
  if (typeof timestamp !== "number" || !Number.isSafeInteger(timestamp) || timestamp <= 0) {
    return { kind: "malformed", reason: "envelope.timestamp is not a positive integer" };
  }
  if (senderUuid === null && senderNumber === null) {
    return { kind: "malformed", reason: "envelope has neither sourceUuid nor sourceNumber" };
  }
  const group = obj(data.groupInfo);
  const groupId = group ? str(group.groupId) : null;
  if (group && groupId === null) return { kind: "malformed", reason: "groupInfo without groupId" };
  if (group && group.type === "UPDATE" && data.message == null) {
    return { kind: "ignored", reason: "group update", senderUuid };
  }
  if (data.remoteDelete) return { kind: "ignored", reason: "remoteDelete", senderUuid };
  const attachments: Attachment[] = [];
  if (Array.isArray(data.attachments)) {
    for (const a of data.attachments) {
      const o = obj(a);
      if (!o || typeof o.id !== "string") continue;
      attachments.push({
        contentType: str(o.contentType),
        filename: str(o.filename),
        id: o.id,
        size: typeof o.size === "number" ? o.size : null,
        caption: str(o.caption),
      });
    }
  }
  const r = obj(data.reaction);
  const reaction = r && typeof r.emoji === "string" && !r.isRemove
    ? {
      emoji: r.emoji,
      targetTimestamp: positive(r.targetSentTimestamp),
      targetAuthorNumber: str(r.targetAuthorNumber),
      targetAuthorUuid: str(r.targetAuthorUuid),
    }
    : null;
  const q = obj(data.quote);
  const quoteId = q ? positive(q.id) : null;
  const quote = q && quoteId !== null
    ? {
      id: quoteId,
      text: str(q.text),
      authorNumber: str(q.authorNumber),
      authorUuid: str(q.authorUuid),
    }
    : null;
  const mentions: Mention[] = [];
  if (Array.isArray(data.mentions)) {
    for (const m of data.mentions) {
      const o = obj(m);
      if (!o || typeof o.start !== "number" || typeof o.length !== "number") continue;
      const number = str(o.number);
      const uuid = str(o.uuid);
      if (number === null && uuid === null) continue;
      mentions.push({ number, uuid, start: o.start, length: o.length });
    }
  }
  const text = str(data.message);
  if ((text === null || text === "") && attachments.length === 0 && !reaction) {
    return { kind: "ignored", reason: "empty data message", senderUuid };
  }
  return {
    kind: "message",
    senderNumber,
    senderUuid,
    senderName: str(envelope.sourceName),
    timestamp,
    groupId,
    text: text === "" ? null : text,
    attachments,
    reaction,
    quote,
    mentions,
    account: str(params.account),
  };
}

/** The content type of a long text's attachment (a body over Signal's limit). */
export const LONG_TEXT_TYPE = "text/x-signal-plain";

/** True for the attachment that carries the whole text of a long message. */
export function isLongText(a: Attachment): boolean {
  return a.contentType?.toLowerCase() === LONG_TEXT_TYPE;
}

/**
 * True for a phone's voice note: `audio/aac` (or another audio type) with
 * no file name. signal-cli has no voice-note flag. An attachment without a
 * content type may be one too (older clients omit it): its bytes decide
 * (`voice/sniff.ts`).
 */
export function isVoiceNote(a: Attachment): boolean {
  return a.contentType !== null && a.contentType.toLowerCase().startsWith("audio/") &&
    a.filename === null;
}

/** True for an attachment that may be a voice note whose client gave no content type. */
export function isUntypedNote(a: Attachment): boolean {
  return a.contentType === null && a.filename === null;
}
