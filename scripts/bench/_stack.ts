/**
 * The three services of a deployment as real processes on loopback, for the
 * memory benchmarks: the mesh, joi and the openHAB relay, each started with
 * its manifest entry's flags and environment (as its unit starts it), wired to
 * each other with real keys and signed requests, and to stand-ins for what
 * cannot run here: signal-cli (a JSON-RPC peer on a Unix socket), openHAB's
 * event stream, and Ollama.
 *
 * The policies are the examples of `policies/` with the outbound, inbound and
 * LLM limits raised (see {@link relaxedPolicies}): a benchmark sends a day's
 * traffic in minutes, which the per-minute limits would refuse by design.
 *
 * @module
 */
import { type Layout, localLayout } from "../../services/common/permissions/mod.ts";
import {
  denoRunArgs,
  type ProgramName,
  programSpec,
} from "../../services/common/permissions/mod.ts";
import { generateKeyFile } from "../../services/common/wire/keys.ts";
import { LlmTestServer } from "../../tests/peers/llm_server.ts";
import { type OpenhabSse, startOpenhabSse } from "../../tests/peers/openhab_sse.ts";
import { SignalCliPeer } from "../../tests/peers/signal_cli/peer.ts";
import {
  claimSocket,
  expectedGroups,
  FAST_MESH_YAML,
  freePort,
  meshHealth,
} from "../../tests/services/mesh/harness.ts";

/** The services a {@link Stack} can run. */
export type StackService = "mesh" | "joi" | "openhab_relay";

/**
 * Copies `./policies` to `dir` with the rate limits raised (outbound, inbound
 * and LLM), so a benchmark measures the services' work rather than their
 * limits. Everything else is the shipped example.
 */
export async function relaxedPolicies(dir: string): Promise<void> {
  await Deno.mkdir(dir, { recursive: true });
  for await (const e of Deno.readDir("./policies")) {
    if (!e.isFile) continue;
    let text = await Deno.readTextFile(`./policies/${e.name}`);
    if (e.name === "policy.yaml") {
      text = text
        .replace(
          /per_hour: \d+,\s+per_minute: \d+,\s+cooldown_seconds: \d+/g,
          "per_hour: 1000000, per_minute: 100000, cooldown_seconds: 0",
        )
        .replace(
          /others: +\{ per_hour: \d+,\s+per_minute: \d+ \}/,
          "others: { per_hour: 1000000, per_minute: 100000 }",
        )
        .replace(/calls_per_hour: \d+/, "calls_per_hour: 1000000");
    }
    await Deno.writeTextFile(`${dir}/${e.name}`, text);
  }
}

/** A running service. */
export interface StackChild {
  name: StackService;
  process: Deno.ChildProcess;
  /** The last warnings and errors it logged (never message text), to explain a bad run. */
  notable: string[];
}

/** The stack: stand-ins, services and where everything lives. */
export interface Stack {
  dir: string;
  layout: Layout;
  /** The signal-cli stand-in the mesh is connected to. */
  signal: SignalCliPeer;
  /** The openHAB event stream the relay reads. */
  openhab: OpenhabSse;
  llm: LlmTestServer;
  children: Map<StackService, StackChild>;
  /** Turns openHAB's 10 s keep-alive on or off (off: a silent stream, as when openHAB hangs). */
  keepAlives(on: boolean): void;
  /** Stops everything and removes the directory. */
  close(): Promise<void>;
}

/** The openHAB API token of the stand-in (a test value, in a 0600 file like production's). */
const OPENHAB_TOKEN = "bench-openhab-token-0123456789";

/**
 * Starts the stand-ins and `services` (in the order mesh, joi, relay), and
 * resolves when each is up: the mesh connected to signal-cli, joi answering
 * `/health`, the relay subscribed to the event stream.
 */
