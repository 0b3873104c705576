/**
 * Long texts, both ways, the way Signal and signal-cli carry them.
 *
 * Signal's message body holds about 2 KiB of UTF-8. A longer text travels as
 * the first 2,000 bytes in the body plus the whole text as a
 * `text/x-signal-plain` attachment; signal-cli 0.14 splits like this when it
 * sends, and on receipt the attachment is the authoritative body (an older
 * client may deliver the attachment beside a cut body).
 *
 * - Inbound: {@link readLongText} reads the attachment file (bounded, refusing
 *   anything but a regular file inside the attachments folder) as the body; a
 *   file over the reading cap is read up to it. When the file cannot be read
 *   at all, the body is only the text's beginning ({@link bodyIsPartial}) and
 *   {@link partNotice} tells the sender so.
 * - Outbound: {@link splitForSignal} never puts more than the limit in the body
 *   and hands the whole text over as a `data:` attachment, the body cut
 *   between graphemes (a flag, a family emoji, a letter and its accent stay
 *   whole), so nothing is silently truncated.
 * - Above joi's inbound limit the text is cut between graphemes, counted in
 *   code points as joi's schema counts `max_inbound_chars` (zod measures a
 *   string in code points), and {@link cutNotice} tells the sender where.
 *
 * @module
 */
import { attachmentPath } from "./voice/files.ts";
import { dataUri } from "./signal/data_uri.ts";
import { LONG_TEXT_TYPE } from "./signal/envelope.ts";

/** signal-cli's `MAX_MESSAGE_SIZE_BYTES`: the most UTF-8 bytes a body carries. */
export const SIGNAL_BODY_BYTES = 2000;

/** The largest long-text attachment read (Signal's own cap is 64 KiB of text). */
export const MAX_LONG_TEXT_BYTES = 64 * 1024;

const encoder = new TextEncoder();
const decoder = new TextDecoder("utf-8", { fatal: true });

/** Why a long text could not be read. */
export type LongTextFailure = "bad_id" | "missing" | "not_a_file" | "not_utf8";

/** What {@link readLongText} read: the text, and whether the file held more (over the cap). */
export type LongTextRead =
  | { ok: true; text: string; complete: boolean }
  | { ok: false; reason: LongTextFailure };

/**
 * Reads attachment `id` of `dir` as UTF-8 text, at most {@link MAX_LONG_TEXT_BYTES}
 * (a longer file is read up to the cap, ending on a whole character, and
 * marked incomplete: joi takes far less anyway). Synchronous (one small
 * file, so a message is accepted in one step, like any other); never follows
 * a symlink; never throws for a bad file.
 */
export function readLongText(dir: string, id: string): LongTextRead {
  const path = attachmentPath(dir, id);
  if (path === null) return { ok: false, reason: "bad_id" };
  let file: Deno.FsFile;
  try {
    const st = Deno.lstatSync(path);
    if (!st.isFile) return { ok: false, reason: "not_a_file" };
    file = Deno.openSync(path, { read: true });
  } catch {
    return { ok: false, reason: "missing" };
  }
  try {
    const buf = new Uint8Array(MAX_LONG_TEXT_BYTES + 1);
    let n = 0;
    while (n < buf.length) {
      const r = file.readSync(buf.subarray(n));
      if (r === null) break;
      n += r;
    }
    const complete = n <= MAX_LONG_TEXT_BYTES;
    const bytes = complete
      ? buf.subarray(0, n)
      : wholeCharacters(buf.subarray(0, MAX_LONG_TEXT_BYTES));
    return { ok: true, text: decoder.decode(bytes), complete };
  } catch {
    return { ok: false, reason: "not_utf8" };
  } finally {
    file.close();
  }
}

/** `bytes` without a UTF-8 sequence cut off at its end. */
function wholeCharacters(bytes: Uint8Array): Uint8Array {
  let i = bytes.length;
  // back over continuation bytes (at most 3) to the lead byte of the last sequence
  while (i > 0 && bytes.length - i < 4 && (bytes[i - 1]! & 0xc0) === 0x80) i--;
  if (i === 0) return bytes;
  const lead = bytes[i - 1]!;
  const need = lead >= 0xf0 ? 4 : lead >= 0xe0 ? 3 : lead >= 0xc0 ? 2 : 1;
  return bytes.length - (i - 1) < need ? bytes.subarray(0, i - 1) : bytes;
}

/**
 * Whether `body` is only the beginning of a long text whose attachment
 * could not be read: shorter in bytes than the attachment signal-cli
 * announced (`size`), or, without a size, no longer than a cut body.
 */
