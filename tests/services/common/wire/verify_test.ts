import assert from "node:assert/strict";
import { Hono } from "hono";
import {
  type Direction,
  jsonRoutes,
  ok,
  openNonceStore,
  signedHeaders,
} from "../../../../services/common/wire/mod.ts";
import { createLogger, memorySink } from "../../../../services/common/log.ts";
import { rawExchange, serve, signedApp, tempStore, testKeys } from "./_helpers.ts";

const NOW = 1_767_225_600_000;
const enc = new TextEncoder();

interface SendOptions {
  key: CryptoKey;
  direction?: Direction;
  method?: string;
  path?: string;
  body?: string;
  timestamp?: number;
  nonce?: string;
  contentType?: string;
  /** Change the request after signing. */
  tamper?: (r: { method: string; path: string; body: Uint8Array; headers: Headers }) => void;
}

async function send(url: string, o: SendOptions) {
  const method = o.method ?? "POST";
  const path = o.path ?? "/api/v1/echo";
  const body = enc.encode(o.body ?? (method === "GET" ? "" : '{"hello":"world"}'));
  const headers = new Headers(
    await signedHeaders({
      key: o.key,
      direction: o.direction ?? "mesh_to_joi",
      method,
      path,
      body,
      timestamp: o.timestamp ?? NOW,
      nonce: o.nonce,
    }),
  );
  if (body.length > 0) headers.set("Content-Type", o.contentType ?? "application/json");
  const r = { method, path, body, headers };
  o.tamper?.(r);
  const res = await fetch(url + r.path, {
    method: r.method,
    headers: r.headers,
    body: r.body.length > 0 ? r.body : null,
  });
  const json = await res.json();
  return { status: res.status, json, headers: res.headers, sent: r.headers };
}

async function fixture(options: { allowedSources?: string[]; toleranceMs?: number } = {}) {
  const keys = await testKeys();
  const t = await tempStore();
  const { app, seen } = signedApp({
    key: keys.meshToJoi,
    store: t.store,
    now: () => NOW,
    ...options,
  });
  const server = serve(app);
  return {
    keys,
    seen,
    server,
    store: t.store,
    path: t.path,
    async close() {
      await server.close();
      t.store.close();
      await Deno.remove(t.dir, { recursive: true });
    },
  };
}

Deno.test("signed round trip reaches the handler with the verified body and echoes X-Request-ID", async () => {
  const f = await fixture();
  try {
    const res = await send(f.server.url, { key: f.keys.meshToJoi });
    assert.equal(res.status, 200);
    assert.equal(res.json.status, "ok");
    assert.deepEqual(res.json.data, { json: { hello: "world" }, bytes: 17 });
    assert.equal(f.seen.handled.length, 1);
    // no X-Request-ID was sent: one was generated and is echoed in header and envelope
    assert.equal(res.headers.get("x-request-id"), res.json.request_id);
    const id = crypto.randomUUID();
    const res2 = await send(f.server.url, {
      key: f.keys.meshToJoi,
      tamper: (r) => r.headers.set("X-Request-ID", id),
    });
    assert.equal(res2.status, 200);
    assert.equal(res2.json.request_id, id);
    assert.equal(res2.headers.get("x-request-id"), id);
  } finally {
    await f.close();
  }
});

Deno.test("a malformed X-Request-ID is replaced, not refused", async () => {
  const f = await fixture();
  try {
    const res = await send(f.server.url, {
      key: f.keys.meshToJoi,
      tamper: (r) => r.headers.set("X-Request-ID", "not-a-uuid; DROP TABLE x"),
    });
    assert.equal(res.status, 200);
    assert.notEqual(res.json.request_id, "not-a-uuid");
    assert.match(res.json.request_id, /^[0-9a-f-]{36}$/);
  } finally {
    await f.close();
  }
});

