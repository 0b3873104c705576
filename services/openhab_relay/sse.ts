/**
 * A Server-Sent Events parser over a byte stream (the WHATWG format openHAB's
 * `/rest/events` speaks): `event:` and `data:` fields, multi-line data joined
 * with `\n`, comments (`:`) ignored, an event dispatched at each blank line.
 *
 * No single line or event can end the stream or grow memory without bound: a
 * line longer than `maxLineBytes`, or an event whose data passes
 * `maxEventBytes`, is skipped whole (the rest of that event is ignored up to
 * its blank line) and reported to `onSkip` with its size and, when its first
 * bytes name it, its topic; the events after it are parsed as usual. This is
 * what a camera's `Raw` image item (hundreds of KB on one `data:` line) needs.
 *
 * @module
 */
import { readLines } from "../common/line_reader.ts";

/** One dispatched SSE event. */
export interface SseEvent {
  /** The `event:` field, `message` by default. */
  event: string;
  /** The `data:` lines joined with `\n`. */
  data: string;
  /** The `id:` field, if any. */
  id?: string;
}

/** An event that was skipped because it was too large. */
export interface SseSkip {
  /** Bytes of the line (or of the event's data) that passed the limit. */
  bytes: number;
  /** The limit it passed. */
  limit: number;
  /** `line` (one line too long) or `event` (its data lines together too long). */
  what: "line" | "event";
  /** The openHAB topic, when the skipped bytes begin with it. */
  topic?: string;
}

/** Options of {@link parseSse}. */
export interface SseOptions {
  /** Longest line kept (default 64 KiB). */
  maxLineBytes?: number;
  /** Largest event data kept (default: `maxLineBytes`). */
  maxEventBytes?: number;
  /** Told about every skipped line or event. */
  onSkip?: (skip: SseSkip) => void;
}

const encoder = new TextEncoder();

function utf8Length(s: string): number {
  return encoder.encode(s).length;
}

const TOPIC = /"topic"\s*:\s*"((?:[^"\\]|\\.){1,512})"/;

/** The openHAB topic named in the first bytes of an event's data, if any. */
export function topicOf(head: string): string | undefined {
  const m = TOPIC.exec(head);
  if (!m) return undefined;
  try {
    return JSON.parse(`"${m[1]}"`) as string;
  } catch {
    return undefined;
  }
}

/** Parses `stream` into events, skipping over-long lines and events. */
export async function* parseSse(
  stream: ReadableStream<Uint8Array>,
  options: SseOptions = {},
): AsyncGenerator<SseEvent> {
  const maxLine = options.maxLineBytes ?? 65_536;
  const maxEvent = options.maxEventBytes ?? maxLine;
  const onSkip = options.onSkip ?? (() => {});
  let event = "";
  let data: string[] = [];
  let dataBytes = 0;
  let id: string | undefined;
  /** The current event lost a line: ignore it up to its blank line. */
  let dropping = false;
  const reset = () => {
    event = "";
    data = [];
    dataBytes = 0;
    dropping = false;
  };
  for await (const item of readLines(stream, { maxLineBytes: maxLine, terminators: "any" })) {
    if (!("line" in item)) {
      if (!dropping) {
        const topic = topicOf(item.head) ?? topicOf(data.join("\n"));
        onSkip({ bytes: item.skipped, limit: maxLine, what: "line", ...(topic ? { topic } : {}) });
      }
      dropping = true;
      continue;
    }
    const l = item.line;
    if (l === "") {
      if (data.length > 0 && !dropping) {
        yield {
          event: event || "message",
          data: data.join("\n"),
          ...(id !== undefined ? { id } : {}),
        };
      }
      reset();
      continue;
    }
    if (dropping || l.startsWith(":")) continue;
    const i = l.indexOf(":");
    const field = i === -1 ? l : l.slice(0, i);
    let value = i === -1 ? "" : l.slice(i + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "id") id = value;
    else if (field === "data") {
      dataBytes += utf8Length(value) + 1;
      if (dataBytes > maxEvent) {
        const topic = topicOf(data.join("\n") + value);
        onSkip({ bytes: dataBytes, limit: maxEvent, what: "event", ...(topic ? { topic } : {}) });
        dropping = true;
        data = [];
        continue;
      }
      data.push(value);
    }
  }
}
