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
import { loadPolicies } from "../../services/common/policy/mod.ts";
import {
  generateKeyFile,
  loadWireKey,
  SignedClient,
  type WireKey,
} from "../../services/common/wire/mod.ts";
import { startLocalStack } from "../_helpers/local_stack.ts";
import { meshHealth } from "../services/mesh/harness.ts";
import { Child } from "./process.ts";
import type { PortOutcome } from "./slowloris_attacker.ts";

const PER_PORT = 500;
const FIRST = 10; // 127.0.0.10 ...
const PER_ADDRESS = 15; // under the per-peer cap of 16: the header timeout, not the cap, closes them
const ADDRESSES = Math.ceil(PER_PORT / PER_ADDRESS);

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
    // the local run as `deno task start` runs it (knowledge, joi, the mesh with their manifest
    // flags), with the openHAB->joi key provisioned so that 8445 is signed too
    const varDir = await Deno.makeTempDir({ prefix: "joi-e2e-slow-", dir: "./var" });
    await Deno.mkdir(`${varDir}/secrets`, { recursive: true, mode: 0o700 });
    await generateKeyFile(`${varDir}/secrets/openhab_to_joi.key`);
    const stack = startLocalStack(varDir);
    try {
      const ports = [stack.base, stack.base + 1, stack.base + 2]; // joi 8443, mesh 8444, joi 8445
      for (const port of ports) {
        const end = Date.now() + 60_000;
        while ((await meshHealth(port)) === null) {
          if (Date.now() > end) {
            throw new Error(`port ${port} never answered:\n${await stack.errs}`);
          }
          await new Promise((r) => setTimeout(r, 100));
        }
      }
      const secrets = `${varDir}/secrets`;
      const server = loadPolicies("./policies").policy.server;
      const keys: [number, WireKey][] = [
        [ports[0]!, await loadWireKey(secrets, "mesh_to_joi")],
        [ports[1]!, await loadWireKey(secrets, "joi_to_mesh")],
        [ports[2]!, await loadWireKey(secrets, "openhab_to_joi")],
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
      for (const port of ports) assert.notEqual(await meshHealth(port), null, `${port} survived`);
    } finally {
      stack.child.kill("SIGTERM");
      await stack.child.status;
      await stack.pump.catch(() => {});
      await stack.errs.catch(() => "");
      await Deno.remove(varDir, { recursive: true });
    }
  },
});
