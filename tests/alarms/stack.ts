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
import {
  claimSocket,
  expectedGroups,
  FAST_MESH_YAML,
  freePort,
  GROUPS,
} from "../services/mesh/harness.ts";

/** One running service process. */
export interface Proc {
  child: Deno.ChildProcess;
  /** Its stderr, line by line (JSON log lines and anything else it printed). */
  lines: string[];
  /** Resolves when its stderr is drained (after exit). */
  drained: Promise<void>;
}

/** Options of {@link startStack}. */
export interface StackOptions {
  /** Edits `policy.yaml` (a YAML document: `doc.setIn(["iot", ...], value)`). */
  policy?: (doc: Document.Parsed) => void;
  /** Voice notes on the mesh: Debian's ffmpeg, the whisper.cpp stand-in (`tests/peers/signal_cli/bin`). */
  voice?: boolean;
}

/** A running stack. */
export interface Stack {
  dir: string;
  layout: Layout;
  /** signal-cli's attachments folder (voice notes are written here). */
  attachments: string;
  sse: OpenhabSse;
  peer: SignalCliPeer;
  relay: Proc;
  mesh: Proc;
  joi: Proc;
  /** Every joi process so far (restarts append), for its logs. */
  jois: Proc[];
  /** Pushes one openHAB event to the relay's stream. */
  push(ev: OpenhabEvent): void;
  /** Stops joi (`SIGTERM`, or `SIGKILL` as a crash) and waits for it to exit. */
  stopJoi(signal: "SIGTERM" | "SIGKILL"): Promise<void>;
  /** Starts joi again (same ports, state, keys) and waits for its /health. */
  startJoi(): Promise<void>;
  /** Stops the relay (SIGTERM: it logs `relay_stopped` with what it carried). */
  stopRelay(): Promise<void>;
  /** `send` requests signal-cli got for the critical group, in order. */
  criticalSends(): RecordedRequest[];
  /** Parsed JSON log lines of a process (all jois for `joi`). */
  logs(which: "relay" | "mesh" | "joi"): Record<string, unknown>[];
  /** Stops everything and removes the folder. */
  close(): Promise<void>;
}

const TOKEN = "oh.alarm-stack-token-0123456789";

function spawn(layout: Layout, program: "joi" | "mesh" | "openhab_relay"): Proc {
  const spec = programSpec(program, layout);
  const child = new Deno.Command("deno", {
    args: denoRunArgs(spec),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const lines: string[] = [];
  const drained = (async () => {
    let rest = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop() ?? "";
      lines.push(...parts);
    }
    if (rest) lines.push(rest);
  })().catch(() => {});
  return { child, lines, drained };
}

async function waitHealthy(proc: Proc, url: string, what: string, limitMs = 60_000) {
  let exited = false;
  proc.child.status.then(() => (exited = true));
  const end = Date.now() + limitMs;
  while (Date.now() < end) {
    if (exited) {
      throw new Error(`${what} exited before answering ${url}:\n${proc.lines.join("\n")}`);
    }
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2_000) });
      await r.body?.cancel();
      if (r.ok) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`${what} did not answer ${url} within ${limitMs} ms:\n${proc.lines.join("\n")}`);
}

async function stop(proc: Proc, signal: "SIGTERM" | "SIGKILL"): Promise<void> {
  try {
    proc.child.kill(signal);
  } catch { /* exited */ }
  const timer = setTimeout(() => {
    try {
      proc.child.kill("SIGKILL");
    } catch { /* exited */ }
  }, 10_000);
  await proc.child.status;
  clearTimeout(timer);
  await proc.drained;
}

function parsed(lines: string[]): Record<string, unknown>[] {
  const out: Record<string, unknown>[] = [];
  for (const l of lines) {
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
  const voice = {
    whisper: { bin: `${bin}/whisper-cli`, model: `${dir}/model.bin` },
    ffmpeg: { bin: FFMPEG }, // Debian's real ffmpeg
  };
  Deno.writeTextFileSync(`${dir}/model.bin`, "m");
  Deno.writeTextFileSync(
    `${config}/mesh.yaml`,
    FAST_MESH_YAML + (o.voice ? `voice: ${JSON.stringify(voice)}\n` : ""),
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
    llm: { host: "127.0.0.1", port: freePort() },
    openhab: { host: "127.0.0.1", port: Number(new URL(sse.url).port) },
    signal: { kind: "socket", path: sock.path },
    knowledgeSocket: `${dir}/knowledge.sock`,
    signalAttachmentsDir: attachments,
    ...(o.voice
      ? { meshVoice: { whisperBin: voice.whisper.bin, ffmpegBin: voice.ffmpeg.bin } }
      : {}),
  };
  for (const d of [layout.joiStateDir, layout.meshStateDir, layout.relayStateDir, layout.logDir]) {
    await Deno.mkdir(d, { recursive: true, mode: 0o700 });
  }
  const procs: Proc[] = [];
  const jois: Proc[] = [];
  const startJoi = async () => {
    const joi = spawn(layout, "joi");
    procs.push(joi);
    jois.push(joi);
    stack.joi = joi;
    await waitHealthy(joi, `http://127.0.0.1:${layout.joiIngest.port}/health`, "joi");
  };
  const stack: Stack = {
    dir,
    layout,
    attachments,
    sse,
    peer,
    relay: undefined as unknown as Proc,
    mesh: undefined as unknown as Proc,
    joi: undefined as unknown as Proc,
    jois,
    push: (ev) => sse.push(ev),
    stopJoi: (signal) => stop(stack.joi, signal),
    stopRelay: () => stop(stack.relay, "SIGTERM"),
    startJoi,
    criticalSends: () =>
      peer.calls("send").filter((r) => r.params.groupId === GROUPS.critical_group),
    logs: (which) =>
      parsed(
        which === "joi"
          ? jois.flatMap((j) => j.lines)
          : which === "relay"
          ? stack.relay.lines
          : stack.mesh.lines,
      ),
    async close() {
      for (const p of procs) await stop(p, "SIGTERM");
      await sse.close();
      await peer.stop();
      sock.release();
      await Deno.remove(dir, { recursive: true });
    },
  };
  try {
    await startJoi();
    stack.mesh = spawn(layout, "mesh");
    procs.push(stack.mesh);
    await waitHealthy(stack.mesh, `http://127.0.0.1:${layout.meshOutbound.port}/health`, "mesh");
    await peer.waitFor(() => peer.connected, 30_000);
    stack.relay = spawn(layout, "openhab_relay");
    procs.push(stack.relay);
    await sse.waitConnections(1, 60_000);
  } catch (e) {
    await stack.close().catch(() => {});
    throw e;
  }
  return stack;
}
