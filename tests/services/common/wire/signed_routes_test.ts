/**
 * The signed-routes middleware (signed_routes.ts) over real HTTP on the
 * guarded server: what it refuses and why, and that every answer it gives to
 * a request carrying a well-formed nonce and MAC is signed and bound to it.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import {
  checkAnswer,
  type Direction,
  ok,
  openNonceStore,
  signedHeaders,
  signedOrOpen,
  type SignedRequest,
  signedRoutes,
  type SignedRoutesOptions,
  type WireKey,
} from "../../../../services/common/wire/mod.ts";
import { createLogger, memorySink } from "../../../../services/common/log.ts";
import { headerLines, rawExchange, serve, signedApp, tempStore, testKeys } from "./_helpers.ts";

const NOW = 1_767_225_600_000;
const enc = new TextEncoder();

interface SendOptions {
  key: WireKey;
  direction?: Direction;
  method?: string;
  path?: string;
  body?: string;
  timestamp?: number;
  nonce?: string;
  contentType?: string;
  requestId?: string;
  /** More headers to sign. */
  extra?: Record<string, string>;
  /** Change the request after signing. */
  tamper?: (r: { method: string; path: string; body: Uint8Array; headers: Headers }) => void;
}

async function send(url: string, o: SendOptions) {
  const method = o.method ?? "POST";
  const path = o.path ?? "/api/v1/echo";
  const body = enc.encode(o.body ?? (method === "GET" ? "" : '{"hello":"world"}'));
  const toSign: Record<string, string> = {
    "X-Request-ID": o.requestId ?? crypto.randomUUID(),
    ...o.extra,
  };
  if (body.length > 0) toSign["Content-Type"] = o.contentType ?? "application/json";
  const signed: SignedRequest = signedHeaders({
    key: o.key.request,
    direction: o.direction ?? "mesh_to_joi",
    method,
    path,
    body,
    headers: toSign,
    timestamp: o.timestamp ?? NOW,
    nonce: o.nonce,
  });
  const r = { method, path, body, headers: new Headers(signed.headers) };
  o.tamper?.(r);
  const res = await fetch(url + r.path, {
    method: r.method,
    headers: r.headers,
    body: r.body.length > 0 ? r.body : null,
  });
  const bytes = new Uint8Array(await res.arrayBuffer());
  const json = JSON.parse(new TextDecoder().decode(bytes));
  const answer = checkAnswer(
    o.key.response,
    { direction: o.direction ?? "mesh_to_joi", nonce: signed.nonce },
    { status: res.status, headers: res.headers, body: bytes },
  );
  return { status: res.status, json, headers: res.headers, sent: r.headers, answer };
}

/** The signed routes of these tests: mesh -> joi, from 127.0.0.1, on the fixed clock. */
function routes(
  key: SignedRoutesOptions["key"],
  nonceStore: SignedRoutesOptions["nonceStore"],
  more: Partial<SignedRoutesOptions> = {},
) {
  return signedRoutes({
    key,
    direction: "mesh_to_joi",
    nonceStore,
    allowedSources: ["127.0.0.1"],
    toleranceMs: 300_000,
    maxBodyBytes: 1024,
    now: () => NOW,
    ...more,
  });
}

async function fixture(options: { allowedSources?: string[]; toleranceMs?: number } = {}) {
  const keys = await testKeys();
  const t = await tempStore();
  const sink = memorySink();
  const { app, seen } = signedApp({
    key: keys.meshToJoi,
    store: t.store,
    now: () => NOW,
    logger: createLogger("test", { quiet: true, sinks: [sink] }),
    ...options,
  });
  const server = serve(app);
  return {
    keys,
    seen,
    server,
    logs: sink.lines,
    store: t.store,
    path: t.path,
    async close() {
      await server.close();
      t.store.close();
      await Deno.remove(t.dir, { recursive: true });
    },
  };
}

