/**
 * Inbound voice notes: whisper.cpp, after ffmpeg has converted the note to
 * 16 kHz mono PCM WAV (what whisper.cpp reads).
 *
 * Limits (mesh.yaml `voice`): the note's size (declared by signal-cli and
 * measured on disk, symlinks refused) at most `max_bytes`; its duration,
 * measured from the converted PCM (the WAV's `data` chunk), at most
 * `max_duration_seconds`; the whole job within `timeout_seconds`. Both the
 * attachment and the WAV are deleted when the job ends, whatever its outcome.
 * A failure is a structured reason for joi, never a path.
 *
 * Language: whisper is told the household's language (`-l sk` in phase 2;
 * `-l auto` in phase 1, so a Slovak note is still understood), and when a
 * hinted pass recognises nothing it is asked once more with `-l auto`.
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";
import type { VoiceSettings } from "../config.ts";
import { attachmentPath, removeQuietly } from "./files.ts";
import { runTool } from "./run.ts";

/** Why a transcription failed (sent to joi as `voice_failure_reason`). */
export type FailureReason =
  | "transcription_timeout"
  | "whisper_error"
  | "conversion_failed"
  | "too_large"
  | "too_long"
  | "unrecognized"
  | "file_missing"
  | "voice_queue_full"
  | "voice_not_configured";

/** Result of one transcription. */
export type TranscriptionResult =
  | { ok: true; text: string; durationMs: number }
  | { ok: false; reason: FailureReason; durationMs: number | null };

/** PCM bytes per second of 16 kHz mono s16le. */
const PCM_BYTES_PER_SECOND = 16000 * 2;

/** Options of {@link transcribe}. */
export interface TranscribeOptions {
  voice: VoiceSettings;
  /** signal-cli's attachments folder. */
  attachmentsDir: string;
  /** whisper's language hint (`auto`, `sk`, ...). */
  language: string;
  /** Scratch folder (voice.temp_dir or `<state-dir>/voice`). */
  tempDir: string;
  log: Logger;
}

/** whisper's `-l` for a household language: `auto` for en (a Slovak note still works), else it. */
export function whisperLanguage(voice: VoiceSettings, household: string): string {
  return voice.whisper.language ?? (household === "en" ? "auto" : household);
}

/**
 * Bytes of PCM in a WAV file (its `data` chunk), read from the header rather
 * than guessed from the file size (ffmpeg may add a LIST chunk). Null when
 * the file is not a RIFF/WAVE file.
 */
export async function wavDataBytes(path: string): Promise<number | null> {
  const f = await Deno.open(path, { read: true });
  try {
    const head = new Uint8Array(4096);
    let n = 0;
    while (n < head.length) {
      const r = await f.read(head.subarray(n));
      if (r === null) break;
      n += r;
    }
    const v = new DataView(head.buffer, 0, n);
    const tag = (o: number) => String.fromCharCode(...head.subarray(o, o + 4));
    if (n < 12 || tag(0) !== "RIFF" || tag(8) !== "WAVE") return null;
    const total = (await f.stat()).size;
    for (let o = 12; o + 8 <= n;) {
      const size = v.getUint32(o + 4, true);
      if (tag(o) === "data") {
        // ffmpeg writing to a pipe leaves 0xffffffff; the file's end is the truth
        return Math.min(size, total - (o + 8));
      }
      o += 8 + size + (size % 2);
    }
    return null;
  } finally {
    f.close();
  }
}

/** Transcribes attachment `id`; never throws for bad input or tool failures. */
export async function transcribe(
  o: TranscribeOptions,
  attachment: { id: string; size: number | null },
): Promise<TranscriptionResult> {
  const v = o.voice;
  const src = attachmentPath(o.attachmentsDir, attachment.id);
  if (src === null) {
    o.log.security("voice_bad_attachment_id", { id_length: attachment.id.length });
    return { ok: false, reason: "file_missing", durationMs: null };
  }
  const wav = `${o.tempDir}/${crypto.randomUUID()}.wav`;
  const deadline = Date.now() + v.timeout_seconds * 1000;
  try {
    if (attachment.size !== null && attachment.size > v.max_bytes) {
      o.log.warn("voice_too_large", { bytes: attachment.size, max: v.max_bytes });
      return { ok: false, reason: "too_large", durationMs: null };
    }
    let st: Deno.FileInfo;
    try {
      st = await Deno.lstat(src);
    } catch {
      return { ok: false, reason: "file_missing", durationMs: null };
    }
    if (!st.isFile) {
      o.log.security("voice_attachment_not_a_file", { symlink: st.isSymlink });
      return { ok: false, reason: "file_missing", durationMs: null };
    }
    if (st.size > v.max_bytes) {
      o.log.warn("voice_too_large", { bytes: st.size, max: v.max_bytes });
      return { ok: false, reason: "too_large", durationMs: null };
    }
    const conv = await runTool({
      bin: v.ffmpeg.bin,
      args: [
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-i",
        src,
        "-t",
        String(v.max_duration_seconds + 1),
        "-ar",
        "16000",
        "-ac",
        "1",
        "-c:a",
        "pcm_s16le",
        "-f",
        "wav",
        wav,
      ],
      deadline,
    });
    if (conv.timedOut) return { ok: false, reason: "transcription_timeout", durationMs: null };
    if (conv.code !== 0) {
      o.log.warn("voice_conversion_failed", { code: conv.code, stderr_bytes: conv.stderrBytes });
      return { ok: false, reason: "conversion_failed", durationMs: null };
    }
    let pcm: number | null;
    try {
      pcm = await wavDataBytes(wav);
    } catch {
      pcm = null;
    }
    if (pcm === null) return { ok: false, reason: "conversion_failed", durationMs: null };
    const durationMs = Math.max(0, Math.round((pcm / PCM_BYTES_PER_SECOND) * 1000));
    if (durationMs > v.max_duration_seconds * 1000) {
      o.log.warn("voice_too_long", { duration_ms: durationMs, max_s: v.max_duration_seconds });
      return { ok: false, reason: "too_long", durationMs };
    }
    for (const language of o.language === "auto" ? ["auto"] : [o.language, "auto"]) {
      const w = await runTool({
        bin: v.whisper.bin,
        args: ["-m", v.whisper.model, "-f", wav, "-l", language, "-nt", "-np"],
        deadline,
      });
      if (w.timedOut) {
        o.log.warn("voice_timeout", { timeout_s: v.timeout_seconds });
        return { ok: false, reason: "transcription_timeout", durationMs };
      }
      if (w.code !== 0) {
        o.log.warn("voice_whisper_failed", { code: w.code, stderr_bytes: w.stderrBytes });
        return { ok: false, reason: "whisper_error", durationMs };
      }
      const text = w.stdout.replace(/\s+/g, " ").trim();
      if (text !== "") return { ok: true, text, durationMs };
      if (language !== "auto") {
        o.log.info("voice_language_fallback", { from: language, to: "auto" });
      }
    }
    return { ok: false, reason: "unrecognized", durationMs };
  } catch (e) {
    o.log.error("voice_error", { error: (e as Error).message });
    return { ok: false, reason: "whisper_error", durationMs: null };
  } finally {
    await removeQuietly(wav).catch(() => {});
    await removeQuietly(src).catch((e) =>
      o.log.warn("attachment_delete_failed", { error: (e as Error).message })
    );
  }
}
