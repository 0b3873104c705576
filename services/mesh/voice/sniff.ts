/**
 * Audio recognised by its first bytes, for an attachment whose sender's
 * client gave no content type (older Signal clients omit it on voice notes):
 * AAC (ADTS) and MPEG audio frames, MP4/M4A (`ftyp`), Ogg, WAV, AMR, FLAC and
 * an ID3-tagged MP3. Anything else (a photo, a PDF) is not audio and is never
 * handed to whisper.
 *
 * @module
 */
import { attachmentPath } from "./files.ts";

const ascii = (b: Uint8Array, at: number, s: string) =>
  b.length >= at + s.length && [...s].every((c, i) => b[at + i] === c.charCodeAt(0));

/** True when `head` (a file's first 12 bytes or more) starts like an audio file. */
export function looksLikeAudio(head: Uint8Array): boolean {
  if (head.length < 4) return false;
  if (head[0] === 0xff && (head[1]! & 0xe0) === 0xe0) {
    // a frame header: ADTS AAC (12 sync bits, layer 00) or MPEG audio layer III/II
    // with a version that exists (not Layer I: that is also a UTF-16LE byte order mark)
    const b = head[1]!;
    const layer = (b >> 1) & 3;
    if (layer === 0) return (b & 0xf0) === 0xf0;
    return layer !== 3 && ((b >> 3) & 3) !== 1;
  }
  return ascii(head, 4, "ftyp") || ascii(head, 0, "OggS") || ascii(head, 0, "fLaC") ||
    ascii(head, 0, "#!AMR") || ascii(head, 0, "ID3") ||
    (ascii(head, 0, "RIFF") && ascii(head, 8, "WAVE"));
}

/**
 * Whether attachment `id` in `dir` starts like audio. Reads 12 bytes,
 * synchronously (a message is accepted in one step); never follows a symlink;
 * false for anything unreadable.
 */
export function attachmentIsAudio(dir: string, id: string): boolean {
  const path = attachmentPath(dir, id);
  if (path === null) return false;
  try {
    if (!Deno.lstatSync(path).isFile) return false;
    const f = Deno.openSync(path, { read: true });
    try {
      const head = new Uint8Array(12);
      let n = 0;
      while (n < head.length) {
        const r = f.readSync(head.subarray(n));
        if (r === null) break;
        n += r;
      }
      return looksLikeAudio(head.subarray(0, n));
    } finally {
      f.close();
    }
  } catch {
    return false;
  }
}
