/**
 * Voice notes both ways, end to end through an in-process mesh and the
 * signal-cli stand-in, with the real ffmpeg from Debian (Debian ships it) and
 * stand-ins for whisper.cpp and piper (Debian ships neither) that take their
 * real command lines (tests/peers/signal_cli/bin/). A note is real AAC audio
 * made by ffmpeg; its `comment` tag carries what the whisper stand-in "hears".
 */
import assert from "node:assert/strict";
import { hasExecutable, ignoreUnless } from "../../../_helpers/requires.ts";
import { dataEnvelope, dataUriBytes, voiceAttachment } from "../../../peers/signal_cli/peer.ts";
import { FFMPEG, makeVoiceNote } from "../../../peers/signal_cli/voice_note.ts";
import { ACCOUNT, events, outboundBody, OWNER, startStack, waitUntil } from "../harness.ts";
import type { MeshConfig } from "../../../../services/mesh/config.ts";

const BIN = Deno.realPathSync("tests/peers/signal_cli/bin");
const ignore = ignoreUnless([hasExecutable(FFMPEG), "ffmpeg (apt install ffmpeg)"]);

function meshYaml(dir: string, voice: Record<string, unknown> = {}): string {
  const v = {
    max_queue: 3,
    max_duration_seconds: 120,
    max_bytes: 400_000,
    timeout_seconds: 30,
    retention_minutes: 5,
    whisper: { bin: `${BIN}/whisper-cli`, model: `${dir}/ggml-medium.bin` },
    ffmpeg: { bin: FFMPEG },
    piper: {
      bin: `${BIN}/piper`,
      voices: { en: `${dir}/en_US-lessac-medium.onnx`, sk: `${dir}/sk_SK-lili-medium.onnx` },
      max_text_length: 1000,
    },
    ...voice,
  };
  return `
queue: { max_depth: 1000, retry_initial_ms: 20, retry_max_ms: 100 }
config_sync: { poll_minutes: 0 }
account: { number: "${ACCOUNT.number}" }
voice: ${JSON.stringify(v)}
`;
}

