/**
 * Per-event acceptance of a relay batch (`POST /api/v1/openhab/events` with
 * `events: [...]`). Each event is judged on its own (its shape, its size, its
 * normalization, the rate limit, its handling) and the answer lists, by index,
 * what was accepted and what was refused with the contract's error code and
 * the reason. A batch never fails because of a neighbour: only a bad envelope
 * (not JSON, no `events` array, a foreign source, a bad signature, a repeated
 * `event_id`) refuses the request as a whole.
 *
 * The answer's `data` (status 200, in the contract envelope):
 *
 * ```json
 * {"received": true, "accepted": [0, 1, 3], "duplicates": 0, "skipped": 1,
 *  "refused": [{"index": 2, "item": "Hall_Button", "code": "invalid_request",
 *               "reason": "events[2].payload: payload is not valid JSON ..."},
 *              {"index": 4, "item": "Porch_Contact", "code": "rate_limited",
 *               "reason": "...", "retry_after": 120}],
 *  "events": 3, "queued": 1}
 * ```
 *
 * `accepted` holds every event joi has now (handled, ignored as unused, or a
 * repeat of a per-event `id` it already had); `refused` the others. A refusal
 * with a code of `RETRYABLE_CODES` (`batch_answer.ts`) may succeed later (`rate_limited`
 * after `retry_after` seconds); any other refusal is final. Critical events
 * are never refused for a rate limit and never count against one.
 *
 * @module
 */
import type { ErrorCode } from "../../common/wire/envelope.ts";
import { type RefusedEvent, topicItem } from "./batch_answer.ts";
import { IngestError } from "./errors.ts";
import { type BusContext, type BusEvent, normalizeBusEvent } from "./openhab_events.ts";
import { formatIssues } from "./schemas.ts";
import type { DeviceEvent } from "./types.ts";

/** One event of a batch that passed its own checks. */
export interface JudgedEvent {
  index: number;
  item?: string;
  /** The relay's per-event id (idempotency across retries), when given. */
  id?: string;
  events: DeviceEvent[];
  /** Why it was ignored, when it normalizes to nothing joi uses. */
  skipped?: string;
}

/** A per-event schema, as zod's `safeParse` gives it. */
export interface EventSchema {
  safeParse(
    x: unknown,
  ):
    | {
      success: true;
      data: BusEvent & { received_at?: number | undefined; id?: string | undefined };
    }
    | { success: false; error: import("zod").ZodError };
}

/** What {@link judgeEvents} needs. */
export interface JudgeContext {
  schema: EventSchema;
  maxEventBytes: number;
  batchId: string;
  source: string;
  stringMax: number;
  receivedAt: () => number;
  refuse: BusContext["refuse"];
  classes?: BusContext["classes"];
}

const encoder = new TextEncoder();

/**
 * Judges each event of a batch on its own: shape, size, normalization.
 * Returns the events that passed (in order) and the refusals.
 */
export function judgeEvents(
  events: readonly unknown[],
  ctx: JudgeContext,
): { passed: JudgedEvent[]; refused: RefusedEvent[] } {
  const passed: JudgedEvent[] = [];
  const refused: RefusedEvent[] = [];
  events.forEach((raw, index) => {
    const field = `events[${index}]`;
    const item = topicItem((raw as { topic?: unknown } | null)?.topic);
    const refuse = (code: ErrorCode, reason: string) =>
      refused.push({ index, ...(item ? { item } : {}), code, reason });
    const r = ctx.schema.safeParse(raw);
    if (!r.success) {
      refuse("invalid_request", formatIssues(r.error, 5, field));
      return;
    }
    const e = r.data;
    // UTF-8 is at most 3 bytes per UTF-16 unit: measure only events that could be too big
    const approx = e.topic.length + e.payload.length + e.type.length;
    if (approx * 3 + 128 > ctx.maxEventBytes) {
      const size = encoder.encode(JSON.stringify(e)).length;
      if (size > ctx.maxEventBytes) {
        refuse(
          "invalid_request",
          `${field}: ${size} bytes exceeds the limit of ${ctx.maxEventBytes} bytes per event`,
        );
        return;
      }
    }
    try {
      const res = normalizeBusEvent(e, field, {
        eventId: e.id ?? `${ctx.batchId}#${index}`,
        source: ctx.source,
        receivedAt: e.received_at ?? ctx.receivedAt(),
        stringMax: ctx.stringMax,
        refuse: ctx.refuse,
        classes: ctx.classes,
      });
      const at = ctx.receivedAt();
      passed.push({
        index,
        ...(item ? { item } : {}),
        ...(e.id ? { id: e.id.toLowerCase() } : {}),
        events: res.events.map((ev) => ({ ...ev, receivedAt: at })),
        ...(res.skipped ? { skipped: res.skipped } : {}),
      });
    } catch (err) {
      if (err instanceof IngestError) refuse(err.code, err.message);
      else refuse("internal_error", `${field}: could not be read`);
    }
  });
  return { passed, refused };
}
