/**
 * The guarded server (serve.ts): header and idle deadlines, the body
 * deadline closing its connection, the per-peer and total connection caps,
 * and answers served as `Deno.serve` serves them (keep-alive, peer address).
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import {
  jsonRoutes,
  ok,
  peerAddress,
  serveGuarded,
  type ServerLimits,
} from "../../../../services/common/wire/mod.ts";

const enc = new TextEncoder();

function app(): Hono {
  const a = new Hono();
  a.get("/peer", (c) => ok(c, { peer: peerAddress(c) }));
  a.use("/body/*", jsonRoutes({ maxBodyBytes: 1024, bodyTimeoutMs: 300 }));
  a.post("/body/x", (c) => ok(c, {}));
  return a;
}

function start(limits: Partial<ServerLimits> = {}) {
  return serveGuarded(app(), {
    hostname: "127.0.0.1",
    port: 0,
    headersTimeoutMs: 400,
    idleTimeoutMs: 600,
    maxConnectionsPerPeer: 4,
    maxConnections: 64,
    ...limits,
  });
}

/** Opens a connection, writes `first`, and resolves with ms until the server closed it. */
async function closedAfter(port: number, first: string, limitMs = 5000): Promise<number> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const t0 = performance.now();
  try {
    if (first) await conn.write(enc.encode(first));
    const buf = new Uint8Array(4096);
    const deadline = t0 + limitMs;
    while (performance.now() < deadline) {
      const n = await Promise.race([
        conn.read(buf),
        new Promise<"wait">((r) => setTimeout(() => r("wait"), deadline - performance.now())),
      ]);
      if (n === null) return performance.now() - t0;
      if (n === "wait") break;
    }
    return Infinity;
  } catch {
    return performance.now() - t0; // reset by the server
  } finally {
    try {
      conn.close();
    } catch {
      // closed
    }
  }
}

Deno.test("a connection that sends nothing, or trickles its headers, is closed at the header deadline", async () => {
  const server = start();
  const port = (server.addr as Deno.NetAddr).port;
  try {
    const idle = closedAfter(port, "");
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const t0 = performance.now();
    let trickleClosed = Infinity;
    const trickle = (async () => {
      await conn.write(enc.encode("GET /peer HTTP/1.1\r\nHost: x\r\n"));
      for (let i = 0; i < 40; i++) {
        try {
          await conn.write(enc.encode("X: y\r\n"));
        } catch {
          trickleClosed = performance.now() - t0;
          return;
        }
        await new Promise((r) => setTimeout(r, 50));
      }
    })();
    const reader = (async () => {
      const buf = new Uint8Array(64);
      try {
        while ((await conn.read(buf)) !== null) { /* nothing is answered */ }
      } catch { /* reset */ }
      trickleClosed = Math.min(trickleClosed, performance.now() - t0);
    })();
    const idleMs = await idle;
    await Promise.all([trickle, reader]);
    conn.close();
    for (const [what, ms] of [["idle", idleMs], ["trickle", trickleClosed]] as const) {
      assert.ok(ms >= 350 && ms < 1500, `${what} closed after ${ms.toFixed(0)} ms (deadline 400)`);
    }
    assert.equal(server.stats().timedOut, 2);
  } finally {
    await server.shutdown();
  }
});

Deno.test("kept-alive connections serve several requests and close after the idle deadline", async () => {
  const server = start();
  const port = (server.addr as Deno.NetAddr).port;
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const buf = new Uint8Array(4096);
    for (let i = 0; i < 3; i++) {
      await conn.write(enc.encode("GET /peer HTTP/1.1\r\nHost: x\r\n\r\n"));
      const n = await conn.read(buf);
      const text = new TextDecoder().decode(buf.subarray(0, n!));
      assert.match(text, /^HTTP\/1.1 200/);
      assert.match(text, /"peer":"127.0.0.1"/);
    }
    const t0 = performance.now();
    assert.equal(await conn.read(buf), null, "closed once idle");
    const ms = performance.now() - t0;
    assert.ok(ms >= 500 && ms < 1800, `idle close after ${ms.toFixed(0)} ms (deadline 600)`);
    conn.close();
    assert.equal(server.stats().accepted, 1);
  } finally {
    await server.shutdown();
  }
});

