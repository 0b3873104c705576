/** Audio by its first bytes: what phones record is audio; photos, documents and text are not. */
import assert from "node:assert/strict";
import { looksLikeAudio } from "../../../../services/mesh/voice/sniff.ts";

const bytes = (...b: (number | string)[]) =>
  new Uint8Array(
    b.flatMap((x) => typeof x === "string" ? [...x].map((c) => c.charCodeAt(0)) : [x]),
  );

Deno.test("looksLikeAudio: AAC, M4A, Ogg/Opus, MP3, WAV, AMR, FLAC yes; JPEG, PNG, PDF, UTF-16 text no", () => {
  const audio = {
    "ADTS AAC (MPEG-4)": bytes(0xff, 0xf1, 0x50, 0x80, 0, 0x1f, 0xfc),
    "ADTS AAC (MPEG-2)": bytes(0xff, 0xf9, 0x50, 0x80),
    "M4A (iPhone voice note)": bytes(0, 0, 0, 0x1c, "ftypM4A ", 0, 0),
    "Ogg/Opus": bytes("OggS", 0, 2, 0, 0),
    "MP3 frame": bytes(0xff, 0xfb, 0x90, 0x64),
    "MP3 with ID3": bytes("ID3", 4, 0, 0),
    "WAV": bytes("RIFF", 0x24, 0, 0, 0, "WAVE"),
    "AMR": bytes("#!AMR\n"),
    "FLAC": bytes("fLaC", 0, 0, 0, 0x22),
  };
  for (const [name, head] of Object.entries(audio)) assert.ok(looksLikeAudio(head), name);
  const other = {
    "JPEG": bytes(0xff, 0xd8, 0xff, 0xe0, 0, 0x10, "JFIF"),
    "PNG": bytes(0x89, "PNG\r\n", 0x1a, "\n"),
    "PDF": bytes("%PDF-1.7\n"),
    "UTF-16LE text": bytes(0xff, 0xfe, "H", 0, "i", 0),
    "RIFF but AVI": bytes("RIFF", 0, 0, 0, 0, "AVI "),
    "empty": bytes(),
    "plain text": bytes("hello there"),
  };
  for (const [name, head] of Object.entries(other)) assert.ok(!looksLikeAudio(head), name);
});