Deno.test("a replayed nonce gets 409, also after restarting the server on the same SQLite file", async () => {
  const keys = await testKeys();
  const t = await tempStore();
  const nonce = crypto.randomUUID();
  try {
    const sink = memorySink();
    const logger = createLogger("test", { quiet: true, sinks: [sink] });
    let { app, seen } = signedApp({ key: keys.meshToJoi, store: t.store, now: () => NOW, logger });
    let server = serve(app);
    const first = await send(server.url, { key: keys.meshToJoi, nonce });
    assert.equal(first.status, 200);
    const again = await send(server.url, { key: keys.meshToJoi, nonce });
    assert.equal(again.status, 409);
    assert.equal(again.json.error.code, "replay_detected");
    assert.equal(seen.handled.length, 1);
    // the replay is a security event, logged without the signature or the body
    const event = sink.lines.find((l) => l.event === "wire.refused");
    assert.equal(event?.level, "security");
    assert.equal(event?.reason, "replay");
    assert.equal(event?.request_id, again.json.request_id);
    const logged = JSON.stringify(sink.lines);
    assert.ok(!logged.includes(again.sent.get("X-HMAC-SHA256")!));
    assert.ok(!logged.includes("world"));
    await server.close();
    t.store.close();

    const reopened = openNonceStore(t.path, 900_000);
    ({ app, seen } = signedApp({ key: keys.meshToJoi, store: reopened, now: () => NOW }));
    server = serve(app);
    try {
      const afterRestart = await send(server.url, { key: keys.meshToJoi, nonce });
      assert.equal(afterRestart.status, 409);
      assert.equal(afterRestart.json.error.code, "replay_detected");
      assert.equal(seen.handled.length, 0);
      const fresh = await send(server.url, { key: keys.meshToJoi });
      assert.equal(fresh.status, 200);
    } finally {
      await server.close();
      reopened.close();
    }
  } finally {
    await Deno.remove(t.dir, { recursive: true });
  }
});

Deno.test("a timestamp outside the tolerance is refused on both sides; the edges pass", async () => {
  const f = await fixture({ toleranceMs: 300_000 });
  try {
    for (const offset of [-300_001, 300_001, -86_400_000, 86_400_000]) {
      const res = await send(f.server.url, { key: f.keys.meshToJoi, timestamp: NOW + offset });
      assert.equal(res.status, 401, `offset ${offset}`);
      assert.equal(res.json.error.code, "auth_failed");
      assert.match(res.json.error.message, /X-Timestamp .* (behind|ahead of) the server clock/);
    }
    for (const offset of [-300_000, 300_000, 0]) {
      const res = await send(f.server.url, { key: f.keys.meshToJoi, timestamp: NOW + offset });
      assert.equal(res.status, 200, `offset ${offset}`);
    }
    assert.equal(f.seen.handled.length, 3);
  } finally {
    await f.close();
  }
});

Deno.test("tampering after signing is refused: body byte, path, method, direction, key", async () => {
  const f = await fixture();
  try {
    const cases: [string, SendOptions][] = [
      ["one flipped body byte", {
        key: f.keys.meshToJoi,
        tamper: (r) => {
          r.body = r.body.slice();
          r.body[3]! ^= 0x01;
        },
      }],
      ["body replayed to another path", {
        key: f.keys.meshToJoi,
        tamper: (r) => r.path = "/api/v1/other",
      }],
      ["query added", { key: f.keys.meshToJoi, tamper: (r) => r.path += "?admin=1" }],
      ["same body and headers with another method", {
        key: f.keys.meshToJoi,
        tamper: (r) => r.method = "PUT",
      }],
      ["signed with the other direction's key", { key: f.keys.joiToMesh }],
      ["right key, other direction label", { key: f.keys.meshToJoi, direction: "joi_to_mesh" }],
      ["timestamp changed by 1 ms", {
        key: f.keys.meshToJoi,
        tamper: (r) => r.headers.set("X-Timestamp", String(NOW + 1)),
      }],
      ["nonce swapped", {
        key: f.keys.meshToJoi,
        tamper: (r) => r.headers.set("X-Nonce", crypto.randomUUID()),
      }],
    ];
    for (const [name, options] of cases) {
      const res = await send(f.server.url, options);
      assert.equal(res.status, 401, name);
      assert.equal(res.json.error.code, "auth_failed", name);
      assert.equal(res.json.error.message, "signature does not match", name);
    }
    assert.equal(f.seen.handled.length, 0);
    assert.equal(f.store.size(), 0, "unauthenticated requests must not fill the nonce store");
  } finally {
    await f.close();
  }
});

