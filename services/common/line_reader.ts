/**
 * A bounded line splitter over bytes, for the line protocols that come from
 * outside: openHAB's event stream (SSE) and signal-cli's JSON-RPC socket.
 *
 * One over-long line never ends the stream: once a line passes
 * `maxLineBytes` its bytes are counted and dropped until its terminator, and
 * the caller gets a {@link SkippedLine} (its size, its first and last bytes,
 * enough to name what it was) instead of the line. Memory stays below
 * `maxLineBytes` plus one chunk, whatever the peer sends.
 *
 * Lines are split on bytes (`\n`, and with `terminators: "any"` also `\r\n`
 * and a lone `\r`, as SSE allows), which never occur inside a UTF-8 multi-byte
 * sequence, and each line is decoded on its own.
 *
 * @module
 */

/** A line that passed the limit and was skipped. */
export interface SkippedLine {
  /** Its length in bytes, without the terminator. */
  skipped: number;
  /** Its first bytes (decoded), for naming it in a log line. */
  head: string;
  /** Its last bytes (decoded). */
  tail: string;
}

/** A complete line, or a skipped one. */
export type LineItem = { line: string } | SkippedLine;

/** Options of {@link LineSplitter}. */
export interface LineSplitterOptions {
  /** Longest line kept, in bytes (without its terminator). */
  maxLineBytes: number;
  /** `lf`: lines end at `\n` (a `\r` before it is kept); `any`: `\r\n`, `\n` or `\r`. */
  terminators: "lf" | "any";
  /** Bytes kept of a skipped line's head and tail (default 512 and 128). */
  headBytes?: number;
  tailBytes?: number;
}

const LF = 0x0a;
const CR = 0x0d;

/** Splits pushed chunks into lines, skipping over-long ones. */
export class LineSplitter {
  readonly #max: number;
  readonly #any: boolean;
  readonly #headBytes: number;
  readonly #tailBytes: number;
  readonly #decoder = new TextDecoder();
  /** The current line while it is within the limit (grown as needed, up to the limit). */
  #buf = new Uint8Array(256);
  #length = 0;
  /** Set while the current line is being skipped. */
  #skipping: { head: Uint8Array; tail: Uint8Array; count: number } | null = null;
  /** The previous chunk ended in `\r` (a following `\n` belongs to it). */
  #afterCr = false;

  constructor(options: LineSplitterOptions) {
    this.#max = options.maxLineBytes;
    this.#any = options.terminators === "any";
    this.#headBytes = options.headBytes ?? 512;
    this.#tailBytes = options.tailBytes ?? 128;
  }

  /** Bytes held for the current line (at most `maxLineBytes`; for tests). */
  get buffered(): number {
    return this.#length;
  }

  /** Feeds one chunk; returns the lines it completed, in order. */
  push(chunk: Uint8Array): LineItem[] {
    const out: LineItem[] = [];
    let start = 0;
    if (this.#afterCr && chunk.length > 0) {
      this.#afterCr = false;
      if (chunk[0] === LF) start = 1;
    }
    for (let i = start; i < chunk.length; i++) {
      const b = chunk[i];
      if (b !== LF && !(this.#any && b === CR)) continue;
      this.#take(chunk.subarray(start, i));
      out.push(this.#finish());
      if (b === CR) {
        if (i + 1 < chunk.length) {
          if (chunk[i + 1] === LF) i++;
        } else {
          this.#afterCr = true;
        }
      }
      start = i + 1;
    }
    if (start < chunk.length) this.#take(chunk.subarray(start));
    return out;
  }

  #take(bytes: Uint8Array): void {
    if (bytes.length === 0) return;
    const s = this.#skipping;
    if (s) {
      s.count += bytes.length;
      s.tail = lastBytes(s.tail, bytes, this.#tailBytes);
      return;
    }
    const length = this.#length + bytes.length;
    if (length <= this.#max) {
      // copied: the caller may reuse its read buffer
      if (length > this.#buf.length) {
        const grown = new Uint8Array(Math.min(this.#max, Math.max(length, this.#buf.length * 2)));
        grown.set(this.#buf.subarray(0, this.#length));
        this.#buf = grown;
      }
      this.#buf.set(bytes, this.#length);
      this.#length = length;
      return;
    }
    // over the limit: keep its head and tail only, from now on count
    const held = this.#buf.subarray(0, this.#length);
    const head = new Uint8Array(Math.min(this.#headBytes, length));
    head.set(held.subarray(0, head.length));
    if (held.length < head.length) {
      head.set(bytes.subarray(0, head.length - held.length), held.length);
    }
    this.#skipping = { head, tail: lastBytes(held, bytes, this.#tailBytes), count: length };
    this.#reset();
  }

  /** Empties the line buffer, giving back memory a long line took. */
  #reset(): void {
    this.#length = 0;
    if (this.#buf.length > 65_536) this.#buf = new Uint8Array(256);
  }

  #finish(): LineItem {
    const s = this.#skipping;
    if (s) {
      this.#skipping = null;
      return {
        skipped: s.count,
        head: this.#decoder.decode(s.head),
        tail: this.#decoder.decode(s.tail),
      };
    }
    const line = this.#decoder.decode(this.#buf.subarray(0, this.#length));
    this.#reset();
    return { line };
  }
}

function lastBytes(prev: Uint8Array, next: Uint8Array, n: number): Uint8Array {
  if (next.length >= n) return next.slice(next.length - n);
  const keep = Math.min(prev.length, n - next.length);
  const out = new Uint8Array(keep + next.length);
  out.set(prev.subarray(prev.length - keep), 0);
  out.set(next, keep);
  return out;
}

/** The lines of a byte stream (a last line without terminator is dropped, as SSE does). */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
  options: LineSplitterOptions,
): AsyncGenerator<LineItem> {
  const splitter = new LineSplitter(options);
  for await (const chunk of stream) yield* splitter.push(chunk);
}