export function bodyIsPartial(body: string | null, size: number | null): boolean {
  const bytes = body === null ? 0 : encoder.encode(body).length;
  return size !== null ? bytes < size : bytes <= SIGNAL_BODY_BYTES;
}

const segmenter = new Intl.Segmenter(undefined, { granularity: "grapheme" });

function utf8Length(s: string): number {
  let n = 0;
  for (const ch of s) {
    const cp = ch.codePointAt(0)!;
    n += cp < 0x80 ? 1 : cp < 0x800 ? 2 : cp < 0x10000 ? 3 : 4;
  }
  return n;
}

/** Code point prefix of `text` within `maxBytes` UTF-8 bytes (inside one huge grapheme only). */
function codePointPrefix(text: string, maxBytes: number): string {
  let bytes = 0;
  let end = 0;
  for (const ch of text) {
    const n = utf8Length(ch);
    if (bytes + n > maxBytes) break;
    bytes += n;
    end += ch.length;
  }
  return text.slice(0, end);
}

/**
 * The longest prefix of `text` whose UTF-8 form fits `maxBytes`, cut between
 * graphemes (a grapheme larger than the whole limit is cut between code
 * points rather than dropped).
 */
export function prefixByBytes(text: string, maxBytes: number): string {
  if (encoder.encode(text).length <= maxBytes) return text;
  let bytes = 0;
  let end = 0;
  for (const { segment } of segmenter.segment(text)) {
    const n = utf8Length(segment);
    if (bytes + n > maxBytes) {
      return end > 0 ? text.slice(0, end) : codePointPrefix(text, maxBytes);
    }
    bytes += n;
    end += segment.length;
  }
  return text;
}

/** How a text goes out through signal-cli's `send`. */
export interface SignalText {
  /** The body (at most {@link SIGNAL_BODY_BYTES} bytes). */
  body: string;
  /** The whole text as a `text/x-signal-plain` `data:` URI, when the body is a prefix. */
  attachment: string | null;
}

/** Splits `text` as signal-cli does: body prefix plus the whole text as an attachment. */
export function splitForSignal(text: string, maxBytes = SIGNAL_BODY_BYTES): SignalText {
  const body = prefixByBytes(text, maxBytes);
  if (body.length === text.length) return { body: text, attachment: null };
  return {
    body,
    attachment: dataUri(LONG_TEXT_TYPE, "message.txt", encoder.encode(text)),
  };
}

/** Code points of `s`. */
function codePoints(s: string): number {
  let n = 0;
  for (const _ of s) n++;
  return n;
}

/**
 * Cuts `text` to at most `max` code points (the unit of joi's
 * `max_inbound_chars`: its schema's zod measures strings in code points),
 * between graphemes.
 */
export function capText(text: string, max: number): { text: string; cut: boolean } {
  if (text.length <= max || codePoints(text) <= max) return { text, cut: false };
  let end = 0;
  let count = 0;
  for (const { segment } of segmenter.segment(text)) {
    const n = codePoints(segment);
    if (count + n > max) break;
    count += n;
    end += segment.length;
  }
  return { text: text.slice(0, end), cut: true };
}

/** Characters as a person counts them (graphemes). */
function characters(text: string): number {
  let n = 0;
  for (const _ of segmenter.segment(text)) n++;
  return n;
}

/** The last words of `kept`, for "up to “…”". */
function tailOf(kept: string): string {
  const g = Array.from(segmenter.segment(kept.trimEnd()), (s) => s.segment);
  return g.slice(-40).join("").replace(/\s+/g, " ").trim();
}

/**
 * What the sender is told when their message was cut: how long it was (or
 * at least, when only part of it could be read), how much was read, and the
 * last words read, so they know where to go on.
 */
export function cutNotice(full: string, kept: string, partial = false): string {
  const total = characters(full).toLocaleString("en-US");
  return `Your message was too long for me: it has ${partial ? "more than " : ""}${total} ` +
    `characters and I read only the first ${characters(kept).toLocaleString("en-US")}, up to ` +
    `“…${tailOf(kept)}”. Please send the rest in another message.`;
}

/**
 * What the sender is told when only the beginning of a long message reached
 * joi (its text attachment could not be read): how much, and where it ends.
 */
export function partNotice(kept: string): string {
  return `I could read only the first part of your long message: ` +
    `${characters(kept).toLocaleString("en-US")} characters, up to “…${tailOf(kept)}”. ` +
    `Please send the rest in another message.`;
}
