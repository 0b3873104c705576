/**
 * What voice can do in the household's language, said once at start, with the
 * architecture's fallbacks: Slovak speech needs whisper `medium` or larger
 * (smaller models have too little Slovak), and without a piper voice of the
 * household's language replies are spoken only in the languages a voice
 * exists for (a Slovak reply then goes out as text alone).
 *
 * @module
 */
import type { Language } from "../../common/local_time.ts";
import type { Logger } from "../../common/log.ts";
import type { VoiceSettings } from "../config.ts";

/** Logs the voice limits of `language` under `voice`; returns the warnings. */
export function checkVoiceLanguage(
  voice: VoiceSettings,
  language: Language,
  log: Logger,
): string[] {
  const warnings: string[] = [];
  const model = voice.whisper.model.split("/").at(-1) ?? "";
  if (language === "sk" && /\b(tiny|base|small)\b|-(tiny|base|small)[.-]/i.test(model)) {
    warnings.push(
      `whisper model ${model} is smaller than medium: Slovak voice notes need medium or ` +
        `larger (ggml-medium.bin)`,
    );
  }
  if (voice.piper && voice.piper.voices[language] === undefined) {
    const spoken = Object.keys(voice.piper.voices).join(", ");
    warnings.push(
      `no piper voice for ${language}: replies in ${language} go out as text only ` +
        `(voices: ${spoken})`,
    );
  }
  for (const w of warnings) log.warn("voice_language_limit", { language, warning: w });
  return warnings;
}