Deno.test("signed round trip reaches the handler with the verified body; the answer is signed and bound to it", async () => {
  const f = await fixture();
  try {
    const id = crypto.randomUUID();
    const res = await send(f.server.url, { key: f.keys.meshToJoi, requestId: id });
    assert.equal(res.status, 200);
    assert.equal(res.json.status, "ok");
    assert.deepEqual(res.json.data, { json: { hello: "world" }, bytes: 17 });
    assert.equal(f.seen.handled.length, 1);
    assert.equal(res.json.request_id, id);
    assert.equal(res.headers.get("x-request-id"), id);
    assert.ok(res.answer.ok, JSON.stringify(res.answer));
    assert.equal(
      res.answer.ok && res.answer.serverTime,
      NOW,
      "the server's clock is in X-Timestamp",
    );
    assert.equal(res.headers.get("x-signed-headers"), "content-type;x-request-id");
  } finally {
    await f.close();
  }
});

Deno.test("a malformed X-Request-ID, signed, is replaced in the answer, not refused", async () => {
  const f = await fixture();
  try {
    const res = await send(f.server.url, {
      key: f.keys.meshToJoi,
      requestId: "not-a-uuid; DROP TABLE x",
    });
    assert.equal(res.status, 200);
    assert.notEqual(res.json.request_id, "not-a-uuid");
    assert.match(res.json.request_id, /^[0-9a-f-]{36}$/);
    assert.ok(res.answer.ok);
  } finally {
    await f.close();
  }
});

