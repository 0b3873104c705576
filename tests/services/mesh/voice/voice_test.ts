/**
 * Voice notes end to end, with stand-in executables that behave like
 * whisper.cpp, ffmpeg and piper on the command line
 * (tests/peers/signal_cli/bin/).
 */
import assert from "node:assert/strict";
import { dataEnvelope, voiceAttachment } from "../../../peers/signal_cli/peer.ts";
import { events, outboundBody, OWNER, startStack, waitUntil } from "../harness.ts";

const BIN = Deno.realPathSync("tests/peers/signal_cli/bin");

function meshYaml(dir: string, voice: Record<string, unknown> = {}): string {
  const v = {
    attachments_dir: `${dir}/attachments`,
    max_queue: 3,
    max_duration_seconds: 120,
    max_bytes: 100_000,
    timeout_seconds: 30,
    retention_minutes: 5,
    whisper: { bin: `${BIN}/whisper-cli`, model: `${dir}/ggml-small.bin`, language: "auto" },
    ffmpeg: { bin: `${BIN}/ffmpeg` },
    piper: { bin: `${BIN}/piper`, model: `${dir}/sk_SK-lili-medium.onnx`, max_text_length: 1000 },
    ...voice,
  };
  return `
queue: { max_depth: 1000, retry_initial_ms: 20, retry_max_ms: 100 }
config_sync: { poll_minutes: 0 }
voice: ${JSON.stringify(v)}
`;
}

/** A stack whose voice folders live in a fresh temp dir. */
async function voiceStack(voice: Record<string, unknown> = {}) {
  const dir = await Deno.makeTempDir({ prefix: "mesh-voice-" });
  await Deno.mkdir(`${dir}/attachments`);
  await Deno.writeTextFile(`${dir}/ggml-small.bin`, "model");
  await Deno.writeTextFile(`${dir}/sk_SK-lili-medium.onnx`, "voice");
  const s = await startStack({ meshYaml: meshYaml(dir, voice) });
  let ts = 1000;
  const note = async (marker: string, opts: { declaredSize?: number; pad?: number } = {}) => {
    const id = `att${ts}`;
    const text = marker + "\n" + "x".repeat(opts.pad ?? 0);
    await Deno.writeTextFile(`${dir}/attachments/${id}`, text);
    s.peer.push(dataEnvelope({
      ...OWNER,
      timestamp: ++ts,
      text: null,
      attachments: [voiceAttachment(id, opts.declaredSize ?? text.length)],
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

Deno.test("voice: a voice note is transcribed and reaches joi as text; files are deleted", async () => {
  const v = await voiceStack();
  try {
    const id = await v.note("DURATION 3 SAY turn on the heating please");
    await v.s.joi.waitFor(() => v.s.joi.received.length === 1);
    const c = contentOf(v.s.joi.received[0]!.body);
    assert.equal(c.type, "voice");
    assert.equal(c.voice_transcription, "turn on the heating please");
    assert.equal(c.voice_transcription_failed, false);
    assert.ok(Math.abs((c.voice_duration_ms as number) - 3000) < 50, String(c.voice_duration_ms));
    assert.equal(v.s.joi.received[0]!.headers["x-validated-channel"], "owner_private_dm");
    assert.deepEqual(await files(`${v.dir}/attachments`), [], `${id} deleted`);
    assert.deepEqual(await files(`${v.s.dir}/state/voice`), [], "no temp file left");
  } finally {
    await v.stop();
  }
});

Deno.test("voice: a whisper that hangs is killed at the timeout; joi gets a structured failure, no path", async () => {
  const v = await voiceStack({ timeout_seconds: 1 });
  try {
    await v.note("DURATION 2 HANG");
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
});

Deno.test("voice: oversize (declared or on disk), too long, and whisper errors are refused cleanly", async () => {
  const v = await voiceStack({ max_bytes: 1000 });
  try {
    // one at a time: the queue limit is not under test here
    const one = async (marker: string, opts: { declaredSize?: number; pad?: number } = {}) => {
      const n = v.s.joi.received.length;
      await v.note(marker, opts);
      await v.s.joi.waitFor(() => v.s.joi.received.length === n + 1);
    };
    await one("DURATION 1 SAY declared too big", { declaredSize: 10_485_761 });
    await one("DURATION 1 SAY big on disk", { declaredSize: 10, pad: 5000 });
    await one("DURATION 200 SAY way too long");
    await one("DURATION 1 FAIL");
    await one("DURATION 1 CORRUPT");
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
});

Deno.test("voice: one job at a time, at most 3 waiting; overflow drops the oldest and logs it", async () => {
  const v = await voiceStack();
  const gate = `${v.dir}/gate`;
  try {
    await v.note(`DURATION 1 WAIT ${gate} SAY first`);
    await waitUntil(() => v.s.mesh.voice!.busy);
    for (let i = 2; i <= 6; i++) await v.note(`DURATION 1 SAY note ${i}`);
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
});

Deno.test("voice response: piper speaks, ffmpeg encodes Ogg, signal-cli gets a data: attachment", async () => {
  const v = await voiceStack();
  try {
    const r = await v.s.joi.outbound(
      v.s.url,
      outboundBody("owner", "dobré ráno", { voice_response: true }),
    );
    assert.equal(r.status, 200);
    await v.s.peer.waitFor(() => v.s.peer.calls("send").length === 1);
    const p = v.s.peer.calls("send")[0]!.params;
    assert.equal(p.message, "dobré ráno");
    const att = (p.attachment as string[])[0]!;
    assert.match(att, /^data:audio\/ogg;filename=voice\.ogg;base64,/);
    const decoded = new TextDecoder().decode(
      Uint8Array.from(atob(att.split(",")[1]!), (ch) => ch.charCodeAt(0)),
    );
    assert.equal(decoded, "OggSTTS dobré ráno\n");
    assert.deepEqual(await files(`${v.s.dir}/state/voice`), []);
  } finally {
    await v.stop();
  }
});

Deno.test("voice response: a piper that hangs is killed; the text still goes out, without audio", async () => {
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
});
