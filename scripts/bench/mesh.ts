/**
 * Mesh benchmark: the latency the mesh adds to Signal -> joi and joi ->
 * Signal (p50/p99), and its resident memory after 10,000 messages.
 *
 * The mesh runs as a child process with its manifest flags, between the
 * signal-cli test peer (Unix socket) and a signature-verifying joi server.
 * Baseline, measured in the same run: the same hops without the mesh's logic
 * (a bare JSON-RPC client relaying straight to joi with the same signed
 * client; a bare signed endpoint relaying straight to signal-cli). Memory
 * (read from `/proc/<pid>/smaps` by `_memory.ts`) is compared with an empty
 * `Deno.serve` started with the mesh's V8 flags and environment and sent as
 * many requests: target <= 1.4x (the mesh VM has 2 GB shared with
 * signal-cli's JVM and whisper).
 *
 * @module
 */
import { Hono } from "hono";
import { createLogger } from "../../services/common/log.ts";
import { channelOfGroup, CRITICAL_GROUP } from "../../services/common/policy/household.ts";
import { denoRunArgs, programSpec } from "../../services/common/permissions/mod.ts";
import { describe, emptyServeFloor, floorReport, memoryOf, settledMemoryOf } from "./_memory.ts";
import {
  jsonBody,
  ok,
  openNonceStore,
  SignedClient,
  signedRoutes,
} from "../../services/common/wire/mod.ts";
import { JsonRpcClient } from "../../services/mesh/signal/jsonrpc_client.ts";
import { dataEnvelope, SignalCliPeer } from "../../tests/peers/signal_cli/peer.ts";
import {
  claimSocket,
  expectedGroups,
  FakeJoi,
  freePort,
  makeKeys,
  meshLayout,
  outboundBody,
  OWNER,
  waitForHealth,
  writeConfigDir,
} from "../../tests/services/mesh/harness.ts";
import { percentile as pct } from "./_stats.ts";

const ROUNDS = 400;
const MEMORY_MESSAGES = 10_000;
const TARGET_RATIO = 1.4;

function fmt(xs: number[]): string {
  return `p50 ${pct(xs, 50).toFixed(2)} ms  p99 ${pct(xs, 99).toFixed(2)} ms`;
}

interface Health {
  signal: { state: string };
  queue: { depth: number };
  memory: { rss_mb: number; heap_used_mb: number };
}

async function health(port: number): Promise<Health> {
  const r = await fetch(`http://127.0.0.1:${port}/health`);
  return (await r.json()).data;
}

/** Signal -> joi: time from the peer writing the envelope to joi receiving the POST. */
async function inboundLatency(
  peer: SignalCliPeer,
  joi: FakeJoi,
  tsBase: number,
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const n = joi.received.length;
    const t0 = performance.now();
    peer.push(dataEnvelope({ ...OWNER, timestamp: tsBase + i, text: `lat ${i}` }));
    await joi.waitFor(() => joi.received.length > n);
    out.push(performance.now() - t0);
  }
  return out;
}

/** joi -> Signal: time from joi's signed POST to the peer receiving `send`. */
async function outboundLatency(
  peer: SignalCliPeer,
  client: SignedClient,
  path: string,
  body: (i: number) => unknown,
): Promise<number[]> {
  const out: number[] = [];
  for (let i = 0; i < ROUNDS; i++) {
    const n = peer.calls("send").length;
    const t0 = performance.now();
    const r = client.request("POST", path, body(i));
    await peer.waitFor(() => peer.calls("send").length > n);
    out.push(performance.now() - t0);
    await r;
  }
  return out;
}

