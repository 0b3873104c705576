/**
 * A Server-Sent Events parser over a byte stream (the WHATWG format openHAB's
 * `/rest/events` speaks): `event:` and `data:` fields, multi-line data joined
 * with `\n`, comments (`:`) ignored, an event dispatched at each blank line.
 * Lines are capped so a misbehaving server cannot grow memory without bound.
 *
 * @module
 */

/** One dispatched SSE event. */
export interface SseEvent {
  /** The `event:` field, `message` by default. */
  event: string;
  /** The `data:` lines joined with `\n`. */
  data: string;
  /** The `id:` field, if any. */
  id?: string;
}

/** Thrown when a line exceeds the cap. */
export class SseLineTooLong extends Error {
  constructor(max: number) {
    super(`SSE line longer than ${max} bytes; the stream is not openHAB's event stream`);
    this.name = "SseLineTooLong";
  }
}

/** Parses `stream` into events. `maxLine` caps one line (default 64 KiB). */
export async function* parseSse(
  stream: ReadableStream<Uint8Array>,
  maxLine = 65_536,
): AsyncGenerator<SseEvent> {
  const decoder = new TextDecoder();
  let buf = "";
  let event = "";
  let data: string[] = [];
  let id: string | undefined;
  const line = function* (l: string): Generator<SseEvent> {
    if (l === "") {
      if (data.length > 0) {
        yield {
          event: event || "message",
          data: data.join("\n"),
          ...(id !== undefined ? { id } : {}),
        };
      }
      event = "";
      data = [];
      return;
    }
    if (l.startsWith(":")) return;
    const i = l.indexOf(":");
    const field = i === -1 ? l : l.slice(0, i);
    let value = i === -1 ? "" : l.slice(i + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
    else if (field === "id") id = value;
  };
  for await (const chunk of stream) {
    buf += decoder.decode(chunk, { stream: true });
    let nl: number;
    while ((nl = buf.search(/\r\n|\r|\n/)) !== -1) {
      const l = buf.slice(0, nl);
      const skip = buf.startsWith("\r\n", nl) ? 2 : 1;
      buf = buf.slice(nl + skip);
      yield* line(l);
    }
    if (buf.length > maxLine) throw new SseLineTooLong(maxLine);
  }
}