Deno.test("each missing or malformed signing header gets 401 naming it", async () => {
  const f = await fixture();
  try {
    for (const name of ["X-Timestamp", "X-Nonce", "X-HMAC-SHA256"]) {
      const res = await send(f.server.url, {
        key: f.keys.meshToJoi,
        tamper: (r) => r.headers.delete(name),
      });
      assert.equal(res.status, 401, name);
      assert.equal(res.json.error.code, "auth_failed");
      assert.equal(res.json.error.message, `missing header ${name}`);
    }
    const malformed: [string, string][] = [
      ["X-Timestamp", "2026-01-01T00:00:00Z"],
      ["X-Timestamp", "-5"],
      ["X-Nonce", "1234"],
      ["X-Nonce", crypto.randomUUID().toUpperCase()],
      ["X-HMAC-SHA256", "zz".repeat(32)],
      ["X-HMAC-SHA256", "ab".repeat(31)],
    ];
    for (const [name, value] of malformed) {
      const res = await send(f.server.url, {
        key: f.keys.meshToJoi,
        tamper: (r) => r.headers.set(name, value),
      });
      assert.equal(res.status, 401, `${name}: ${value}`);
      assert.match(res.json.error.message, new RegExp(`^malformed header ${name}`));
    }
    assert.equal(f.seen.handled.length, 0);
  } finally {
    await f.close();
  }
});

Deno.test("a signed body that is not application/json gets 415; a signed non-JSON body 400", async () => {
  const f = await fixture();
  try {
    for (
      const ct of [
        "text/plain",
        "application/x-www-form-urlencoded",
        "application/json; charset=latin1",
      ]
    ) {
      const res = await send(f.server.url, { key: f.keys.meshToJoi, contentType: ct });
      assert.equal(res.status, 415, ct);
      assert.equal(res.json.error.code, "invalid_request");
    }
    const res = await send(f.server.url, {
      key: f.keys.meshToJoi,
      contentType: "application/json; charset=utf-8",
    });
    assert.equal(res.status, 200);
    const bad = await send(f.server.url, { key: f.keys.meshToJoi, body: "{not json" });
    assert.equal(bad.status, 400);
    assert.match(bad.json.error.message, /^body is not valid JSON/);
    assert.equal(f.seen.handled.length, 1);
  } finally {
    await f.close();
  }
});

Deno.test("a disallowed source address gets 403 before anything else is looked at", async () => {
  const f = await fixture({ allowedSources: ["10.42.0.1", "::1"] });
  try {
    const res = await send(f.server.url, { key: f.keys.meshToJoi });
    assert.equal(res.status, 403);
    assert.equal(res.json.error.code, "forbidden");
    // even without any signing header
    const bare = await fetch(f.server.url + "/api/v1/echo");
    assert.equal(bare.status, 403);
    await bare.body?.cancel();
    assert.equal(f.store.size(), 0);
  } finally {
    await f.close();
  }
});

Deno.test("a server started without the peer address refuses signed routes with 403 and logs why", async () => {
  const keys = await testKeys();
  const t = await tempStore();
  const sink = memorySink();
  const { signedRoutes } = await import("../../../../services/common/wire/mod.ts");
  const app = new Hono();
  app.use(
    "/api/*",
    signedRoutes({
      key: keys.meshToJoi,
      direction: "mesh_to_joi",
      nonceStore: t.store,
      allowedSources: ["127.0.0.1"],
      toleranceMs: 300_000,
      maxBodyBytes: 1024,
      now: () => NOW,
      logger: createLogger("test", { quiet: true, sinks: [sink] }),
    }),
  );
  app.post("/api/x", (c) => ok(c, {}));
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    (req) => app.fetch(req), // the wrong way: drops the peer address
  );
  try {
    const res = await send(`http://127.0.0.1:${server.addr.port}`, {
      key: keys.meshToJoi,
      path: "/api/x",
    });
    assert.equal(res.status, 403);
    assert.ok(sink.lines.some((l) => l.event === "wire.no_peer_address"));
    const logged = JSON.stringify(sink.lines);
    assert.ok(!logged.includes(res.sent.get("X-HMAC-SHA256")!), "signature must not be logged");
  } finally {
    await server.shutdown();
    t.store.close();
    await Deno.remove(t.dir, { recursive: true });
  }
});