export async function startStack(services: StackService[]): Promise<Stack> {
  const dir = await Deno.makeTempDir({ prefix: "joi-stack-" });
  const sock = await claimSocket();
  const signal = SignalCliPeer.start({ path: sock.path });
  signal.groups = expectedGroups();
  const llm = await LlmTestServer.start({ reply: () => "Sure, done.", keepRequests: 0 });
  const openhab = startOpenhabSse(OPENHAB_TOKEN);
  // like openHAB, a keep-alive every 10 s (the relay reconnects after 3 silent periods)
  let keepAlive: ReturnType<typeof setInterval> | undefined;
  const keepAlives = (on: boolean) => {
    clearInterval(keepAlive);
    keepAlive = on ? setInterval(() => openhab.alive(), 10_000) : undefined;
  };
  keepAlives(true);
  const children = new Map<StackService, StackChild>();
  const layout: Layout = {
    ...localLayout({ varDir: dir }),
    joiConfigDir: `${dir}/policies`,
    meshConfigDir: `${dir}/policies`,
    relayConfigDir: `${dir}/policies`,
    joiInbound: { host: "127.0.0.1", port: freePort() },
    joiIngest: { host: "127.0.0.1", port: freePort() },
    meshOutbound: { host: "127.0.0.1", port: freePort() },
    llm: { host: "127.0.0.1", port: Number(new URL(llm.origin).port) },
    openhab: { host: "127.0.0.1", port: Number(new URL(openhab.url).port) },
    signal: { kind: "socket", path: sock.path },
  };
  const stack: Stack = {
    dir,
    layout,
    signal,
    openhab,
    llm,
    children,
    keepAlives,
    async close() {
      keepAlives(false);
      for (const c of children.values()) await stop(c);
      await signal.stop();
      sock.release();
      await openhab.close();
      await llm.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
  try {
    await relaxedPolicies(`${dir}/policies`);
    await Deno.writeTextFile(`${dir}/policies/mesh.yaml`, FAST_MESH_YAML);
    const secrets = layout.secretsDir("joi");
    await Deno.mkdir(secrets, { recursive: true, mode: 0o700 });
    for (const k of ["mesh_to_joi.key", "joi_to_mesh.key", "memory.key", "openhab_to_joi.key"]) {
      await generateKeyFile(`${secrets}/${k}`);
    }
    await Deno.writeTextFile(`${secrets}/openhab_token`, OPENHAB_TOKEN, { mode: 0o600 });
    for (
      const d of [layout.joiStateDir, layout.meshStateDir, layout.relayStateDir, layout.logDir]
    ) {
      await Deno.mkdir(d, { recursive: true, mode: 0o700 });
    }
    for (const name of services) children.set(name, spawn(name, layout));
    await waitUp(stack, services);
    return stack;
  } catch (e) {
    await stack.close();
    throw e;
  }
}

/** SIGTERM, then SIGKILL after 10 s (systemd's TimeoutStopSec of the units). */
async function stop(c: StackChild): Promise<void> {
  try {
    c.process.kill("SIGTERM");
  } catch { /* exited */ }
  let timer: ReturnType<typeof setTimeout> | undefined;
  const killed = await Promise.race([
    c.process.status.then(() => false),
    new Promise<boolean>((r) => (timer = setTimeout(() => r(true), 10_000))),
  ]);
  clearTimeout(timer);
  if (killed) {
    console.log(`${c.name} did not stop within 10 s of SIGTERM: killed`);
    c.process.kill("SIGKILL");
    await c.process.status;
  }
}

/** Starts one service with its manifest flags and environment, keeping its warnings. */
function spawn(name: StackService, layout: Layout): StackChild {
  const spec = programSpec(name as ProgramName, layout);
  const process = new Deno.Command("deno", {
    args: denoRunArgs(spec),
    env: { ...spec.env },
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
  const child: StackChild = { name, process, notable: [] };
  void (async () => {
    let rest = "";
    for await (const chunk of process.stderr.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop() ?? "";
      for (const l of lines) {
        if (/"level":"(warn|error|security)"|^error|^\S+: /.test(l)) {
          child.notable.push(l.slice(0, 300));
          if (child.notable.length > 20) child.notable.shift();
        }
      }
    }
  })();
  return child;
}

/** Waits until each started service is up (60 s each at most: a safety net, not a timing). */
async function waitUp(stack: Stack, services: StackService[]): Promise<void> {
  const until = async (what: StackService, pred: () => Promise<boolean>) => {
    const end = Date.now() + 60_000;
    while (!(await pred())) {
      const status = await Promise.race([
        stack.children.get(what)!.process.status,
        new Promise<null>((r) => setTimeout(() => r(null), 100)),
      ]);
      if (status !== null || Date.now() > end) {
        throw new Error(
          `${what} did not start (${status ? `exit ${status.code}` : "60 s"}): ` +
            stack.children.get(what)!.notable.slice(-3).join(" | "),
        );
      }
    }
  };
  const l = stack.layout;
  for (const s of services) {
    if (s === "mesh") {
      await until("mesh", async () => {
        const h = await meshHealth(l.meshOutbound.port);
        return (h?.signal as { state?: string } | undefined)?.state === "connected";
      });
    } else if (s === "joi") {
      await until("joi", async () => {
        try {
          const r = await fetch(`http://127.0.0.1:${l.joiInbound.port}/health`);
          await r.body?.cancel();
          return r.ok;
        } catch {
          return false;
        }
      });
    } else {
      await until("openhab_relay", () => Promise.resolve(stack.openhab.open > 0));
    }
  }
}