Deno.test("a replayed nonce gets 409, also after restarting the server on the same journal", async () => {
  const keys = await testKeys();
  const t = await tempStore();
  t.store.close();
  const store = openNonceStore(t.path, 900_000, { now: () => NOW });
  const nonce = crypto.randomUUID();
  try {
    const sink = memorySink();
    const logger = createLogger("test", { quiet: true, sinks: [sink] });
    let { app, seen } = signedApp({ key: keys.meshToJoi, store, now: () => NOW, logger });
    let server = serve(app);
    const first = await send(server.url, { key: keys.meshToJoi, nonce });
    assert.equal(first.status, 200);
    const again = await send(server.url, { key: keys.meshToJoi, nonce });
    assert.equal(again.status, 409);
    assert.equal(again.json.error.code, "replay_detected");
    assert.ok(again.answer.ok, "a refusal is signed too");
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
    store.close();

    const reopened = openNonceStore(t.path, 900_000, { now: () => NOW });
    ({ app, seen } = signedApp({ key: keys.meshToJoi, store: reopened, now: () => NOW }));
    server = serve(app);
    try {
      // signed before the restart: refused, whatever its nonce
      const afterRestart = await send(server.url, { key: keys.meshToJoi, nonce });
      assert.equal(afterRestart.status, 401);
      assert.match(afterRestart.json.error.message, /predates this server's restart/);
      assert.equal(seen.handled.length, 0);
      // signed after it: accepted
      const fresh = await send(server.url, { key: keys.meshToJoi, timestamp: reopened.floor + 1 });
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

Deno.test("tampering after signing is refused: body, path, method, direction, key, any signed header", async () => {
  const f = await fixture();
  try {
    const channel = { "X-Validated-Channel": "family_group", "X-Validated-Sender": "partner" };
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
      ["signed with the other direction's key", {
        key: { ...f.keys.joiToMesh, direction: "mesh_to_joi" },
      }],
      ["right key, other direction label", { key: f.keys.meshToJoi, direction: "joi_to_mesh" }],
      ["timestamp changed by 1 ms", {
        key: f.keys.meshToJoi,
        tamper: (r) => r.headers.set("X-Timestamp", String(NOW + 1)),
      }],
      ["nonce swapped", {
        key: f.keys.meshToJoi,
        tamper: (r) => r.headers.set("X-Nonce", crypto.randomUUID()),
      }],
      ["channel rewritten", {
        key: f.keys.meshToJoi,
        extra: channel,
        tamper: (r) => r.headers.set("X-Validated-Channel", "owner_private_dm"),
      }],
      ["channel and sender rewritten together", {
        key: f.keys.meshToJoi,
        extra: channel,
        tamper: (r) => {
          r.headers.set("X-Validated-Channel", "owner_private_dm");
          r.headers.set("X-Validated-Sender", "owner");
        },
      }],
      ["a signed value re-cased", {
        key: f.keys.meshToJoi,
        extra: channel,
        tamper: (r) => r.headers.set("X-Validated-Channel", "Family_group"),
      }],
      ["content type changed", {
        key: f.keys.meshToJoi,
        tamper: (r) => r.headers.set("Content-Type", "application/json; charset=utf-8"),
      }],
      ["request id changed", {
        key: f.keys.meshToJoi,
        tamper: (r) => r.headers.set("X-Request-ID", crypto.randomUUID()),
      }],
      ["a header dropped from the list", {
        key: f.keys.meshToJoi,
        extra: channel,
        tamper: (r) => {
          r.headers.set(
            "X-Signed-Headers",
            "content-type;x-request-id;x-validated-sender",
          );
          r.headers.delete("X-Validated-Channel");
        },
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

Deno.test("a header that carries authority but is not signed, sent twice, or missing from the message is refused", async () => {
  const f = await fixture();
  try {
    const cases: [string, SendOptions, RegExp][] = [
      ["an unsigned header added", {
        key: f.keys.meshToJoi,
        tamper: (r) => r.headers.set("X-Validated-Channel", "owner_private_dm"),
      }, /header x-validated-channel is not in X-Signed-Headers/],
      ["a signed header sent twice with another value", {
        key: f.keys.meshToJoi,
        extra: { "X-Validated-Channel": "family_group" },
        tamper: (r) => r.headers.append("x-VALIDATED-channel", "owner_private_dm"),
      }, /header x-validated-channel is sent twice/],
      ["a signed header sent twice with the same value", {
        key: f.keys.meshToJoi,
        extra: { "X-Validated-Channel": "family_group" },
        tamper: (r) => r.headers.append("X-Validated-Channel", "family_group"),
      }, /header x-validated-channel is sent twice/],
      ["a listed header removed", {
        key: f.keys.meshToJoi,
        extra: { "X-Validated-Sender": "owner" },
        tamper: (r) => r.headers.delete("X-Validated-Sender"),
      }, /header x-validated-sender is listed in X-Signed-Headers but absent/],
      ["an unknown standard header", {
        key: f.keys.meshToJoi,
        tamper: (r) => r.headers.set("Authorization", "Bearer x"),
      }, /header authorization is not in X-Signed-Headers/],
      ["a list that is not sorted", {
        key: f.keys.meshToJoi,
        tamper: (r) => r.headers.set("X-Signed-Headers", "x-request-id;content-type"),
      }, /malformed header X-Signed-Headers: names must be sorted/],
      ["a list naming a protocol header", {
        key: f.keys.meshToJoi,
        tamper: (r) => r.headers.set("X-Signed-Headers", "content-type;x-nonce;x-request-id"),
      }, /x-nonce is a protocol header/],
      ["X-Request-ID not signed", {
        key: f.keys.meshToJoi,
        tamper: (r) => {
          r.headers.set("X-Signed-Headers", "content-type");
          r.headers.delete("X-Request-ID");
        },
      }, /X-Request-ID must be signed/],
    ];
    for (const [name, options, message] of cases) {
      const res = await send(f.server.url, options);
      assert.equal(res.status, 401, name);
      assert.match(res.json.error.message, message, name);
      assert.ok(res.answer.ok, `${name}: the refusal is signed`);
    }
    assert.equal(f.seen.handled.length, 0);
    const reasons = f.logs.filter((l) => l.event === "wire.refused").map((l) => l.reason);
    assert.ok(reasons.includes("header_unsigned") && reasons.includes("header_ambiguous"));
  } finally {
    await f.close();
  }
});

Deno.test("each missing or malformed signing header gets 401 naming it", async () => {
  const f = await fixture();
  try {
    for (const name of ["X-Timestamp", "X-Nonce", "X-HMAC-SHA256", "X-Signed-Headers"]) {
      const res = await send(f.server.url, {
        key: f.keys.meshToJoi,
        tamper: (r) => r.headers.delete(name),
      });
      assert.equal(res.status, 401, name);
      assert.equal(res.json.error.code, "auth_failed");
      assert.equal(res.json.error.message, `missing header ${name} (joi-wire-v2)`);
    }
    const malformed: [string, string][] = [
      ["X-Timestamp", "2026-01-01T00:00:00Z"],
      ["X-Timestamp", "-5"],
      ["X-Nonce", "1234"],
      ["X-Nonce", crypto.randomUUID().toUpperCase()],
      ["X-HMAC-SHA256", "zz".repeat(32)],
      ["X-HMAC-SHA256", "ab".repeat(31)],
      ["X-HMAC-SHA256", "AB".repeat(32)],
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

Deno.test("a disallowed source address gets 403 (unsigned) before anything else is looked at", async () => {
  const f = await fixture({ allowedSources: ["10.42.0.1", "::1"] });
  try {
    const res = await send(f.server.url, { key: f.keys.meshToJoi });
    assert.equal(res.status, 403);
    assert.equal(res.json.error.code, "forbidden");
    assert.equal(res.headers.get("x-hmac-sha256"), null, "a stranger gets no signed answer");
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
  const app = new Hono();
  app.use(
    "/api/*",
    routes(keys.meshToJoi, t.store, {
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

function rawSigned(key: WireKey, headers: Record<string, string>, body = new Uint8Array(0)) {
  return signedHeaders({
    key: key.request,
    direction: "mesh_to_joi",
    method: "POST",
    path: "/api/v1/echo",
    body,
    headers: { "X-Request-ID": crypto.randomUUID(), ...headers },
    timestamp: NOW,
  }).headers;
}

Deno.test("an oversized Content-Length gets 413 before the body is read (the body never arrives)", async () => {
  const f = await fixture();
  try {
    const head = [
      "POST /api/v1/echo HTTP/1.1",
      `Host: 127.0.0.1:${f.server.port}`,
      "Content-Length: 10000000",
      ...headerLines(rawSigned(f.keys.meshToJoi, { "Content-Type": "application/json" })),
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
    const head = [
      "POST /api/v1/echo HTTP/1.1",
      `Host: 127.0.0.1:${f.server.port}`,
      "Transfer-Encoding: chunked",
      ...headerLines(rawSigned(f.keys.meshToJoi, { "Content-Type": "application/json" })),
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

Deno.test("Unix socket peers pass only when `unix` is an allowed source", async () => {
  const { socketSlots } = await import("../../../_helpers/sockets.ts");
  const { serveGuarded } = await import("../../../../services/common/wire/mod.ts");
  const { TEST_LIMITS } = await import("./_helpers.ts");
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
    const server = serveGuarded(app, { path: socket, ...TEST_LIMITS });
    try {
      const conn = await Deno.connect({ transport: "unix", path: socket });
      const head = [
        "POST /api/v1/echo HTTP/1.1",
        "Host: localhost",
        "Content-Length: 2",
        "Connection: close",
        ...headerLines(
          rawSigned(keys.meshToJoi, { "Content-Type": "application/json" }, enc.encode("{}")),
        ),
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

Deno.test("during a key rotation both listed keys verify and each answer is signed under the key used", async () => {
  const keys = await testKeys();
  const next = (await testKeys()).meshToJoi;
  const retired = (await testKeys()).meshToJoi;
  const t = await tempStore();
  const app = new Hono();
  app.use(
    "/api/*",
    routes([next, keys.meshToJoi], t.store),
  );
  app.post("/api/v1/echo", (c) => ok(c, {}));
  const server = serve(app);
  try {
    for (const key of [keys.meshToJoi, next]) {
      const res = await send(server.url, { key });
      assert.equal(res.status, 200);
      assert.ok(res.answer.ok, "answered under the key that signed");
    }
    assert.equal((await send(server.url, { key: retired })).status, 401);
    assert.throws(
      () =>
        signedRoutes({
          key: keys.joiToMesh,
          direction: "mesh_to_joi",
          nonceStore: t.store,
          allowedSources: ["127.0.0.1"],
          toleranceMs: 1,
          maxBodyBytes: 1,
        }),
      /a joi_to_mesh key cannot verify mesh_to_joi requests/,
    );
  } finally {
    await server.close();
    t.store.close();
    await Deno.remove(t.dir, { recursive: true });
  }
});

Deno.test("answers not made by ok()/fail() are signed too: headers, status and body under the MAC", async () => {
  const keys = await testKeys();
  const app = new Hono();
  const store = openNonceStore(":memory:", 900_000);
  app.use(
    "/api/*",
    routes(keys.meshToJoi, store),
  );
  app.post("/api/v1/echo", (c) => {
    c.header("Retry-After", "7");
    c.header("X-Bad", "a, b"); // cannot be signed unambiguously: dropped
    return c.json({ status: "ok", request_id: crypto.randomUUID(), timestamp: "x" }, 202);
  });
  const server = serve(app);
  try {
    const res = await send(server.url, { key: keys.meshToJoi });
    assert.equal(res.status, 202);
    assert.ok(res.answer.ok, JSON.stringify(res.answer));
    assert.equal(res.headers.get("x-bad"), null);
    assert.equal(
      res.headers.get("x-signed-headers"),
      "content-type;retry-after;x-request-id",
    );
  } finally {
    await server.close();
    store.close();
  }
});

Deno.test("signedOrOpen: an unsigned /health is open; a signed one is verified and answered signed", async () => {
  const keys = await testKeys();
  const store = openNonceStore(":memory:", 900_000);
  const auth = routes(keys.meshToJoi, store);
  const app = new Hono();
  app.get("/health", signedOrOpen(auth), (c) => ok(c, { service: "x" }));
  const server = serve(app);
  try {
    const open = await fetch(`${server.url}/health`);
    assert.equal(open.status, 200);
    assert.equal(open.headers.get("x-hmac-sha256"), null);
    await open.body?.cancel();
    const signed = await send(server.url, { key: keys.meshToJoi, method: "GET", path: "/health" });
    assert.equal(signed.status, 200);
    assert.ok(signed.answer.ok);
    const forged = await send(server.url, {
      key: keys.joiToMesh,
      method: "GET",
      path: "/health",
    });
    assert.equal(forged.status, 401);
  } finally {
    await server.close();
    store.close();
  }
});

Deno.test("onTimestamp reports the skew of every request whose MAC verified, refused or not", async () => {
  const keys = await testKeys();
  const store = openNonceStore(":memory:", 900_000);
  const seen: { peer: string; skewMs: number; refused: boolean }[] = [];
  const app = new Hono();
  app.use(
    "/api/*",
    routes(keys.meshToJoi, store, { onTimestamp: (s) => seen.push(s) }),
  );
  app.post("/api/v1/echo", (c) => ok(c, {}));
  const server = serve(app);
  try {
    assert.equal(
      (await send(server.url, { key: keys.meshToJoi, timestamp: NOW - 1500 })).status,
      200,
    );
    assert.equal(
      (await send(server.url, { key: keys.meshToJoi, timestamp: NOW + 400_000 })).status,
      401,
    );
    assert.equal((await send(server.url, { key: keys.joiToMesh, timestamp: NOW })).status, 401);
    assert.deepEqual(seen, [
      { peer: "127.0.0.1", skewMs: 1500, refused: false },
      { peer: "127.0.0.1", skewMs: -400_000, refused: true },
    ]);
  } finally {
    await server.close();
    store.close();
  }
});