Deno.test("an oversized Content-Length gets 413 before the body is read (the body never arrives)", async () => {
  const f = await fixture();
  try {
    const headers = await signedHeaders({
      key: f.keys.meshToJoi,
      direction: "mesh_to_joi",
      method: "POST",
      path: "/api/v1/echo",
      body: new Uint8Array(0),
      timestamp: NOW,
    });
    const head = [
      "POST /api/v1/echo HTTP/1.1",
      `Host: 127.0.0.1:${f.server.port}`,
      "Content-Type: application/json",
      "Content-Length: 10000000",
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ].join("\n");
    // Only 10 bytes of the announced 10 MB are ever sent: an answer proves nothing waited for it.
    const answer = await rawExchange(f.server.port, head, [enc.encode('{"a":"bbbb')]);
    assert.equal(answer.status, 413);
    const json = JSON.parse(answer.body);
    assert.equal(json.error.code, "invalid_request");
    assert.match(json.error.message, /10000000 bytes \(Content-Length\) exceeds the limit of 1024/);
    assert.equal(f.store.size(), 0);
    assert.equal(f.seen.handled.length, 0);
  } finally {
    await f.close();
  }
});

Deno.test("a chunked body growing past the limit gets 413 while still streaming", async () => {
  const f = await fixture();
  try {
    const headers = await signedHeaders({
      key: f.keys.meshToJoi,
      direction: "mesh_to_joi",
      method: "POST",
      path: "/api/v1/echo",
      body: new Uint8Array(0),
      timestamp: NOW,
    });
    const head = [
      "POST /api/v1/echo HTTP/1.1",
      `Host: 127.0.0.1:${f.server.port}`,
      "Content-Type: application/json",
      "Transfer-Encoding: chunked",
      ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
    ].join("\n");
    const chunk = (n: number) => enc.encode(`${n.toString(16)}\r\n${"x".repeat(n)}\r\n`);
    // 2 x 700 bytes > 1024, and the terminating 0-chunk is never sent.
    const answer = await rawExchange(f.server.port, head, [chunk(700), chunk(700)]);
    assert.equal(answer.status, 413);
    assert.match(JSON.parse(answer.body).error.message, /body stream exceeds the limit of 1024/);
    assert.equal(f.seen.handled.length, 0);
  } finally {
    await f.close();
  }
});

Deno.test("jsonRoutes: 415 on a wrong type, 413 before reading, 400 on bad JSON, JSON to the handler", async () => {
  const app = new Hono();
  app.use("/ingest/*", jsonRoutes({ maxBodyBytes: 256 }));
  app.post("/ingest/event", async (c) => ok(c, { viaHono: await c.req.json() }));
  const server = serve(app);
  try {
    const post = async (body: string, ct = "application/json") => {
      const res = await fetch(server.url + "/ingest/event", {
        method: "POST",
        headers: { "Content-Type": ct },
        body,
      });
      return { status: res.status, json: await res.json() };
    };
    const good = await post('{"event_id":"e1"}');
    assert.equal(good.status, 200);
    assert.deepEqual(good.json.data, { viaHono: { event_id: "e1" } });
    assert.equal((await post("{}", "text/plain")).status, 415);
    const big = await post(JSON.stringify({ x: "y".repeat(300) }));
    assert.equal(big.status, 413);
    assert.equal(big.json.error.code, "invalid_request");
    const bad = await post("[1,");
    assert.equal(bad.status, 400);
    const head = [
      "POST /ingest/event HTTP/1.1",
      `Host: 127.0.0.1:${server.port}`,
      "Content-Type: application/json",
      "Content-Length: 99999",
    ].join("\n");
    assert.equal((await rawExchange(server.port, head, [enc.encode("{")])).status, 413);
  } finally {
    await server.close();
  }
});

