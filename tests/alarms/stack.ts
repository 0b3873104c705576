/**
 * The alarm path as it runs: the real relay, joi and mesh, each a child
 * process started with exactly its manifest flags (`denoRunArgs(programSpec)`)
 * on loopback, with its own keys (the relay signs with openhab_to_joi.key,
 * joi requires it), and the protocol-faithful stand-ins for what cannot run
 * here: openHAB's event stream (SSE) and signal-cli (JSON-RPC on a Unix
 * socket), both in the test process so a test can push events and read every
 * `send`. joi can be stopped (SIGTERM or SIGKILL) and started again on the
 * same ports and state at any moment.
 *
 * @module
 */
import { FFMPEG } from "../peers/signal_cli/voice_note.ts";
import type { Document } from "yaml";
import { parseYaml } from "../../services/common/policy/parse_yaml.ts";
import {
  denoRunArgs,
  type Layout,
  localLayout,
  programSpec,
} from "../../services/common/permissions/mod.ts";
import { generateKeyFile } from "../../services/common/wire/keys.ts";
import { generateMemoryKeyFile } from "../../services/joi/memory/crypto.ts";
import { type OpenhabEvent, type OpenhabSse, startOpenhabSse } from "../peers/openhab_sse.ts";
import { type RecordedRequest, SignalCliPeer } from "../peers/signal_cli/peer.ts";
import { Child, waitUntil } from "../e2e/process.ts";
import {
  claimSocket,
  expectedGroups,
  FAST_MESH_YAML,
  freePort,
  GROUPS,
} from "../services/mesh/harness.ts";

/** Options of {@link startStack}. */
export interface StackOptions {
  /** Edits `policy.yaml` (a YAML document: `doc.setIn(["iot", ...], value)`). */
  policy?: (doc: Document.Parsed) => void;
  /** Voice notes on the mesh: Debian's ffmpeg, the whisper.cpp stand-in (`tests/peers/signal_cli/bin`). */
  voice?: boolean;
  /**
   * Spoken replies too (with `voice`): the piper stand-in with the English
   * voice `<dir>/voice.onnx` (it writes what it spoke to `voice.onnx.spoken`).
   */
  speak?: boolean;
  /** Lines added to `mesh.yaml` (YAML, each ending in a newline). */
  meshYaml?: string;
  /** The port of an LLM stand-in already listening (default: a free port, nothing there). */
  llmPort?: number;
}

/** A running stack. */
export interface Stack {
  dir: string;
  layout: Layout;
  /** signal-cli's attachments folder (voice notes are written here). */
  attachments: string;
  sse: OpenhabSse;
  peer: SignalCliPeer;
  relay: Child;
  mesh: Child;
  joi: Child;
  /** Every joi process so far (restarts append), for its logs. */
  jois: Child[];
  /** Pushes one openHAB event to the relay's stream. */
  push(ev: OpenhabEvent): void;
  /** Stops joi (`SIGTERM`, or `SIGKILL` as a crash) and waits for it to exit. */
  stopJoi(signal: "SIGTERM" | "SIGKILL"): Promise<void>;
  /** Starts joi again (same ports, state, keys) and waits for its /health. */
  startJoi(): Promise<void>;
  /** Stops the relay (SIGTERM: it logs `relay_stopped` with what it carried; SIGKILL: a crash). */
  stopRelay(signal?: "SIGTERM" | "SIGKILL"): Promise<void>;
  /** Starts the relay again and waits until it holds openHAB's stream. */
  startRelay(): Promise<void>;
  /** Stops the mesh (`SIGTERM`, or `SIGKILL` as a crash) and waits for it to exit. */
  stopMesh(signal: "SIGTERM" | "SIGKILL"): Promise<void>;
  /** Starts the mesh again (same ports, state, keys) and waits until it holds signal-cli's socket. */
  startMesh(): Promise<void>;
  /** `send` requests signal-cli got for the critical group, in order. */
  criticalSends(): RecordedRequest[];
  /** True for a `send` to the critical group. */
  isCriticalSend(r: RecordedRequest): boolean;
  /** Parsed JSON log lines of a process (all jois for `joi`). */
  logs(which: "relay" | "mesh" | "joi"): Record<string, unknown>[];
  /** Stops everything and removes the folder. */
  close(): Promise<void>;
}

const TOKEN = "oh.alarm-stack-token-0123456789";

/** A service with its manifest flags and environment, as its unit starts it. */
function spawn(layout: Layout, program: "joi" | "mesh" | "openhab_relay"): Child {
  const spec = programSpec(program, layout);
  return new Child(program, "deno", denoRunArgs(spec), { env: { ...spec.env } });
}

async function waitHealthy(child: Child, url: string): Promise<void> {
  await waitUntil(
    `${child.name}'s ${url}`,
    async () => {
      try {
        const r = await fetch(url, { signal: AbortSignal.timeout(2_000) });
        await r.body?.cancel();
        return r.ok;
      } catch {
        return false; // not up yet
      }
    },
    60_000,
    [child],
  );
}

/** The JSON log lines a service wrote to stderr. */
function logLines(child: Child): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const l of child.output.join("").split("\n")) {
    if (!l.startsWith("{")) continue;
    try {
      out.push(JSON.parse(l));
    } catch { /* not a log line */ }
  }
  return out;
}

