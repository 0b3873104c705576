/**
 * The mesh as a real child process started with its manifest flags
 * (`denoRunArgs(programSpec("mesh", layout))`), against the signal-cli peer
 * and a signature-verifying joi.
 */
import assert from "node:assert/strict";
import {
  denoRunArgs,
  type Layout,
  localLayout,
  programSpec,
} from "../../../services/common/permissions/mod.ts";
import { dataEnvelope, SignalCliPeer, voiceAttachment } from "../../peers/signal_cli/peer.ts";
import { FFMPEG, makeVoiceNote } from "../../peers/signal_cli/voice_note.ts";
import {
  ACCOUNT,
  claimSocket,
  expectedGroups,
  FakeJoi,
  freePort,
  makeKeys,
  meshLayout,
  outboundBody,
  OWNER,
  STRANGER,
  waitForHealth,
  waitUntil,
  writeConfigDir,
} from "./harness.ts";

interface Child {
  process: Deno.ChildProcess;
  stderr: string[];
}

function spawnMesh(layout: Layout): Child {
  const process = new Deno.Command("deno", {
    args: denoRunArgs(programSpec("mesh", layout)),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const stderr: string[] = [];
  (async () => {
    const dec = new TextDecoder();
    for await (const c of process.stderr) stderr.push(dec.decode(c));
  })().catch(() => {});
  return { process, stderr };
}

async function setup() {
  const dir = await Deno.makeTempDir({ prefix: "mesh-proc-" });
  const sock = await claimSocket();
  const keys = await makeKeys(`${dir}/secrets`);
  await writeConfigDir(`${dir}/config`);
  const joi = new FakeJoi(keys, dir);
  const meshPort = freePort();
  const layout = meshLayout(dir, { joiPort: joi.port, meshPort, signalSocket: sock.path });
  const peer = SignalCliPeer.start({ path: sock.path });
  peer.groups = expectedGroups();
  return { dir, sock, keys, joi, meshPort, layout, peer };
}

type Setup = Awaited<ReturnType<typeof setup>>;

/** Stops the child, the peer and joi, and removes everything `setup` made. */
async function teardown(t: Setup, child: Child) {
  await kill(child, "SIGTERM");
  await t.peer.stop();
  await t.joi.close();
  t.sock.release();
  await Deno.remove(t.dir, { recursive: true });
}

/**
 * Writes a mesh.yaml with voice on (the test peer's whisper-cli and ffmpeg)
 * and returns the voice section and the layout granting its tools.
 */
async function withVoice(t: Setup) {
  const bin = Deno.realPathSync("tests/peers/signal_cli/bin");
  const att = `${t.dir}/attachments`;
  await Deno.mkdir(att);
  await Deno.writeTextFile(`${t.dir}/model.bin`, "m");
  const voice = {
    whisper: { bin: `${bin}/whisper-cli`, model: `${t.dir}/model.bin` },
    ffmpeg: { bin: FFMPEG },
  };
  await Deno.writeTextFile(
    `${t.dir}/config/mesh.yaml`,
    `queue: { retry_initial_ms: 20, retry_max_ms: 100 }\naccount: { number: "${ACCOUNT.number}" }\n` +
      `voice: ${JSON.stringify(voice)}\n`,
  );
  const layout: Layout = {
    ...t.layout,
    signalAttachmentsDir: att,
    meshVoice: { whisperBin: voice.whisper.bin, ffmpegBin: voice.ffmpeg.bin },
  };
  return { att, layout };
}

async function waitHealthy(child: Child, port: number) {
  try {
    return await waitForHealth(
      port,
      (h) => (h.signal as { state: string }).state === "connected",
      "mesh did not become healthy",
      60_000,
    );
  } catch (e) {
    throw new Error(`${(e as Error).message}\n${child.stderr.join("")}`);
  }
}

/** The queue depth of a `/health` answer. */
const depth = (h: Record<string, unknown>) => (h.queue as { depth: number }).depth;

async function kill(child: Child, signal: Deno.Signal) {
  try {
    child.process.kill(signal);
  } catch { /* exited */ }
  await child.process.status;
}

Deno.test("end to end as a child process with its manifest flags: DM in, unknown dropped, outbound out", async () => {
  const t = await setup();
  t.joi.start();
  const child = spawnMesh(t.layout);
  try {
    await waitHealthy(child, t.meshPort);
    t.peer.push(dataEnvelope({ ...STRANGER, timestamp: 1, text: "intruder" }));
    t.peer.push(dataEnvelope({ ...OWNER, timestamp: 2, text: "hello from the phone" }));
    await t.joi.waitFor(() => t.joi.received.length === 1);
    assert.equal(t.joi.received[0]!.headers["x-validated-channel"], "owner_private_dm");
    assert.deepEqual(t.joi.texts(), ["hello from the phone"]);
    const r = await t.joi.outbound(`http://127.0.0.1:${t.meshPort}`, outboundBody("owner", "hi!"));
    assert.equal(r.status, 200);
    assert.deepEqual(t.peer.calls("send")[0]!.params.recipient, [OWNER.number]);
    const sec = await Deno.readTextFile(`${t.dir}/log/mesh-security.log`);
    assert.match(sec, /unknown_sender_dropped/);
    assert.ok(!sec.includes("intruder") && !sec.includes(STRANGER.number));
  } finally {
    await teardown(t, child);
  }
});

Deno.test("mesh killed with SIGKILL and restarted: nothing accepted from Signal is lost", async () => {
  const t = await setup();
  let child = spawnMesh(t.layout);
  try {
    await waitHealthy(child, t.meshPort);
    // joi is down: the mesh accepts and queues
    for (let i = 0; i < 20; i++) {
      t.peer.push(dataEnvelope({ ...OWNER, timestamp: 100 + i, text: `k${i}` }));
    }
    await waitForHealth(t.meshPort, (h) => depth(h) === 20, "queue did not fill");
    await kill(child, "SIGKILL");
    await t.peer.waitFor(() => !t.peer.connected);
    // arrives while the mesh is dead: signal-cli (on-connection) holds it
    t.peer.push(dataEnvelope({ ...OWNER, timestamp: 200, text: "while dead" }));
    // the same envelopes redelivered after the restart must not duplicate
    t.peer.push(dataEnvelope({ ...OWNER, timestamp: 105, text: "k5" }));
    child = spawnMesh(t.layout);
    await waitHealthy(child, t.meshPort);
    t.joi.start();
    await t.joi.waitFor(() => t.joi.received.length >= 21);
    const expected = [...Array.from({ length: 20 }, (_, i) => `k${i}`), "while dead"];
    await waitForHealth(t.meshPort, (h) => depth(h) === 0, "queue did not drain");
    assert.deepEqual(t.joi.texts(), expected);
  } finally {
    await teardown(t, child);
  }
});

Deno.test("local run: --terminal with ./policies; a typed line is accepted and queued for joi", async () => {
  const dir = await Deno.makeTempDir({ prefix: "mesh-local-" });
  await makeKeys(`${dir}/secrets`);
  const base = freePort();
  const layout: Layout = {
    ...localLayout({ varDir: dir, basePort: base }),
    meshOutbound: { host: "127.0.0.1", port: freePort() },
  };
  const process = new Deno.Command("deno", {
    args: denoRunArgs(programSpec("mesh", layout)),
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const stderr: string[] = [];
  const stdout: string[] = [];
  const drain = async (s: ReadableStream<Uint8Array>, into: string[]) => {
    const dec = new TextDecoder();
    for await (const c of s) into.push(dec.decode(c));
  };
  const drains = [drain(process.stderr, stderr), drain(process.stdout, stdout)];
  const child: Child = { process, stderr };
  const writer = process.stdin.getWriter();
  try {
    await waitHealthy(child, layout.meshOutbound.port);
    await writer.write(new TextEncoder().encode("hello from the terminal\n@nobody x\n"));
    await waitForHealth(layout.meshOutbound.port, (h) => depth(h) === 1, "not queued")
      .catch((e) => {
        throw new Error(`${e.message}\n${stderr.join("")}`);
      });
    await waitUntil(() => stdout.join("").includes("no group for @nobody"));
    // stdout carries only the chat: every log line went to stderr
    assert.ok(!stdout.join("").includes('"level"'));
    assert.match(stderr.join(""), /inbound_queued/);
  } finally {
    await writer.close().catch(() => {});
    await kill(child, "SIGTERM");
    await Promise.allSettled(drains);
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("voice in the child process: the manifest grants exactly the configured tools", async () => {
  const t = await setup();
  const { att, layout } = await withVoice(t);
  t.joi.start();
  // without meshVoice in the layout the sandbox lacks the tools: refused at start
  const refused = await new Deno.Command("deno", {
    args: denoRunArgs(programSpec("mesh", t.layout)),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).output();
  assert.equal(refused.code, 1);
  assert.match(new TextDecoder().decode(refused.stderr), /--allow-run=.*whisper-cli/);
  const child = spawnMesh(layout);
  try {
    await waitHealthy(child, t.meshPort);
    const size = await makeVoiceNote(`${att}/v1`, 2, "SAY lights off");
    t.peer.push(dataEnvelope({
      ...OWNER,
      timestamp: 900,
      text: null,
      attachments: [voiceAttachment("v1", size)],
    }));
    await t.joi.waitFor(() => t.joi.received.length === 1);
    const c = t.joi.received[0]!.body.content as Record<string, unknown>;
    assert.equal(c.voice_transcription, "lights off");
    assert.deepEqual([...Deno.readDirSync(att)], [], "the note was deleted");
  } finally {
    await teardown(t, child);
  }
});

Deno.test("a voice note being transcribed when the mesh is SIGKILLed is resumed after restart", async () => {
  const t = await setup();
  const { att, layout } = await withVoice(t);
  t.joi.start();
  const gate = `${t.dir}/gate`;
  let child = spawnMesh(layout);
  try {
    await waitHealthy(child, t.meshPort);
    const size = await makeVoiceNote(`${att}/v2`, 1, `WAIT ${gate} SAY survived`);
    t.peer.push(dataEnvelope({
      ...OWNER,
      timestamp: 901,
      text: null,
      attachments: [voiceAttachment("v2", size)],
    }));
    await waitForHealth(
      t.meshPort,
      (h) => (h.voice as { busy: boolean } | undefined)?.busy === true,
      "voice job did not start",
    );
    await kill(child, "SIGKILL");
    await Deno.writeTextFile(gate, "");
    child = spawnMesh(layout);
    await waitHealthy(child, t.meshPort);
    await t.joi.waitFor(() => t.joi.received.length === 1);
    const c = t.joi.received[0]!.body.content as Record<string, unknown>;
    assert.equal(c.voice_transcription, "survived");
  } finally {
    await Deno.writeTextFile(gate, "").catch(() => {});
    await teardown(t, child);
  }
});