/** A stack whose voice folders live in a fresh temp dir. */
async function voiceStack(
  voice: Record<string, unknown> = {},
  o: { edit?: (c: MeshConfig) => void; timers?: boolean } = {},
) {
  const dir = await Deno.makeTempDir({ prefix: "mesh-voice-" });
  await Deno.mkdir(`${dir}/attachments`);
  for (const f of ["ggml-medium.bin", "sk_SK-lili-medium.onnx", "en_US-lessac-medium.onnx"]) {
    await Deno.writeTextFile(`${dir}/${f}`, "model");
  }
  const s = await startStack({
    meshYaml: meshYaml(dir, voice),
    attachmentsDir: `${dir}/attachments`,
    ...(o.edit ? { edit: o.edit } : {}),
    ...(o.timers ? { timers: true } : {}),
  });
  let ts = 1000;
  const note = async (
    marker: string,
    opts: {
      seconds?: number;
      declaredSize?: number;
      junk?: number;
      raw?: string | Uint8Array;
      /** The attachment's `contentType` (older clients omit it: null). */
      contentType?: string | null;
    } = {},
  ) => {
    const id = `att${ts}`;
    const path = `${dir}/attachments/${id}`;
    let size: number;
    if (opts.raw !== undefined) {
      const raw = typeof opts.raw === "string" ? new TextEncoder().encode(opts.raw) : opts.raw;
      await Deno.writeFile(path, raw);
      size = raw.length;
    } else {
      size = await makeVoiceNote(path, opts.seconds ?? 2, marker);
      if (opts.junk) {
        await Deno.writeFile(path, new Uint8Array(opts.junk), { append: true });
        size += opts.junk;
      }
    }
    s.peer.push(dataEnvelope({
      ...OWNER,
      timestamp: ++ts,
      text: null,
      attachments: [{
        ...voiceAttachment(id, opts.declaredSize ?? size),
        ...(opts.contentType !== undefined ? { contentType: opts.contentType } : {}),
      }],
    }));
    return id;
  };
  return {
    s,
    dir,
    note,
    async stop() {
      await s.stop();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

type Content = Record<string, unknown>;
const contentOf = (b: Record<string, unknown>) => b.content as Content;

async function files(dir: string): Promise<string[]> {
  const out: string[] = [];
  for await (const e of Deno.readDir(dir)) out.push(e.name);
  return out;
}

function readLines(path: string): string[] {
  try {
    return Deno.readTextFileSync(path).split("\n").filter((l) => l !== "");
  } catch {
    return [];
  }
}

Deno.test({
  name:
    "voice: a real AAC note is converted by ffmpeg, transcribed, and reaches joi; files deleted",
  ignore,
  fn: async () => {
    const v = await voiceStack();
    try {
      const id = await v.note("SAY turn on the heating please", { seconds: 3 });
      await v.s.joi.waitFor(() => v.s.joi.received.length === 1);
      const c = contentOf(v.s.joi.received[0]!.body);
      assert.equal(c.type, "voice");
      assert.equal(c.voice_transcription, "turn on the heating please");
      assert.equal(c.voice_transcription_failed, false);
      assert.ok(
        Math.abs((c.voice_duration_ms as number) - 3000) < 150,
        String(c.voice_duration_ms),
      );
      assert.equal(v.s.joi.received[0]!.headers["x-validated-channel"], "owner_private_dm");
      assert.deepEqual(await files(`${v.dir}/attachments`), [], `${id} deleted`);
      assert.deepEqual(await files(`${v.s.dir}/state/voice`), [], "no temp file left");
      // phase 1 (household.language en): whisper detects the language itself
      assert.deepEqual(readLines(`${v.dir}/ggml-medium.bin.calls`), ["auto"]);
    } finally {
      await v.stop();
    }
  },
});

Deno.test({
  name: "voice: household language sk hints whisper with -l sk, falling back to auto",
  ignore,
  fn: async () => {
    const v = await voiceStack({}, {
      edit: (c) => (c.household = { ...c.household, language: "sk" }),
    });
    try {
      await v.note("SAY zapni kúrenie");
      await v.s.joi.waitFor(() => v.s.joi.received.length === 1);
      await v.note("SAYAUTO this is english after all");
      await v.s.joi.waitFor(() => v.s.joi.received.length === 2);
      const got = v.s.joi.received.map((r) => contentOf(r.body).voice_transcription);
      assert.deepEqual(got, ["zapni kúrenie", "this is english after all"]);
      assert.deepEqual(readLines(`${v.dir}/ggml-medium.bin.calls`), ["sk", "sk", "auto"]);
      assert.equal(events(v.s.logs, "voice_language_fallback").length, 1);
    } finally {
      await v.stop();
    }
  },
});

Deno.test({
  name: "voice: a whisper that hangs is killed at the timeout; joi gets a structured failure",
  ignore,
  fn: async () => {
    const v = await voiceStack({ timeout_seconds: 1 });
    try {
      await v.note("HANG");
      await v.s.joi.waitFor(() => v.s.joi.received.length === 1);
      const body = v.s.joi.received[0]!.body;
      const c = contentOf(body);
      assert.equal(c.type, "voice");
      assert.equal(c.voice_transcription, null);
      assert.equal(c.voice_transcription_failed, true);
      assert.equal(c.voice_failure_reason, "transcription_timeout");
      const json = JSON.stringify(body);
      assert.ok(!json.includes(v.dir) && !json.includes("/attachments"), "no path reaches joi");
      assert.deepEqual(await files(`${v.dir}/attachments`), []);
      assert.deepEqual(await files(`${v.s.dir}/state/voice`), []);
    } finally {
      await v.stop();
    }
  },
});

Deno.test({
  name: "voice: 10 MB and 120 s limits, whisper errors and undecodable files are refused cleanly",
  ignore,
  fn: async () => {
    const v = await voiceStack();
    try {
      // one at a time: the queue limit is not under test here
      const one = async (marker: string, opts: Parameters<typeof v.note>[1] = {}) => {
        const n = v.s.joi.received.length;
        await v.note(marker, opts);
        await v.s.joi.waitFor(() => v.s.joi.received.length === n + 1);
      };
      await one("SAY declared too big", { declaredSize: 10_485_761 });
      await one("SAY big on disk", { seconds: 1, declaredSize: 10, junk: 500_000 });
      await one("SAY way too long", { seconds: 200 });
      await one("FAIL");
      await one("", { raw: "this is not audio at all" });
      const reasons = v.s.joi.received.map((r) => contentOf(r.body).voice_failure_reason);
      assert.deepEqual(reasons, [
        "too_large",
        "too_large",
        "too_long",
        "whisper_error",
        "conversion_failed",
      ]);
      // ffmpeg stops reading at max + 1 s: the mesh never converts a whole long note
      const long = contentOf(v.s.joi.received[2]!.body).voice_duration_ms as number;
      assert.ok(long > 120_000 && long < 122_000, String(long));
      assert.deepEqual(await files(`${v.dir}/attachments`), []);
    } finally {
      await v.stop();
    }
  },
});

Deno.test({
  name: "voice: one job at a time, at most 3 waiting; overflow drops the oldest and logs it",
  ignore,
  fn: async () => {
    const v = await voiceStack();
    const gate = `${v.dir}/gate`;
    try {
      await v.note(`WAIT ${gate} SAY first`, { seconds: 1 });
      await waitUntil(() => v.s.mesh.voice!.busy);
      for (let i = 2; i <= 6; i++) await v.note(`SAY note ${i}`, { seconds: 1 });
      await waitUntil(() => v.s.mesh.voice!.dropped === 2);
      assert.equal(v.s.mesh.voice!.depth, 3);
      assert.ok(v.s.mesh.voice!.busy);
      const over = events(v.s.logs, "voice_queue_overflow");
      assert.equal(over.length, 2);
      assert.equal(over[0]!.level, "security");
      await Deno.writeTextFile(gate, "");
      await v.s.joi.waitFor(() => v.s.joi.received.length === 6);
      const got = v.s.joi.received.map((r) => contentOf(r.body));
      const texts = got.filter((c) => !c.voice_transcription_failed).map((c) =>
        c.voice_transcription
      );
      const failed = got.filter((c) => c.voice_transcription_failed).map((c) =>
        c.voice_failure_reason
      );
      assert.deepEqual(texts.sort(), ["first", "note 4", "note 5", "note 6"]);
      assert.deepEqual(failed, ["voice_queue_full", "voice_queue_full"]);
      await waitUntil(() => v.s.mesh.inbound.pendingVoice === 0);
      assert.deepEqual(await files(`${v.dir}/attachments`), [], "dropped notes deleted too");
    } finally {
      await Deno.writeTextFile(gate, "");
      await v.stop();
    }
  },
});

Deno.test({
  name: "voice response: the text goes out at once, then piper -> ffmpeg Ogg/Opus as a voice note",
  ignore,
  fn: async () => {
    const v = await voiceStack();
    try {
      const r = await v.s.joi.outbound(
        v.s.url,
        outboundBody("owner", "Good morning, the heating is on.", { voice_response: true }),
      );
      assert.equal(r.status, 200);
      await v.s.peer.waitFor(() => v.s.peer.calls("send").length === 2);
      const [text, voice] = v.s.peer.calls("send").map((c) => c.params);
      assert.equal(text!.message, "Good morning, the heating is on.");
      assert.equal(text!.attachment, undefined, "the text is not held back for the audio");
      assert.equal(voice!.voiceNote, true);
      assert.equal(voice!.message, undefined);
      const att = (voice!.attachment as string[])[0]!;
      assert.match(att, /^data:audio\/ogg;filename=voice\.ogg;base64,/);
      const ogg = new TextDecoder("latin1").decode(dataUriBytes(att));
      assert.ok(ogg.startsWith("OggS") && ogg.includes("OpusHead"), "real Ogg/Opus from ffmpeg");
      // spoken with the voice of the text's language
      assert.deepEqual(readLines(`${v.dir}/en_US-lessac-medium.onnx.spoken`), [
        "Good morning, the heating is on.",
      ]);
      assert.deepEqual(readLines(`${v.dir}/sk_SK-lili-medium.onnx.spoken`), []);
      const sk = await v.s.joi.outbound(
        v.s.url,
        outboundBody("partner", "Dobré ráno, kúrenie je zapnuté.", { voice_response: true }),
      );
      assert.equal(sk.status, 200);
      await v.s.peer.waitFor(() => v.s.peer.calls("send").length === 4);
      // a voice send that ended is not kept (each one used to stay until shutdown)
      await waitUntil(() => v.s.mesh.outbound.backgroundSends === 0, 10_000);
      assert.deepEqual(readLines(`${v.dir}/sk_SK-lili-medium.onnx.spoken`), [
        "Dobré ráno, kúrenie je zapnuté.",
      ]);
      assert.deepEqual(await files(`${v.s.dir}/state/voice`), []);
    } finally {
      await v.stop();
    }
  },
});

Deno.test({
  name: "voice response: no voice for the reply's language means text only (the fallback)",
  ignore,
  fn: async () => {
    const v = await voiceStack(
      {},
      {
        edit: (c) => {
          c.household = { ...c.household, language: "sk" };
          const voice = c.settings.voice!;
          c.settings = {
            ...c.settings,
            voice: {
              ...voice,
              piper: { ...voice.piper!, voices: { en: voice.piper!.voices.en! } },
            },
          };
        },
      },
    );
    try {
      const r = await v.s.joi.outbound(
        v.s.url,
        outboundBody("owner", "Dobré ráno, v kuchyni je teplo.", { voice_response: true }),
      );
      assert.equal(r.status, 200);
      await v.s.mesh.outbound.settled();
      const sends = v.s.peer.calls("send");
      assert.equal(sends.length, 1, "the text alone");
      assert.equal(sends[0]!.params.message, "Dobré ráno, v kuchyni je teplo.");
      assert.equal(
        events(v.s.logs, "voice_response_not_spoken")[0]!.reason,
        "no_voice_for_language",
      );
      assert.ok(events(v.s.logs, "voice_language_limit").length >= 1, "said once at start");
    } finally {
      await v.stop();
    }
  },
});

Deno.test({
  name: "voice response: a piper that hangs is killed; the text still goes out, without audio",
  ignore,
  fn: async () => {
    const v = await voiceStack({ timeout_seconds: 1 });
    try {
      const r = await v.s.joi.outbound(
        v.s.url,
        outboundBody("owner", "please HANG", { voice_response: true }),
      );
      assert.equal(r.status, 200);
      await v.s.mesh.outbound.settled();
      const sends = v.s.peer.calls("send");
      assert.equal(sends.length, 1);
      assert.equal(sends[0]!.params.message, "please HANG");
      assert.equal(sends[0]!.params.attachment, undefined);
      assert.equal(events(v.s.logs, "voice_response_not_spoken")[0]!.reason, "tts_timeout");
      assert.deepEqual(await files(`${v.s.dir}/state/voice`), []);
    } finally {
      await v.stop();
    }
  },
});

Deno.test({
  name: "voice: files left behind (a crash) never outlive the retention; younger ones stay",
  ignore,
  fn: async () => {
    // retention 0.1 min = 6 s: a sweep every 1.2 s removes what is older than 4.8 s, so no
    // file lives longer than the retention (the 5 minutes of the architecture, scaled down)
    const v = await voiceStack({ retention_minutes: 0.1 }, { timers: true });
    try {
      const old = [`${v.dir}/attachments/left-by-a-crash`, `${v.s.dir}/state/voice/half.wav`];
      const young = `${v.dir}/attachments/just-arrived`;
      const past = new Date(Date.now() - 5_000);
      for (const f of old) {
        await Deno.writeTextFile(f, "x");
        await Deno.utime(f, past, past);
      }
      await Deno.writeTextFile(young, "x");
      await waitUntil(() => old.every((f) => !exists(f)), 20_000);
      assert.ok(exists(young), "a file younger than retention less one sweep interval stays");
    } finally {
      await v.stop();
    }
  },
});

function exists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}

Deno.test({
  name:
    "voice: a note whose contentType an older client left out is recognised by its bytes; other files stay files",
  ignore,
  fn: async () => {
    const v = await voiceStack();
    try {
      await v.note("SAY is the garage closed", { contentType: null });
      await v.s.joi.waitFor(() => v.s.joi.received.length === 1);
      const c = contentOf(v.s.joi.received[0]!.body);
      assert.equal(c.type, "voice", "transcribed, not dropped as a file");
      assert.equal(c.voice_transcription, "is the garage closed");
      // a JPEG and a PDF without a content type are files, never sent to whisper
      const jpeg = new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 0, 16, 0x4a, 0x46, 0x49, 0x46, 0, 1]);
      await v.note("", { raw: jpeg, contentType: null });
      await v.note("", { raw: "%PDF-1.7\n", contentType: null });
      await v.s.joi.waitFor(() => v.s.joi.received.length === 3);
      const types = v.s.joi.received.map((r) => contentOf(r.body).type);
      assert.deepEqual(types, ["voice", "file", "file"]);
      assert.deepEqual(readLines(`${v.dir}/ggml-medium.bin.calls`), ["auto"], "whisper ran once");
      await waitUntil(() => Deno.readDirSync(`${v.dir}/attachments`).toArray().length === 0);
    } finally {
      await v.stop();
    }
  },
});
