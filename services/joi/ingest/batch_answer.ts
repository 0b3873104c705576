/**
 * The answer joi gives a relay batch (`POST /api/v1/openhab/events`), as both
 * ends read it: the refused events, which refusals may be retried, and the
 * item a topic names. The judging itself is `batch.ts`; this module holds only
 * the contract, so the relay imports it without joi's ingest schemas.
 *
 * @module
 */
import type { ErrorCode } from "../../common/wire/envelope.ts";
import { cleanIdentifier } from "./identifier.ts";

/** One refused event of a batch. */
export interface RefusedEvent {
  /** Its index in `events`. */
  index: number;
  /** The item (or thing, channel) its topic names, when it names one. */
  item?: string;
  /** The contract's error code. */
  code: ErrorCode;
  /** What is wrong, naming the field. */
  reason: string;
  /** For `rate_limited`: seconds until it may be sent again. */
  retry_after?: number;
}

/** The `data` of a batch answer. */
export interface BatchAnswer {
  received: true;
  /** Indexes of the events joi has (handled, ignored as unused, or already had). */
  accepted: number[];
  /** The refused events, by index. */
  refused: RefusedEvent[];
  /** Accepted events that repeated a per-event `id` joi already had. */
  duplicates: number;
  /** Accepted events joi does not use (blocked items, unused actions, images). */
  skipped: number;
  /** Normalized events handled. */
  events: number;
  /** Outbound messages queued (critical alerts, warnings). */
  queued: number;
}

/** Refusal codes after which the same event may be accepted later. */
export const RETRYABLE_CODES: ReadonlySet<string> = new Set(["rate_limited", "internal_error"]);

/** True when an event refused with `code` may be sent again. */
export function isRetryable(code: string): boolean {
  return RETRYABLE_CODES.has(code);
}

/** The item, thing or channel an openHAB topic names (for logs), if any. */
export function topicItem(topic: unknown): string | undefined {
  if (typeof topic !== "string") return undefined;
  const segs = topic.split("/");
  if (segs[0] !== "openhab" || segs.length < 4) return undefined;
  const name = segs[1] === "items" && segs.length === 5 ? segs[3] : segs[2];
  return name ? cleanIdentifier(name, 120) : undefined;
}
