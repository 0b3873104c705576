/**
 * joi's conversation path, measured on the real `joi` process started with
 * its manifest flags: its own added latency per message and its resident
 * memory after 10,000 messages, against an empty `Deno.serve` started with
 * joi's V8 flags and environment and sent as many requests (target <= 2.0x).
 *
 * Around it: the Ollama stand-in (answering at once) and a signed mesh
 * stand-in receiving the replies. The policies are copied with the outbound
 * and LLM limits raised, so the figures measure joi's work rather than its
 * rate limits (which would otherwise hold replies back by design).
 *
 * - baseline: a bare chat request to the LLM stand-in;
 * - joi: from the mesh's signed POST to the reply arriving at the mesh;
 *   joi's added latency = joi - baseline, p50 and p99;
 * - RSS from `/proc/<pid>/smaps` (`_memory.ts`) at start and after the volume run.
 *
 * @module
 */
import { Hono } from "hono";
import { denoRunArgs, localLayout, programSpec } from "../../services/common/permissions/mod.ts";
import {
  generateKeyFile,
  loadWireKey,
  ok,
  openNonceStore,
  SignedClient,
  signedRoutes,
} from "../../services/common/wire/mod.ts";
import { createLogger } from "../../services/common/log.ts";
import {
  channelOfGroup,
  channelOfRecipient,
  FAMILY_GROUP,
} from "../../services/common/policy/household.ts";
import { LlmTestServer } from "../../tests/peers/llm_server.ts";
import { inboundBody, PHONES } from "../../tests/services/joi/inbound/harness.ts";
import { freePort } from "../../tests/services/mesh/harness.ts";
import { describe, emptyServeFloor, floorReport, memoryOf, settledMemoryOf } from "./_memory.ts";
import { relaxedPolicies } from "./_bench_stack.ts";
import { percentile as pct } from "./_stats.ts";

const LATENCY_RUNS = 300;
const VOLUME = 10_000;
const TARGET_RATIO = 2.0;

const fmt = (ms: number) => `${ms.toFixed(2)} ms`;