Deno.test("a body that stalls is refused with 400 once bodyTimeoutMs passes", async () => {
  const app = new Hono();
  app.use("/ingest/*", jsonRoutes({ maxBodyBytes: 1024, bodyTimeoutMs: 50 }));
  app.post("/ingest/event", (c) => ok(c, {}));
  const server = serve(app);
  try {
    const head = [
      "POST /ingest/event HTTP/1.1",
      `Host: 127.0.0.1:${server.port}`,
      "Content-Type: application/json",
      "Content-Length: 100",
    ].join("\n");
    const answer = await rawExchange(server.port, head, [enc.encode('{"a":')]);
    assert.equal(answer.status, 400);
    assert.match(JSON.parse(answer.body).error.message, /did not arrive within 50 ms/);
  } finally {
    await server.close();
  }
});

Deno.test("Unix socket peers pass only when `unix` is an allowed source", async () => {
  const { socketSlots } = await import("../../../_helpers/sockets.ts");
  const keys = await testKeys();
  for (const [sources, expected] of [[["127.0.0.1"], 403], [["unix"], 200]] as const) {
    const t = await tempStore();
    // Other suites share the slots: take a free one from the end, never remove a live one.
    const socket = socketSlots().reverse().find((p) => {
      try {
        Deno.lstatSync(p);
        return false;
      } catch {
        return true;
      }
    });
    assert.ok(socket, "every test socket slot is busy");
    await Deno.mkdir(socket.slice(0, socket.lastIndexOf("/")), { recursive: true });
    const { app } = signedApp({
      key: keys.meshToJoi,
      store: t.store,
      now: () => NOW,
      allowedSources: [...sources],
    });
    const server = Deno.serve({ path: socket, onListen() {} }, app.fetch);
    try {
      const body = enc.encode("{}");
      const headers = await signedHeaders({
        key: keys.meshToJoi,
        direction: "mesh_to_joi",
        method: "POST",
        path: "/api/v1/echo",
        body,
        timestamp: NOW,
      });
      const conn = await Deno.connect({ transport: "unix", path: socket });
      const head = [
        "POST /api/v1/echo HTTP/1.1",
        "Host: localhost",
        "Content-Type: application/json",
        "Content-Length: 2",
        "Connection: close",
        ...Object.entries(headers).map(([k, v]) => `${k}: ${v}`),
      ].join("\r\n");
      await conn.write(enc.encode(head + "\r\n\r\n{}"));
      const answer = await new Response(conn.readable).text();
      assert.equal(Number(answer.slice(9, 12)), expected, `sources ${sources}`);
    } finally {
      await server.shutdown();
      await Deno.remove(socket).catch(() => {});
      t.store.close();
      await Deno.remove(t.dir, { recursive: true });
    }
  }
});

Deno.test("during a key rotation both listed keys verify, an unlisted one does not", async () => {
  const keys = await testKeys();
  const retired = (await testKeys()).meshToJoi;
  const t = await tempStore();
  const { signedRoutes } = await import("../../../../services/common/wire/mod.ts");
  const app = new Hono();
  app.use(
    "/api/*",
    signedRoutes({
      key: [keys.meshToJoi, keys.joiToMesh],
      direction: "mesh_to_joi",
      nonceStore: t.store,
      allowedSources: ["127.0.0.1"],
      toleranceMs: 300_000,
      maxBodyBytes: 1024,
      now: () => NOW,
    }),
  );
  app.post("/api/v1/echo", (c) => ok(c, {}));
  const server = serve(app);
  try {
    assert.equal((await send(server.url, { key: keys.meshToJoi })).status, 200);
    assert.equal((await send(server.url, { key: keys.joiToMesh })).status, 200);
    assert.equal((await send(server.url, { key: retired })).status, 401);
  } finally {
    await server.close();
    t.store.close();
    await Deno.remove(t.dir, { recursive: true });
  }
});
