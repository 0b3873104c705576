/**
 * Real voice notes for tests: AAC audio made by Debian's ffmpeg (a sine tone
 * of the given length), whose `comment` tag holds what the whisper stand-in
 * "hears" (`JOI:SAY <words>`, `JOI:HANG`, ...; see bin/whisper-cli). ffmpeg
 * carries the tag into the WAV it converts the note to, so the marker goes
 * through the mesh's real conversion command line.
 *
 * @module
 */

/** Where the tests expect Debian's ffmpeg. */
export const FFMPEG = "/usr/bin/ffmpeg";

/** Writes a `seconds` long AAC note saying `marker` to `path`; returns its size in bytes. */
export async function makeVoiceNote(
  path: string,
  seconds: number,
  marker: string,
): Promise<number> {
  const out = await new Deno.Command(FFMPEG, {
    args: [
      "-nostdin",
      "-hide_banner",
      "-loglevel",
      "error",
      "-y",
      "-f",
      "lavfi",
      "-i",
      // 8 kHz mono, as a phone records speech (and cheap to encode on a loaded machine)
      `sine=frequency=300:duration=${seconds}:sample_rate=8000`,
      "-ac",
      "1",
      "-metadata",
      `comment=JOI:${marker}`,
      "-c:a",
      "aac",
      "-b:a",
      "8k",
      "-f",
      "ipod",
      path,
    ],
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  if (!out.success) throw new Error(`ffmpeg: ${new TextDecoder().decode(out.stderr)}`);
  return (await Deno.stat(path)).size;
}
