/**
 * Slow clients against every listening port of the real joi and mesh
 * processes (started with their manifest flags, the shipped policy's
 * `server:` limits): 500 connections per port, from 34 loopback addresses
 * that are not the ports' peers, each trickling one header byte every half
 * second, from attacker processes of their own. Every one of them is closed
 * by the server within the header timeout (the ones beyond the cap on
 * strangers at once), and the peers' signed requests keep their latency
 * meanwhile (asserted generously here; the bench has the figures).
 */
import assert from "node:assert/strict";
import {
  denoRunArgs,
  type Layout,
  localLayout,
  programSpec,
} from "../../services/common/permissions/mod.ts";
import { loadPolicies } from "../../services/common/policy/mod.ts";
import {
  generateKeyFile,
  loadWireKey,
  SignedClient,
  type WireKey,
} from "../../services/common/wire/mod.ts";
import { generateMemoryKeyFile } from "../../services/joi/memory/crypto.ts";
import { LlmTestServer } from "../peers/llm_server.ts";
import { SignalCliPeer } from "../peers/signal_cli/peer.ts";
import {
  claimSocket,
  expectedGroups,
  freePort,
  makeKeys,
  meshHealth,
  writeConfigDir,
} from "../services/mesh/harness.ts";
import { stageHousehold } from "../scripts/validate/household.ts";
import { Child, waitUntil } from "./process.ts";
import type { PortOutcome } from "./slowloris_attacker.ts";

const PER_PORT = 500;
const FIRST = 10; // 127.0.0.10 ...
const PER_ADDRESS = 15; // under the per-peer cap of 16: the header timeout, not the cap, closes them
const ADDRESSES = Math.ceil(PER_PORT / PER_ADDRESS);

function spawn(name: "joi" | "mesh", layout: Layout): Child {
  return new Child(name, "deno", denoRunArgs(programSpec(name, layout)), {
    env: { NO_COLOR: "1" },
  });
}

/** p99 (ms) of `n` signed GET /health round trips per client, 4 at a time; every one must succeed. */
async function p99(clients: SignedClient[], n: number): Promise<number[]> {
  const out: number[] = [];
  for (const client of clients) {
    const lat: number[] = [];
    let next = 0;
    await Promise.all(Array.from({ length: 4 }, async () => {
      while (next++ < n) {
        const t = performance.now();
        const r = await client.request("GET", "/health");
        assert.equal(r.status, 200);
        lat.push(performance.now() - t);
      }
    }));
    lat.sort((a, b) => a - b);
    out.push(lat[Math.floor(lat.length * 0.99)]!);
  }
  return out;
}

