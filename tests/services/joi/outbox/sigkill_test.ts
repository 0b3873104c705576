import assert from "node:assert/strict";
import {
  denoRunArgs,
  type Layout,
  localLayout,
  programSpec,
} from "../../../../services/common/permissions/mod.ts";
import { type MeshPeer, randomKeyBytes, startMeshPeer } from "../../../peers/mesh_peer.ts";
import { stateEvent } from "../harness.ts";

function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

function hex(bytes: Uint8Array): string {
  return [...bytes].map((b) => b.toString(16).padStart(2, "0")).join("");
}

async function waitHealthy(url: string, child: Deno.ChildProcess, timeoutMs = 60_000) {
  const end = Date.now() + timeoutMs;
  let exited = false;
  child.status.then(() => (exited = true));
  while (Date.now() < end) {
    if (exited) throw new Error("joi exited before answering /health");
    try {
      const r = await fetch(url, { signal: AbortSignal.timeout(2000) });
      await r.body?.cancel();
      if (r.ok) return;
    } catch { /* not up yet */ }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`joi did not answer ${url} within ${timeoutMs} ms`);
}

function spawnJoi(layout: Layout): Deno.ChildProcess {
  const spec = programSpec("joi", layout);
  return new Deno.Command("deno", {
    args: denoRunArgs(spec),
    stdin: "null",
    stdout: "null",
    stderr: "piped",
  }).spawn();
}

async function drain(child: Deno.ChildProcess): Promise<string> {
  return new TextDecoder().decode(await new Response(child.stderr).arrayBuffer());
}

Deno.test({
  name:
    "joi killed with SIGKILL while the mesh is down loses no accepted alarm; SIGTERM stops cleanly",
  sanitizeResources: false,
  sanitizeOps: false,
  fn: async () => {
    const dir = await Deno.makeTempDir({ prefix: "joi-kill-" });
    const keyBytes = randomKeyBytes();
    let mesh: MeshPeer | undefined;
    const children: Deno.ChildProcess[] = [];
    try {
      await Deno.mkdir(`${dir}/secrets`, { mode: 0o700 });
      await Deno.writeTextFile(`${dir}/secrets/joi_to_mesh.key`, hex(keyBytes) + "\n", {
        mode: 0o600,
      });
      await Deno.chmod(`${dir}/secrets/joi_to_mesh.key`, 0o600);
      // the conversation side (same process) needs its memory key and the mesh->joi key
      for (const name of ["memory.key", "mesh_to_joi.key"]) {
        const k = hex(crypto.getRandomValues(new Uint8Array(32)));
        await Deno.writeTextFile(`${dir}/secrets/${name}`, k + "\n", { mode: 0o600 });
        await Deno.chmod(`${dir}/secrets/${name}`, 0o600);
      }
      mesh = await startMeshPeer({ keyBytes, dir });
      await mesh.stop(); // unreachable from the start
      const layout: Layout = {
        ...localLayout(),
        joiStateDir: `${dir}/state`,
        logDir: `${dir}/log`,
        secretsDir: () => `${dir}/secrets`,
        joiInbound: { host: "127.0.0.1", port: freePort() },
        joiIngest: { host: "127.0.0.1", port: freePort() },
        meshOutbound: { host: "127.0.0.1", port: mesh.port },
      };
      await Deno.mkdir(layout.joiStateDir, { recursive: true, mode: 0o700 });
      await Deno.mkdir(layout.logDir, { recursive: true });
      const ingest = `http://127.0.0.1:${layout.joiIngest.port}`;

      const first = spawnJoi(layout);
      children.push(first);
      const firstErr = drain(first);
      await waitHealthy(`${ingest}/health`, first).catch(async (e) => {
        try {
          first.kill("SIGKILL");
        } catch { /* exited */ }
        throw new Error(`${e.message}\n${await firstErr}`);
      });
      const inbound = await fetch(`http://127.0.0.1:${layout.joiInbound.port}/health`);
      assert.equal(inbound.status, 200, "8443 answers /health too");
      await inbound.body?.cancel();
      const devices = ["Kitchen_Smoke", "Hall_CO", "Bath_WaterLeak", "Garage_Gas", "Attic_Fire"];
      for (const d of devices) {
        const r = await fetch(`${ingest}/api/v1/openhab/state`, {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: JSON.stringify(stateEvent(d, "ON", Date.now())),
        });
        assert.equal(r.status, 200, `${d}: ${await r.text()}`);
      }
      first.kill("SIGKILL");
      const killed = await first.status;
      assert.equal(killed.signal, "SIGKILL");
      await firstErr;

      mesh.start();
      const second = spawnJoi(layout);
      children.push(second);
      const secondErr = drain(second);
      await mesh.waitFor(
        (r) => devices.every((d) => r.some((m) => m.body.content.text.includes(`by ${d} `))),
        30_000,
      ).catch(async (e) => {
        try {
          second.kill("SIGKILL");
        } catch { /* exited */ }
        throw new Error(`${e.message}\n${await secondErr}`);
      });
      for (const m of mesh.received) {
        assert.equal(m.body.priority, "critical");
        assert.equal(m.body.delivery.group_id, "critical_group");
      }
      const perDevice = devices.map((d) =>
        mesh!.received.filter((m) => m.body.content.text.includes(`by ${d} `)).length
      );
      assert.deepEqual(perDevice, [1, 1, 1, 1, 1], "each alarm delivered once");
      second.kill("SIGTERM");
      const stopped = await second.status;
      assert.equal(stopped.code, 0, `clean exit on SIGTERM:\n${await secondErr}`);
    } finally {
      for (const c of children) {
        try {
          c.kill("SIGKILL");
        } catch { /* already gone */ }
      }
      await mesh?.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