/** Runs the benchmark and prints its figures. */
export async function bench(): Promise<void> {
  const tmp = await Deno.makeTempDir({ prefix: "joi-bench-" });
  const llm = await LlmTestServer.start({ reply: () => "Sure, done.", keepRequests: 0 });
  const llmPort = Number(new URL(llm.origin).port);
  const layout = {
    ...localLayout({ varDir: tmp }),
    joiInbound: { host: "127.0.0.1", port: freePort() },
    joiIngest: { host: "127.0.0.1", port: freePort() },
    joiConfigDir: `${tmp}/policies`,
    llm: { host: "127.0.0.1", port: llmPort },
  };
  await relaxedPolicies(layout.joiConfigDir);
  const secrets = layout.secretsDir("joi");
  await Deno.mkdir(secrets, { recursive: true, mode: 0o700 });
  await Deno.mkdir(layout.joiStateDir, { recursive: true, mode: 0o700 });
  await Deno.mkdir(layout.logDir, { recursive: true });
  for (const k of ["mesh_to_joi.key", "joi_to_mesh.key", "memory.key"]) {
    await generateKeyFile(`${secrets}/${k}`);
  }

  // the mesh stand-in: verifies joi's signed outbound requests, records arrivals
  let arrived = 0;
  const refusals: string[] = [];
  let wake: (() => void) | undefined;
  const meshNonces = openNonceStore(`${tmp}/mesh_nonces.journal`, 15 * 60_000);
  const meshApp = new Hono();
  meshApp.use(
    "/api/*",
    signedRoutes({
      key: await loadWireKey(secrets, "joi_to_mesh"),
      direction: "joi_to_mesh",
      nonceStore: meshNonces,
      allowedSources: ["127.0.0.1"],
      toleranceMs: 5 * 60_000,
      maxBodyBytes: 65536,
      logger: createLogger("mesh-standin", {
        quiet: true,
        sinks: [(line, level) => {
          if (level === "security") refusals.push(line);
        }],
      }),
    }),
  );
  meshApp.post("/api/v1/message/outbound", (c) => {
    arrived++;
    wake?.();
    return ok(c, {
      message_id: `m${arrived}`,
      transport: "signal",
      sent_at: new Date().toISOString(),
      delivered: false,
    });
  });
  const mesh = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, meshApp.fetch);
  layout.meshOutbound = { host: "127.0.0.1", port: mesh.addr.port };

  const spec = programSpec("joi", layout);
  const child = new Deno.Command("deno", {
    args: denoRunArgs(spec),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
    env: { ...spec.env }, // as the systemd unit runs it
  })
    .spawn();
  // joi's log: keep its warnings and errors (never message text) to explain a bad run
  const notable: string[] = [];
  const logDone = (async () => {
    let rest = "";
    for await (const chunk of child.stderr.pipeThrough(new TextDecoderStream())) {
      const lines = (rest + chunk).split("\n");
      rest = lines.pop() ?? "";
      for (const l of lines) {
        if (/"level":"(warn|error|security)"/.test(l) && !/channel_users_missing/.test(l)) {
          notable.push(l);
          if (notable.length > 20) notable.shift();
        }
      }
    }
  })();
  const joiUrl = `http://127.0.0.1:${layout.joiInbound.port}`;
  const client = new SignedClient({
    baseUrl: joiUrl,
    key: await loadWireKey(secrets, "mesh_to_joi"),
    direction: "mesh_to_joi",
    maxRetries: 0,
  });
  const health = async () => {
    const r = await fetch(`${joiUrl}/health`);
    return (await r.json()).data as { memory_mb: { rss: number; heap_used: number } };
  };
  try {
    for (let i = 0;; i++) {
      try {
        await health();
        break;
      } catch {
        if (i > 300) throw new Error("bench joi: joi did not start within 30 s");
        await new Promise((r) => setTimeout(r, 100));
      }
    }
    await new Promise((r) => setTimeout(r, 1000));
    const boot = await memoryOf(child.pid);
    const post = async (sender: "owner" | "partner", channel: string, text: string) => {
      const r = await client.request(
        "POST",
        "/api/v1/message/inbound",
        inboundBody({ sender, channel, text }),
        {
          "X-Validated-Channel": channel,
          "X-Validated-Sender": sender,
        },
      );
      if (r.status !== 200) throw new Error(`bench joi: inbound answered ${r.status}`);
    };
    const body = JSON.stringify({
      model: "llama3.1:8b-instruct-q4_K_M",
      messages: [{ role: "user", content: "hi" }],
    });
    const baseline: number[] = [];
    for (let i = 0; i < LATENCY_RUNS; i++) {
      const t0 = performance.now();
      const r = await fetch(`${llm.baseUrl}/chat/completions`, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body,
      });
      await r.text();
      baseline.push(performance.now() - t0);
    }
    const end: number[] = [];
    for (let i = 0; i < LATENCY_RUNS; i++) {
      const target = arrived + 1;
      const got = new Promise<void>((resolve) => (wake = () => arrived >= target && resolve()));
      const t0 = performance.now();
      await post("owner", channelOfRecipient("owner", "private"), `latency probe ${i}`);
      await got;
      end.push(performance.now() - t0);
    }
    const b50 = pct(baseline, 50), b99 = pct(baseline, 99), e50 = pct(end, 50), e99 = pct(end, 99);
    console.log(`LLM stand-in alone (baseline): p50 ${fmt(b50)}  p99 ${fmt(b99)}`);
    console.log(`message end to end via joi:    p50 ${fmt(e50)}  p99 ${fmt(e99)}`);
    console.log(`joi's added latency:           p50 ${fmt(e50 - b50)}  p99 ${fmt(e99 - b99)}`);

    const channels: ["owner" | "partner", string][] = [
      ["owner", channelOfRecipient("owner", "private")],
      ["partner", channelOfRecipient("partner", "private")],
      ["owner", channelOfRecipient("owner", "regular")],
      ["partner", channelOfGroup(FAMILY_GROUP)],
    ];
    const before = arrived;
    const t0 = performance.now();
    for (let i = 0; i < VOLUME; i += channels.length) {
      // closed loop: the next round starts when this round's replies reached the mesh
      const target = arrived + channels.length;
      const round = new Promise<void>((resolve) => (wake = () => arrived >= target && resolve()));
      await Promise.all(
        channels.map(([s, ch], k) =>
          post(s, ch, `message ${i + k} from ${PHONES[s]}: anything new today?`)
        ),
      );
      const timedOut = await Promise.race([
        round.then(() => false),
        new Promise<boolean>((r) => setTimeout(() => r(true), 10_000)),
      ]);
      if (timedOut) {
        console.log(refusals.slice(-3).join("\n"));
        throw new Error(
          `bench joi: round ${i / channels.length} got ${
            arrived - target + channels.length
          } of ${channels.length} replies in 10 s`,
        );
      }
    }
    const secs = (performance.now() - t0) / 1000;
    const h = await health();
    console.log(
      `volume: ${VOLUME} messages in ${secs.toFixed(1)} s (${(VOLUME / secs).toFixed(0)} msg/s), ${
        arrived - before
      } replies reached the mesh`,
    );
    const lastMessage = performance.now();
    await new Promise((r) => setTimeout(r, 1000));
    const after = await memoryOf(child.pid);
    const floor = await emptyServeFloor({ v8Flags: spec.v8Flags, env: spec.env, requests: VOLUME });
    console.log(`memory: joi idle after start: ${describe(boot)}`);
    const settled = await settledMemoryOf(child.pid, lastMessage);
    for (
      const line of floorReport(
        `joi after ${VOLUME} messages`,
        after,
        floor,
        VOLUME,
        TARGET_RATIO,
        settled,
      )
    ) {
      console.log(`memory: ${line}`);
    }
    console.log(`memory: V8 heap used ${h.memory_mb.heap_used} MB (joi's /health)`);
  } finally {
    try {
      child.kill("SIGTERM");
    } catch { /* gone */ }
    await child.status;
    await logDone;
    if (notable.length) {
      console.log(
        `joi logged ${notable.length} warnings/errors; last: ${notable.at(-1)?.slice(0, 400)}`,
      );
    }
    await mesh.shutdown();
    meshNonces.close();
    await llm.close();
    await Deno.remove(tmp, { recursive: true });
  }
}

if (import.meta.main) await bench();