Deno.test({
  name:
    "slow clients: 500 per port are each closed within the header timeout; peers keep their latency",
  fn: async () => {
    const h = await stageHousehold({ accounts: "staged" });
    const dir = await Deno.makeTempDir({ prefix: "joi-e2e-slow-" });
    const signalSock = await claimSocket();
    const knowledgeSock = await claimSocket();
    const llm = await LlmTestServer.start();
    const peer = SignalCliPeer.start({ path: signalSock.path });
    peer.groups = expectedGroups();
    const children: Child[] = [];
    try {
      await makeKeys(`${dir}/secrets`);
      await generateKeyFile(`${dir}/secrets/openhab_to_joi.key`);
      await generateMemoryKeyFile(`${dir}/secrets/memory.key`);
      await writeConfigDir(`${dir}/mesh-config`);
      const llmUrl = new URL(llm.origin);
      const layout: Layout = {
        ...localLayout({ varDir: dir }),
        joiConfigDir: h.configDir,
        joiStateDir: `${dir}/joi`,
        meshConfigDir: `${dir}/mesh-config`,
        meshStateDir: `${dir}/mesh`,
        logDir: `${dir}/log`,
        secretsDir: () => `${dir}/secrets`,
        joiInbound: { host: "127.0.0.1", port: freePort() },
        joiIngest: { host: "127.0.0.1", port: freePort() },
        meshOutbound: { host: "127.0.0.1", port: freePort() },
        llm: { host: "127.0.0.1", port: Number(llmUrl.port) },
        signal: { kind: "socket", path: signalSock.path },
        knowledgeSocket: knowledgeSock.path,
      };
      children.push(spawn("joi", layout), spawn("mesh", layout));
      const ports = [layout.joiInbound.port, layout.meshOutbound.port, layout.joiIngest.port];
      for (const port of ports) {
        await waitUntil(
          `port ${port} to answer`,
          async () => (await meshHealth(port)) !== null,
          60_000,
          children,
        );
      }
      const server = loadPolicies(h.configDir).policy.server;
      const keys: [number, WireKey][] = [
        [layout.joiInbound.port, await loadWireKey(`${dir}/secrets`, "mesh_to_joi")],
        [layout.meshOutbound.port, await loadWireKey(`${dir}/secrets`, "joi_to_mesh")],
        [layout.joiIngest.port, await loadWireKey(`${dir}/secrets`, "openhab_to_joi")],
      ];
      const clients = keys.map(([port, key]) =>
        new SignedClient({
          baseUrl: `http://127.0.0.1:${port}`,
          key,
          direction: key.direction,
          maxRetries: 0,
        })
      );
      await p99(clients, 50); // warm up
      const idle = await p99(clients, 200);

      const sources = Array.from({ length: ADDRESSES }, (_, i) => `127.0.0.${FIRST + i}`);
      const attackers = ports.map((port) =>
        new Child("attacker", "deno", [
          "run",
          "--no-prompt",
          `--allow-net=127.0.0.1,${sources.join(",")}`,
          new URL("./slowloris_attacker.ts", import.meta.url).pathname,
          JSON.stringify({
            ports: [port],
            count: PER_PORT,
            first: FIRST,
            perAddress: PER_ADDRESS,
            trickleMs: 500,
            limitMs: server.headers_timeout_seconds * 1000 + 15_000,
          }),
        ], { lines: true })
      );
      await new Promise((r) => setTimeout(r, 1500)); // the connections are open and trickling
      const underAttack = await p99(clients, 200);
      const results = await Promise.all(attackers.map(async (a) => {
        await a.process.status;
        const o = a.lines[0] as unknown as PortOutcome | undefined;
        assert.ok(o, `attacker printed nothing: ${a.output.join("")}`);
        return o;
      }));
      console.log(
        `slow clients: idle p99 ${idle.map((v) => v.toFixed(1))} ms, under attack ` +
          `${underAttack.map((v) => v.toFixed(1))} ms; ${JSON.stringify(results)}`,
      );
      const limitMs = server.headers_timeout_seconds * 1000 + 2_000; // the deadline, a sweep, scheduling
      for (const o of results) {
        assert.equal(o.opened + o.failedToOpen, PER_PORT, `port ${o.port}`);
        assert.equal(o.stillOpen, 0, `port ${o.port}: connections the server never closed`);
        assert.equal(o.closedByServer, o.opened, `port ${o.port}`);
        assert.ok(
          o.longestOpenMs <= limitMs,
          `port ${o.port}: a slow connection stayed ${o.longestOpenMs.toFixed(0)} ms`,
        );
      }
      underAttack.forEach((v, i) => {
        assert.ok(
          v <= 3 * idle[i]! + 50,
          `port ${ports[i]}: p99 ${v.toFixed(1)} ms under attack, ${idle[i]!.toFixed(1)} ms idle`,
        );
      });
      for (const c of children) assert.equal(c.exited, false, `${c.name} survived`);
    } finally {
      await Promise.all(children.map((c) => c.stop("SIGTERM")));
      await peer.stop();
      await llm.close();
      signalSock.release();
      knowledgeSock.release();
      await Deno.remove(dir, { recursive: true });
      await h.cleanup();
    }
  },
});
