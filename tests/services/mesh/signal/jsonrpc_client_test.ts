import assert from "node:assert/strict";
import { createLogger, memorySink } from "../../../../services/common/log.ts";
import { JsonRpcClient } from "../../../../services/mesh/signal/jsonrpc_client.ts";
import {
  RpcError,
  type RpcNotification,
  TransportUnavailableError,
} from "../../../../services/mesh/signal/transport.ts";
import { dataEnvelope, SignalCliPeer } from "../../../peers/signal_cli/peer.ts";
import { claimSocket, OWNER, waitUntil } from "../harness.ts";

async function setup() {
  const sock = await claimSocket();
  const peer = SignalCliPeer.start({ path: sock.path });
  const sink = memorySink();
  const client = new JsonRpcClient({
    path: sock.path,
    log: createLogger("mesh", { quiet: true, sinks: [sink] }),
    initialBackoffMs: 5,
    maxBackoffMs: 40,
  });
  const got: RpcNotification[] = [];
  client.onNotification((n) => got.push(n));
  client.start();
  await waitUntil(() => client.status().state === "connected");
  return {
    sock,
    peer,
    client,
    got,
    logs: sink.lines,
    async stop() {
      await client.close();
      await peer.stop();
      sock.release();
    },
  };
}

Deno.test("responses out of order are matched to their requests by id", async () => {
  const t = await setup();
  try {
    t.peer.groups = [{ id: "R1JPVVA=", name: "g", members: [] }];
    const release = t.peer.hold("version");
    const v = t.client.request<{ version: string }>("version");
    const g = t.client.request<unknown[]>("listGroups");
    // listGroups is answered while version is still held
    const groups = await g;
    assert.equal(groups.length, 1);
    release();
    assert.deepEqual(await v, { version: "0.14.6" });
    const ids = t.peer.requests.map((r) => r.id);
    assert.equal(new Set(ids).size, ids.length, "ids are unique");
  } finally {
    await t.stop();
  }
});

Deno.test("JSON-RPC errors become RpcError with code and data; unknown methods -32601", async () => {
  const t = await setup();
  try {
    t.peer.onSend = () => ({
      error: { code: -5, message: "Rate limited", data: { response: { results: [] } } },
    });
    await assert.rejects(t.client.request("send", { recipient: ["+1"] }), (e: unknown) => {
      assert.ok(e instanceof RpcError);
      assert.equal(e.code, -5);
      assert.deepEqual(e.data, { response: { results: [] } });
      return true;
    });
    await assert.rejects(t.client.request("nope"), (e: unknown) => (e as RpcError).code === -32601);
  } finally {
    await t.stop();
  }
});

Deno.test("garbage lines and -32700 answers do not break the connection", async () => {
  const t = await setup();
  try {
    await t.peer.pushRaw("{not json");
    await t.peer.pushRaw('{"jsonrpc":"2.0","error":{"code":-32700,"message":"x"},"id":null}');
    await t.peer.pushRaw("[]");
    await t.peer.pushRaw('[{"jsonrpc":"2.0","method":"receive","params":{}}]');
    assert.deepEqual(await t.client.request("version"), { version: "0.14.6" });
    assert.equal(t.got.length, 1, "a batch notification is delivered");
    assert.equal(t.client.status().state, "connected");
  } finally {
    await t.stop();
  }
});

Deno.test("an over-long line is skipped and logged; the connection and the next lines live on", async () => {
  const t = await setup();
  try {
    const huge = JSON.stringify({
      jsonrpc: "2.0",
      method: "receive",
      params: { envelope: { dataMessage: { message: "x".repeat(3 * 1024 * 1024) } } },
    });
    await t.peer.pushRaw(huge);
    t.peer.push(dataEnvelope({ ...OWNER, timestamp: 78, text: "after the big one" }));
    await waitUntil(() => t.got.length === 1);
    const skipped = t.logs.find((l) => l.event === "signal_line_too_long");
    assert.equal(skipped?.bytes, new TextEncoder().encode(huge).length);
    assert.equal(skipped?.method, "receive");
    assert.equal(t.client.status().reconnects, 0, "never reconnected");
    // an answer too long fails its request at once, not after the 60 s timeout
    t.peer.onSend = () => ({ result: { timestamp: 1, results: [], pad: "y".repeat(2 << 20) } });
    const started = Date.now();
    await assert.rejects(t.client.request("send", { recipient: ["+1"] }), (e: unknown) => {
      assert.ok(e instanceof RpcError);
      assert.match(e.message, /line limit/);
      return true;
    });
    assert.ok(Date.now() - started < 30_000);
    assert.deepEqual(await t.client.request("version"), { version: "0.14.6" });
  } finally {
    await t.stop();
  }
});

Deno.test("daemon restart with a stale socket: pending requests fail, the client reconnects", async () => {
  const t = await setup();
  try {
    const release = t.peer.hold("listGroups");
    const pending = t.client.request("listGroups");
    await t.peer.waitFor(() => t.peer.calls("listGroups").length === 1);
    await t.peer.stop({ stale: true });
    await assert.rejects(pending, TransportUnavailableError);
    release();
    await waitUntil(() => t.client.status().state !== "connected");
    // the stale file refuses connections: the client keeps retrying, never dies
    await assert.rejects(t.client.request("version"), TransportUnavailableError);
    await waitUntil(() => (t.client.status().lastError ?? "").includes("cannot connect"));
    // messages arriving while disconnected wait on the server (receive-mode on-connection)
    t.peer.push(dataEnvelope({ ...OWNER, timestamp: 77, text: "while away" }));
    t.peer.listen();
    await waitUntil(() => t.client.status().state === "connected");
    await waitUntil(() => t.got.length === 1);
    assert.equal(t.client.status().reconnects, 1);
    assert.deepEqual(await t.client.request("version"), { version: "0.14.6" });
    assert.ok(t.peer.connections >= 2);
  } finally {
    await t.stop();
  }
});

Deno.test("the socket vanishing entirely is survived the same way", async () => {
  const t = await setup();
  try {
    await t.peer.stop();
    await waitUntil(() => (t.client.status().lastError ?? "").includes("cannot connect"));
    t.peer.listen();
    await waitUntil(() => t.client.status().state === "connected");
    assert.deepEqual(await t.client.request("version"), { version: "0.14.6" });
  } finally {
    await t.stop();
  }
});
