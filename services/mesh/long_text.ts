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
 *   anything but a regular file inside the attachments folder) as the body.
 * - Outbound: {@link splitForSignal} never puts more than the limit in the body
 *   and hands the whole text over as a `data:` attachment, cut on a character
 *   boundary, so nothing is silently truncated.
 * - Above joi's inbound limit the text is cut, and {@link cutNotice} tells the
 *   sender where.
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
export type LongTextFailure = "bad_id" | "missing" | "not_a_file" | "too_large" | "not_utf8";

/**
 * Reads attachment `id` of `dir` as UTF-8 text, at most {@link MAX_LONG_TEXT_BYTES}.
 * Synchronous (one small file, so a message is accepted in one step, like any
 * other); never follows a symlink; never throws for a bad file.
 */
export function readLongText(
  dir: string,
  id: string,
): { ok: true; text: string } | { ok: false; reason: LongTextFailure } {
  const path = attachmentPath(dir, id);
  if (path === null) return { ok: false, reason: "bad_id" };
  let file: Deno.FsFile;
  try {
    const st = Deno.lstatSync(path);
    if (!st.isFile) return { ok: false, reason: "not_a_file" };
    if (st.size > MAX_LONG_TEXT_BYTES) return { ok: false, reason: "too_large" };
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
    if (n > MAX_LONG_TEXT_BYTES) return { ok: false, reason: "too_large" };
    return { ok: true, text: decoder.decode(buf.subarray(0, n)) };
  } catch {
    return { ok: false, reason: "not_utf8" };
  } finally {
    file.close();
  }
}

/** The longest prefix of `text` whose UTF-8 form fits `maxBytes`, cut between code points. */
export function prefixByBytes(text: string, maxBytes: number): string {
  if (encoder.encode(text).length <= maxBytes) return text;
  let bytes = 0;
  let end = 0;
  for (const ch of text) {
    const n = ch.codePointAt(0)! < 0x80
      ? 1
      : ch.codePointAt(0)! < 0x800
      ? 2
      : ch.length === 2
      ? 4
      : 3;
    if (bytes + n > maxBytes) break;
    bytes += n;
    end += ch.length;
  }
  return text.slice(0, end);
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

/** Cuts `text` to `max` code points. */
export function capText(text: string, max: number): { text: string; cut: boolean } {
  const cps = Array.from(text);
  return cps.length <= max ? { text, cut: false } : { text: cps.slice(0, max).join(""), cut: true };
}

/**
 * What the sender is told when their message was cut: how long it was, how
 * much was read, and the last words read, so they know where to go on.
 */
export function cutNotice(full: string, kept: string, max: number): string {
  const total = Array.from(full).length;
  const tail = Array.from(kept.trimEnd()).slice(-40).join("").replace(/\s+/g, " ").trim();
  return `Your message was too long for me: it has ${total.toLocaleString("en-US")} characters ` +
    `and I read only the first ${max.toLocaleString("en-US")}, up to “…${tail}”. ` +
    `Please send the rest in another message.`;
}
