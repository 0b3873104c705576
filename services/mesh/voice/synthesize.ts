/**
 * Outbound voice: piper speaks joi's text to WAV, ffmpeg encodes it to
 * Ogg/Opus (what Signal plays as a voice note), and the result is handed to
 * signal-cli as a `data:` URI (signal-cli cannot read the mesh's files).
 * Same limits as inbound: one job at a time through the voice queue, the
 * `timeout_seconds` deadline, `max_bytes` for the result; texts longer than
 * `piper.max_text_length` are not spoken. Files are deleted afterwards.
 *
 * The voice is the one of the text's language (`piper.voices`): a Slovak
 * reply with a Slovak voice, an English one with an English voice. With no
 * voice for the text's language nothing is spoken (the architecture's
 * fallback: "voice responses in English only"); the text still goes out.
 *
 * @module
 */
import { detectLanguage } from "../../common/language.ts";
import type { Language } from "../../common/local_time.ts";
import type { Logger } from "../../common/log.ts";
import type { VoiceSettings } from "../config.ts";
import { dataUri } from "../signal/data_uri.ts";
import { removeQuietly } from "./files.ts";
import { runTool } from "./run.ts";

/** Result of {@link synthesize}. */
export type SynthesisResult =
  | { ok: true; dataUri: string; bytes: number }
  | { ok: false; reason: string };

/** Options of {@link synthesize}. */
export interface SynthesizeOptions {
  voice: VoiceSettings;
  /** The household's language: the voice for a text whose language is unclear. */
  language: Language;
  tempDir: string;
  log: Logger;
}

/** The piper voice (`.onnx`) for `text`, or null when none speaks its language. */
export function voiceFor(
  voices: NonNullable<VoiceSettings["piper"]>["voices"],
  text: string,
  household: Language,
): { language: Language; model: string } | null {
  const detected = detectLanguage(text);
  const language: Language = detected === "unknown" ? household : detected;
  const model = voices[language];
  return model === undefined ? null : { language, model };
}

/** Speaks `text`; never throws for tool failures. */
export async function synthesize(o: SynthesizeOptions, text: string): Promise<SynthesisResult> {
  const v = o.voice;
  if (!v.piper) return { ok: false, reason: "tts_not_configured" };
  if (Array.from(text).length > v.piper.max_text_length) {
    return { ok: false, reason: "text_too_long" };
  }
  const voice = voiceFor(v.piper.voices, text, o.language);
  if (voice === null) return { ok: false, reason: "no_voice_for_language" };
  const id = crypto.randomUUID();
  const wav = `${o.tempDir}/${id}.tts.wav`;
  const ogg = `${o.tempDir}/${id}.ogg`;
  const deadline = Date.now() + v.timeout_seconds * 1000;
  try {
    const p = await runTool({
      bin: v.piper.bin,
      args: ["--model", voice.model, "--output_file", wav],
      stdin: text,
      deadline,
    });
    if (p.timedOut) return { ok: false, reason: "tts_timeout" };
    if (p.code !== 0) {
      o.log.warn("voice_piper_failed", { code: p.code, stderr_bytes: p.stderrBytes });
      return { ok: false, reason: "tts_error" };
    }
    const f = await runTool({
      bin: v.ffmpeg.bin,
      args: [
        "-nostdin",
        "-hide_banner",
        "-loglevel",
        "error",
        "-y",
        "-i",
        wav,
        "-c:a",
        "libopus",
        "-b:a",
        "24k",
        "-f",
        "ogg",
        ogg,
      ],
      deadline,
    });
    if (f.timedOut) return { ok: false, reason: "tts_timeout" };
    if (f.code !== 0) return { ok: false, reason: "encode_failed" };
    const st = await Deno.stat(ogg);
    if (st.size > v.max_bytes) return { ok: false, reason: "too_large" };
    const bytes = await Deno.readFile(ogg);
    return {
      ok: true,
      dataUri: dataUri("audio/ogg", "voice.ogg", bytes),
      bytes: bytes.length,
    };
  } catch (e) {
    o.log.error("voice_tts_error", { error: (e as Error).message });
    return { ok: false, reason: "tts_error" };
  } finally {
    await removeQuietly(wav).catch(() => {});
    await removeQuietly(ogg).catch(() => {});
  }
}
