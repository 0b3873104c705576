/**
 * Inbound voice notes: whisper.cpp, after ffmpeg has converted the note to
 * 16 kHz mono PCM WAV (what whisper.cpp reads).
 *
 * Limits (mesh.yaml `voice`): the note's size (declared by signal-cli and
 * measured on disk, symlinks refused) at most `max_bytes`; its duration,
 * measured from the converted PCM, at most `max_duration_seconds`; the whole
 * job within `timeout_seconds`. Both the attachment and the WAV are deleted
 * when the job ends, whatever its outcome. A failure is a structured reason
 * for joi, never a path.
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
/** Size of the canonical WAV header ffmpeg writes. */
const WAV_HEADER = 44;

/** Options of {@link transcribe}. */
export interface TranscribeOptions {
  voice: VoiceSettings;
  /** Scratch folder (voice.temp_dir or `<state-dir>/voice`). */
  tempDir: string;
  log: Logger;
}

/** Transcribes attachment `id`; never throws for bad input or tool failures. */
export async function transcribe(
  o: TranscribeOptions,
  attachment: { id: string; size: number | null },
): Promise<TranscriptionResult> {
  const v = o.voice;
  const src = attachmentPath(v.attachments_dir, attachment.id);
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
    let pcm: number;
    try {
      pcm = (await Deno.stat(wav)).size - WAV_HEADER;
    } catch {
      return { ok: false, reason: "conversion_failed", durationMs: null };
    }
    const durationMs = Math.max(0, Math.round((pcm / PCM_BYTES_PER_SECOND) * 1000));
    if (durationMs > v.max_duration_seconds * 1000) {
      o.log.warn("voice_too_long", { duration_ms: durationMs, max_s: v.max_duration_seconds });
      return { ok: false, reason: "too_long", durationMs };
    }
    const w = await runTool({
      bin: v.whisper.bin,
      args: ["-m", v.whisper.model, "-f", wav, "-l", v.whisper.language, "-nt", "-np"],
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
    if (text === "") return { ok: false, reason: "unrecognized", durationMs };
    return { ok: true, text, durationMs };
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