/** Starts the stand-ins and the three services. */
export async function startStack(o: StackOptions = {}): Promise<Stack> {
  const dir = await Deno.makeTempDir({ prefix: "joi-alarms-" });
  const sock = await claimSocket();
  const config = `${dir}/policies`;
  const secrets = `${dir}/secrets`;
  await Deno.mkdir(config);
  await Deno.mkdir(secrets, { mode: 0o700 });
  for (const e of Deno.readDirSync("policies")) {
    if (e.isFile) Deno.copyFileSync(`policies/${e.name}`, `${config}/${e.name}`);
  }
  const { doc } = parseYaml(Deno.readTextFileSync(`${config}/policy.yaml`));
  o.policy?.(doc);
  Deno.writeTextFileSync(`${config}/policy.yaml`, doc.toString());
  const attachments = `${dir}/signal-cli/attachments`;
  await Deno.mkdir(attachments, { recursive: true });
  const bin = Deno.realPathSync("tests/peers/signal_cli/bin");
  const piper = { bin: `${bin}/piper`, voices: { en: `${dir}/voice.onnx` } };
  const voice = {
    whisper: { bin: `${bin}/whisper-cli`, model: `${dir}/model.bin` },
    ffmpeg: { bin: FFMPEG }, // Debian's real ffmpeg
    ...(o.speak ? { piper } : {}),
  };
  Deno.writeTextFileSync(`${dir}/model.bin`, "m");
  Deno.writeTextFileSync(`${dir}/voice.onnx`, "m");
  Deno.writeTextFileSync(
    `${config}/mesh.yaml`,
    FAST_MESH_YAML + (o.voice ? `voice: ${JSON.stringify(voice)}\n` : "") + (o.meshYaml ?? ""),
  );
  for (const k of ["mesh_to_joi.key", "joi_to_mesh.key", "openhab_to_joi.key"]) {
    await generateKeyFile(`${secrets}/${k}`);
  }
  await generateMemoryKeyFile(`${secrets}/memory.key`);
  Deno.writeTextFileSync(`${secrets}/openhab_token`, TOKEN + "\n", { mode: 0o600 });
  Deno.chmodSync(`${secrets}/openhab_token`, 0o600);

  const sse = startOpenhabSse(TOKEN);
  const peer = SignalCliPeer.start({ path: sock.path });
  peer.groups = expectedGroups();
  const layout: Layout = {
    ...localLayout({ varDir: dir }),
    joiConfigDir: config,
    meshConfigDir: config,
    relayConfigDir: config,
    secretsDir: () => secrets,
    joiInbound: { host: "127.0.0.1", port: freePort() },
    joiIngest: { host: "127.0.0.1", port: freePort() },
    meshOutbound: { host: "127.0.0.1", port: freePort() },
    llm: { host: "127.0.0.1", port: o.llmPort ?? freePort() },
    openhab: { host: "127.0.0.1", port: Number(new URL(sse.url).port) },
    signal: { kind: "socket", path: sock.path },
    signalAttachmentsDir: attachments,
    ...(o.voice
      ? {
        meshVoice: {
          whisperBin: voice.whisper.bin,
          ffmpegBin: voice.ffmpeg.bin,
          ...(o.speak ? { piperBin: piper.bin } : {}),
        },
      }
      : {}),
  };
  for (const d of [layout.joiStateDir, layout.meshStateDir, layout.relayStateDir, layout.logDir]) {
    await Deno.mkdir(d, { recursive: true, mode: 0o700 });
  }
  const procs: Child[] = [];
  const jois: Child[] = [];
  const startJoi = async () => {
    const joi = spawn(layout, "joi");
    procs.push(joi);
    jois.push(joi);
    stack.joi = joi;
    await waitHealthy(joi, `http://127.0.0.1:${layout.joiIngest.port}/health`);
  };
  const startRelay = async () => {
    const connected = sse.connections;
    stack.relay = spawn(layout, "openhab_relay");
    procs.push(stack.relay);
    await sse.waitConnections(connected + 1, 60_000);
  };
  const startMesh = async () => {
    const connected = peer.connections;
    stack.mesh = spawn(layout, "mesh");
    procs.push(stack.mesh);
    await waitHealthy(stack.mesh, `http://127.0.0.1:${layout.meshOutbound.port}/health`);
    await peer.waitFor(() => peer.connections > connected && peer.connected, 30_000);
  };
  const stack: Stack = {
    dir,
    layout,
    attachments,
    sse,
    peer,
    relay: undefined as unknown as Child,
    mesh: undefined as unknown as Child,
    joi: undefined as unknown as Child,
    jois,
    push: (ev) => sse.push(ev),
    stopJoi: (signal) => stack.joi.stop(signal),
    stopRelay: (signal = "SIGTERM") => stack.relay.stop(signal),
    startRelay,
    startJoi,
    stopMesh: (signal) => stack.mesh.stop(signal),
    startMesh,
    criticalSends: () => peer.calls("send").filter((r) => stack.isCriticalSend(r)),
    isCriticalSend: (r) => r.method === "send" && r.params.groupId === GROUPS.critical_group,
    logs: (which) =>
      which === "joi"
        ? jois.flatMap(logLines)
        : logLines(which === "relay" ? stack.relay : stack.mesh),
    async close() {
      for (const p of procs) await p.stop("SIGTERM");
      await sse.close();
      await peer.stop();
      sock.release();
      await Deno.remove(dir, { recursive: true });
    },
  };
  try {
    await startJoi();
    await startMesh();
    await startRelay();
  } catch (e) {
    await stack.close().catch(() => {});
    throw e;
  }
  return stack;
}