/** Runs the benchmark and prints its figures. */
export async function bench(): Promise<void> {
  const dir = await Deno.makeTempDir({ prefix: "mesh-bench-" });
  const sock = await claimSocket();
  const keys = await makeKeys(`${dir}/secrets`);
  // critical alerts are unlimited: the outbound limits are not what is measured
  await writeConfigDir(`${dir}/config`);
  const joi = new FakeJoi(keys, dir);
  joi.start();
  const peer = SignalCliPeer.start({ path: sock.path });
  peer.groups = expectedGroups();
  const meshPort = freePort();
  const layout = meshLayout(dir, { joiPort: joi.port, meshPort, signalSocket: sock.path });
  const spec = programSpec("mesh", layout);
  const child = new Deno.Command("deno", {
    args: denoRunArgs(spec),
    env: { ...spec.env }, // as the unit runs it
    stdin: "null",
    stdout: "null",
    stderr: "null",
  }).spawn();
  const critical = (i: number) =>
    outboundBody(channelOfGroup(CRITICAL_GROUP), `alert ${i}`, {
      priority: "critical",
      delivery: { target: "group" },
    });
  try {
    await waitForHealth(
      meshPort,
      (h) => (h.signal as Health["signal"]).state === "connected",
      "mesh did not start",
      60_000,
    );
    await new Promise((r) => setTimeout(r, 1000));
    const idle = await memoryOf(child.pid);

    // --- through the mesh
    const inMesh = await inboundLatency(peer, joi, 1_000_000);
    const outMesh = await outboundLatency(
      peer,
      joi.client(`http://127.0.0.1:${meshPort}`),
      "/api/v1/message/outbound",
      critical,
    );

    // --- baseline: the same hops without the mesh (its process stays connected to
    // the peer, so the baseline relay takes a second peer on its own socket slot)
    const sock2 = await claimSocket();
    const peer2 = SignalCliPeer.start({ path: sock2.path });
    const quiet = createLogger("bench", { quiet: true });
    const rpc = new JsonRpcClient({ path: sock2.path, log: quiet });
    const toJoi = new SignedClient({
      baseUrl: joi.url,
      key: keys.meshToJoi,
      direction: "mesh_to_joi",
      maxRetries: 0,
    });
    rpc.onNotification((n) => {
      const env = (n.params as { envelope: Record<string, unknown> }).envelope;
      const dm = env.dataMessage as { message: string };
      void toJoi.request("POST", "/api/v1/message/inbound", { content: { text: dm.message } });
    });
    rpc.start();
    await peer2.waitFor(() => peer2.connected);
    while (rpc.status().state !== "connected") await new Promise((r) => setTimeout(r, 5));
    const nonces = openNonceStore(`${dir}/bench-nonces.journal`, 900_000);
    const app = new Hono();
    app.post(
      "/relay",
      signedRoutes({
        key: keys.joiToMesh,
        direction: "joi_to_mesh",
        nonceStore: nonces,
        allowedSources: ["127.0.0.1"],
        toleranceMs: 300_000,
        maxBodyBytes: 65536,
      }),
      async (c) => {
        const b = jsonBody<{ content: { text: string } }>(c)!;
        await rpc.request("send", { groupId: "QUJD", message: b.content.text });
        return ok(c, {});
      },
    );
    const relay = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen: () => {} }, app.fetch);
    const inBase = await inboundLatency(peer2, joi, 2_000_000);
    const outBase = await outboundLatency(
      peer2,
      joi.client(`http://127.0.0.1:${relay.addr.port}`),
      "/relay",
      critical,
    );
    await relay.shutdown();
    await rpc.close();
    nonces.close();
    await peer2.stop();
    sock2.release();

    console.log(`Signal -> joi   mesh:     ${fmt(inMesh)}`);
    console.log(`                baseline: ${fmt(inBase)}`);
    console.log(
      `                added:    p50 ${(pct(inMesh, 50) - pct(inBase, 50)).toFixed(2)} ms ` +
        `(x${(pct(inMesh, 50) / pct(inBase, 50)).toFixed(2)})`,
    );
    console.log(`joi -> Signal   mesh:     ${fmt(outMesh)}`);
    console.log(`                baseline: ${fmt(outBase)}`);
    console.log(
      `                added:    p50 ${(pct(outMesh, 50) - pct(outBase, 50)).toFixed(2)} ms ` +
        `(x${(pct(outMesh, 50) / pct(outBase, 50)).toFixed(2)})`,
    );

    // --- memory after 10,000 messages through the mesh
    // in bursts of 500 (the queue holds queue.max_depth = 1000 by default)
    const before = joi.received.length;
    const t0 = performance.now();
    for (let i = 0; i < MEMORY_MESSAGES; i++) {
      peer.push(dataEnvelope({ ...OWNER, timestamp: 3_000_000 + i, text: `m${i} `.repeat(20) }));
      if (i % 500 === 499) await joi.waitFor(() => joi.received.length >= before + i + 1);
    }
    await joi.waitFor(() => joi.received.length >= before + MEMORY_MESSAGES);
    const secs = (performance.now() - t0) / 1000;
    const h = await health(meshPort);
    console.log(
      `throughput: ${MEMORY_MESSAGES} messages Signal -> joi in ${secs.toFixed(1)} s ` +
        `(${(MEMORY_MESSAGES / secs).toFixed(0)}/s, queue depth now ${h.queue.depth})`,
    );
    const lastMessage = performance.now();
    await new Promise((r) => setTimeout(r, 1000));
    const after = await memoryOf(child.pid);
    const floor = await emptyServeFloor({
      v8Flags: spec.v8Flags,
      env: spec.env,
      requests: MEMORY_MESSAGES,
    });
    console.log(`memory: mesh idle after start: ${describe(idle)}`);
    const settled = await settledMemoryOf(child.pid, lastMessage);
    for (
      const line of floorReport(
        `mesh after ${MEMORY_MESSAGES} messages`,
        after,
        floor,
        MEMORY_MESSAGES,
        TARGET_RATIO,
        settled,
      )
    ) {
      console.log(`memory: ${line}`);
    }
    console.log(`memory: V8 heap used ${h.memory.heap_used_mb} MB (the mesh's /health)`);
  } finally {
    try {
      child.kill("SIGTERM");
    } catch { /* exited */ }
    await child.status;
    await peer.stop();
    await joi.close();
    sock.release();
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await bench();