Deno.test("a body that does not arrive is answered 400 and its connection closed", async () => {
  const server = start({ headersTimeoutMs: 5000, idleTimeoutMs: 5000 });
  const port = (server.addr as Deno.NetAddr).port;
  try {
    const conn = await Deno.connect({ hostname: "127.0.0.1", port });
    const t0 = performance.now();
    await conn.write(
      enc.encode(
        "POST /body/x HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" +
          "Content-Length: 100\r\n\r\n{",
      ),
    );
    let text = "";
    const buf = new Uint8Array(4096);
    while (true) {
      const n = await conn.read(buf).catch(() => null);
      if (n === null) break;
      text += new TextDecoder().decode(buf.subarray(0, n));
    }
    const ms = performance.now() - t0;
    conn.close();
    assert.match(text, /^HTTP\/1.1 400/);
    assert.match(text, /did not arrive within 300 ms/);
    assert.ok(ms < 2000, `closed ${ms.toFixed(0)} ms after the request, not at the idle deadline`);
  } finally {
    await server.shutdown();
  }
});

Deno.test("connections beyond a peer's cap are closed at once; others are still served", async () => {
  const server = start({ headersTimeoutMs: 3000, maxConnectionsPerPeer: 4 });
  const port = (server.addr as Deno.NetAddr).port;
  try {
    const held = await Promise.all(
      Array.from({ length: 4 }, () => Deno.connect({ hostname: "127.0.0.1", port })),
    );
    await new Promise((r) => setTimeout(r, 100));
    const t0 = performance.now();
    const extra = await closedAfter(port, "GET /peer HTTP/1.1\r\nHost: x\r\n\r\n", 2000);
    assert.ok(extra < 500, `the fifth connection closed after ${extra.toFixed(0)} ms`);
    assert.ok(performance.now() - t0 < 1000);
    assert.ok(server.stats().refused >= 1);
    for (const c of held) c.close();
    await new Promise((r) => setTimeout(r, 100));
    const res = await fetch(`http://127.0.0.1:${port}/peer`);
    assert.equal(res.status, 200);
    await res.body?.cancel();
  } finally {
    await server.shutdown();
  }
});

Deno.test("shutdown closes held connections and stops accepting", async () => {
  const server = start({ headersTimeoutMs: 60_000, idleTimeoutMs: 60_000 });
  const port = (server.addr as Deno.NetAddr).port;
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  await new Promise((r) => setTimeout(r, 50));
  const t0 = performance.now();
  await server.shutdown();
  assert.ok(performance.now() - t0 < 2000);
  assert.equal(await conn.read(new Uint8Array(8)).catch(() => null), null);
  conn.close();
  await assert.rejects(() => Deno.connect({ hostname: "127.0.0.1", port }));
});

Deno.test("the port's own peers are never locked out by strangers filling it", async () => {
  const { claimSocket } = await import("../../../_helpers/sockets.ts");
  const slot = claimSocket();
  const socket = slot.path;
  for (const [peers, expectServed] of [[[], 1], [["unix"], 3]] as const) {
    const server = serveGuarded(app(), {
      path: socket,
      headersTimeoutMs: 3000,
      idleTimeoutMs: 3000,
      maxConnectionsPerPeer: 8,
      maxConnections: 1,
      peers,
    });
    try {
      const conns = await Promise.all(
        Array.from({ length: 3 }, () => Deno.connect({ transport: "unix", path: socket })),
      );
      let served = 0;
      for (const c of conns) {
        try {
          await c.write(enc.encode("GET /peer HTTP/1.1\r\nHost: x\r\n\r\n"));
          const n = await c.read(new Uint8Array(1024));
          if (n !== null) served++;
        } catch { /* closed at once */ }
        c.close();
      }
      assert.equal(served, expectServed, `peers ${JSON.stringify(peers)}`);
    } finally {
      await server.shutdown();
      await Deno.remove(socket).catch(() => {});
    }
  }
  slot.release();
});
