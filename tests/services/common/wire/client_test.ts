import assert from "node:assert/strict";
import { Hono } from "hono";
import {
  fail,
  JsonClient,
  jsonRoutes,
  ok,
  requestId,
  SignedClient,
  signedRoutes,
  WireClientError,
} from "../../../../services/common/wire/mod.ts";
import { createLogger, memorySink } from "../../../../services/common/log.ts";
import { serve, tempStore, testKeys } from "./_helpers.ts";

interface Hit {
  path: string;
  nonce: string | undefined;
  requestId: string | undefined;
  signed: boolean;
}

/** A signed server whose routes fail on demand; every request is counted before verification. */
async function flakyServer() {
  const keys = await testKeys();
  const t = await tempStore();
  const hits: Hit[] = [];
  const verified: string[] = [];
  let failuresLeft = 0;
  let release = () => {};
  const hang = new Promise<void>((r) => release = r);
  const app = new Hono();
  app.use("*", async (c, next) => {
    hits.push({
      path: c.req.path,
      nonce: c.req.header("x-nonce"),
      requestId: c.req.header("x-request-id"),
      signed: c.req.header("x-hmac-sha256") !== undefined,
    });
    await next();
  });
  app.use(
    "/api/*",
    signedRoutes({
      key: keys.meshToJoi,
      direction: "mesh_to_joi",
      nonceStore: t.store,
      allowedSources: ["127.0.0.1"],
      toleranceMs: 300_000,
      maxBodyBytes: 4096,
    }),
  );
  app.use("/api/*", async (c, next) => {
    verified.push(c.req.header("x-nonce")!);
    await next();
  });
  app.post("/api/flaky", (c) => {
    if (failuresLeft-- > 0) {
      return c.json({
        status: "error",
        request_id: requestId(c),
        timestamp: new Date().toISOString(),
        error: { code: "internal_error", message: "unavailable" },
      }, 503);
    }
    return ok(c, { done: true });
  });
  app.post("/api/limited/:seconds", (c) => {
    if (failuresLeft-- > 0) {
      return fail(c, "rate_limited", "slow down", { retryAfter: Number(c.req.param("seconds")) });
    }
    return ok(c, { done: true });
  });
  app.post("/api/bad", (c) => fail(c, "invalid_request", "field x is missing"));
  app.post("/api/replay", (c) => fail(c, "replay_detected", "seen"));
  app.post("/api/text502", (c) => c.text("<html>bad gateway</html>", 502));
  app.post("/api/hang", async (c) => {
    await hang;
    return ok(c, {});
  });
  app.use("/ingest/*", jsonRoutes({ maxBodyBytes: 4096 }));
  app.post("/ingest/event", (c) => ok(c, { got: true }));
  const server = serve(app);
  const sleeps: number[] = [];
  const client = (options: Partial<ConstructorParameters<typeof SignedClient>[0]> = {}) =>
    new SignedClient({
      baseUrl: server.url,
      key: keys.meshToJoi,
      direction: "mesh_to_joi",
      baseDelayMs: 100,
      sleep: (ms) => {
        sleeps.push(ms);
        return Promise.resolve();
      },
      random: () => 0.5,
      ...options,
    });
  return {
    keys,
    hits,
    verified,
    sleeps,
    server,
    client,
    setFailures(n: number) {
      failuresLeft = n;
    },
    async close() {
      release();
      await server.close();
      t.store.close();
      await Deno.remove(t.dir, { recursive: true });
    },
  };
}

Deno.test("client retries 503 with backoff and a fresh nonce per try, keeping the request id", async () => {
  const s = await flakyServer();
  try {
    s.setFailures(2);
    const res = await s.client({ maxRetries: 3 }).request("POST", "/api/flaky", { a: 1 });
    assert.equal(res.status, 200);
    assert.equal(res.attempts, 3);
    assert.equal(res.envelope.status, "ok");
    assert.equal(res.envelope.request_id, res.requestId);
    assert.equal(s.hits.length, 3);
    assert.equal(new Set(s.verified).size, 3, "every try must carry a new nonce");
    assert.deepEqual(s.hits.map((h) => h.requestId), Array(3).fill(res.requestId));
    // equal jitter with random() = 0.5: 0.75 x 100 x 2^(try-1)
    assert.deepEqual(s.sleeps, [75, 150]);
  } finally {
    await s.close();
  }
});

Deno.test("client gives up after maxRetries on 5xx and returns the last envelope", async () => {
  const s = await flakyServer();
  try {
    s.setFailures(10);
    const res = await s.client({ maxRetries: 2 }).request("POST", "/api/flaky", {});
    assert.equal(res.status, 503);
    assert.equal(res.attempts, 3);
    assert.equal(s.hits.length, 3);
    assert.deepEqual(s.sleeps, [75, 150]);
  } finally {
    await s.close();
  }
});

Deno.test("client honours retry_after on 429 up to its cap", async () => {
  const s = await flakyServer();
  try {
    s.setFailures(1);
    const res = await s.client().request("POST", "/api/limited/7", {});
    assert.equal(res.status, 200);
    assert.deepEqual(s.sleeps, [7000]);
    s.sleeps.length = 0;
    s.hits.length = 0;
    s.setFailures(1);
    const over = await s.client({ maxRetryAfterMs: 60_000 }).request(
      "POST",
      "/api/limited/120",
      {},
    );
    assert.equal(over.status, 429);
    assert.equal(over.attempts, 1);
    assert.equal(over.envelope.status === "error" && over.envelope.error.retry_after, 120);
    assert.deepEqual(s.sleeps, []);
    assert.equal(s.hits.length, 1);
  } finally {
    await s.close();
  }
});

Deno.test("client never retries a verified 400 or 409; a 401 it cannot verify is a failed try", async () => {
  const s = await flakyServer();
  try {
    const bad = await s.client().request("POST", "/api/bad", {});
    assert.equal(bad.status, 400);
    const replay = await s.client().request("POST", "/api/replay", {});
    assert.equal(replay.status, 409);
    assert.equal(s.hits.length, 2);
    assert.deepEqual(s.sleeps, []);
    // signed with a wrong key: the server's 401 is signed under the real key,
    // which this client does not hold, so it cannot trust it and retries
    const wrongKey = s.client({
      key: { ...s.keys.joiToMesh, direction: "mesh_to_joi" },
      maxRetries: 1,
    });
    await assert.rejects(() => wrongKey.request("POST", "/api/flaky", {}), (e: unknown) => {
      assert.ok(e instanceof WireClientError);
      assert.equal(e.kind, "unverified");
      assert.equal(e.status, 401);
      assert.equal(e.attempts, 2);
      return true;
    });
  } finally {
    await s.close();
  }
});

Deno.test("client retries network errors and a non-envelope 502, then throws saying what failed", async () => {
  const s = await flakyServer();
  try {
    await assert.rejects(
      () => s.client({ maxRetries: 1 }).request("POST", "/api/text502", {}),
      (e: unknown) => {
        assert.ok(e instanceof WireClientError);
        assert.equal(e.status, 502);
        assert.equal(e.attempts, 2);
        assert.match(e.message, /HTTP 502 after 2 tries, response is not JSON/);
        return true;
      },
    );
    const port = s.server.port;
    await s.close();
    const dead = new SignedClient({
      baseUrl: `http://127.0.0.1:${port}`,
      key: s.keys.meshToJoi,
      direction: "mesh_to_joi",
      maxRetries: 2,
      sleep: () => Promise.resolve(),
    });
    await assert.rejects(() => dead.request("GET", "/api/x"), (e: unknown) => {
      assert.ok(e instanceof WireClientError);
      assert.equal(e.status, undefined);
      assert.equal(e.attempts, 3);
      assert.match(e.message, /no answer after 3 tries/);
      return true;
    });
  } finally {
    await s.close().catch(() => {});
  }
});

Deno.test("client times out a hanging try and retries it", async () => {
  const s = await flakyServer();
  try {
    await assert.rejects(
      () => s.client({ maxRetries: 1, timeoutMs: 50 }).request("POST", "/api/hang", {}),
      /no answer after 2 tries/,
    );
    assert.equal(s.hits.length, 2);
  } finally {
    await s.close();
  }
});

Deno.test("JsonClient sends unsigned JSON with X-Request-ID and X-Timestamp", async () => {
  const s = await flakyServer();
  try {
    const c = new JsonClient({ baseUrl: s.server.url, now: () => 1234 });
    const res = await c.request("POST", "/ingest/event", { event_id: "x" });
    assert.equal(res.status, 200);
    assert.equal(s.hits[0]!.signed, false);
    assert.equal(s.hits[0]!.requestId, res.requestId);
    assert.throws(() => new JsonClient({ baseUrl: "not a url" }), /is not a URL/);
    await assert.rejects(
      () => c.request("GET", "http://evil.example/x"),
      /leaves http:\/\/127\.0\.0\.1/,
    );
  } finally {
    await s.close();
  }
});

/** A client whose fetch goes through `mitm`, which may change the answer. */
function throughMitm(
  s: Awaited<ReturnType<typeof flakyServer>>,
  mitm: (answer: Response, n: number) => Promise<Response> | Response,
  options: Partial<ConstructorParameters<typeof SignedClient>[0]> = {},
) {
  let n = 0;
  return s.client({
    fetch: async (input, init) => mitm(await fetch(input, init), n++),
    ...options,
  });
}

async function rebuilt(
  res: Response,
  edit: (r: { status: number; headers: Headers; body: Uint8Array }) => void,
): Promise<Response> {
  const r = {
    status: res.status,
    headers: new Headers(res.headers),
    body: new Uint8Array(await res.arrayBuffer()),
  };
  edit(r);
  return new Response(r.body, { status: r.status, headers: r.headers });
}

Deno.test("an answer that was altered, forged, unsigned or meant for another request is a failed try, logged", async () => {
  const s = await flakyServer();
  const sink = memorySink();
  const log = createLogger("test", { quiet: true, sinks: [sink] });
  try {
    let captured: Response | undefined;
    const attacks: [string, (res: Response, n: number) => Promise<Response> | Response][] = [
      ["body byte changed", (res) =>
        rebuilt(res, (r) => {
          r.body = r.body.slice();
          r.body[r.body.length - 3]! ^= 1;
        })],
      ["status changed", (res) => rebuilt(res, (r) => (r.status = 202))],
      [
        "signed header changed",
        (res) => rebuilt(res, (r) => r.headers.set("x-request-id", crypto.randomUUID())),
      ],
      ["unsigned header added", (res) => rebuilt(res, (r) => r.headers.set("retry-after", "1"))],
      ["MAC removed", (res) => rebuilt(res, (r) => r.headers.delete("x-hmac-sha256"))],
      [
        "server clock changed",
        (res) => rebuilt(res, (r) => r.headers.set("x-timestamp", String(Date.now() + 1))),
      ],
      ["forged, unsigned envelope", async (res) => {
        await res.body?.cancel();
        return Response.json({
          status: "ok",
          request_id: crypto.randomUUID(),
          timestamp: new Date().toISOString(),
          data: { done: true },
        });
      }],
      ["an earlier signed answer replayed", async (res, n) => {
        if (n === 0) {
          captured = res;
          return res.clone();
        }
        await res.body?.cancel();
        return captured!.clone();
      }],
    ];
    for (const [name, attack] of attacks) {
      captured = undefined;
      const client = throughMitm(s, attack, { maxRetries: 1, log });
      if (name.startsWith("an earlier")) {
        // the first answer is genuine and accepted; the replay of it answers the next request
        assert.equal((await client.request("POST", "/api/flaky", {})).status, 200);
      }
      await assert.rejects(() => client.request("POST", "/api/flaky", {}), (e: unknown) => {
        assert.ok(e instanceof WireClientError, name);
        assert.equal(e.kind, "unverified", name);
        assert.equal(e.attempts, 2, `${name}: retried like a failed try`);
        return true;
      }, name);
    }
    const refused = sink.lines.filter((l) => l.event === "wire.answer_refused");
    assert.ok(refused.length >= attacks.length * 2);
    assert.ok(refused.every((l) => l.level === "security"));
  } finally {
    await s.close();
  }
});

Deno.test("the server clock of each verified answer gives the offset; one beyond the tolerance is refused", async () => {
  const s = await flakyServer();
  try {
    const client = s.client();
    assert.equal(client.clock.health(), null);
    await client.request("POST", "/api/flaky", {});
    const h = client.clock.health()!;
    assert.ok(Math.abs(h.offset_ms) < 5_000, `same machine: offset ${h.offset_ms} ms`);
    assert.ok(h.rtt_ms >= 0);
    // our clock 10 minutes slow: the answers verify but the peer's clock is out of tolerance
    const slow = s.client({ now: () => Date.now() - 600_000, maxRetries: 0 });
    await assert.rejects(() => slow.request("GET", "/api/x"), (e: unknown) => {
      assert.ok(e instanceof WireClientError);
      assert.equal(e.kind, "unverified");
      return true;
    });
    const measured = slow.clock.health()!;
    assert.ok(measured.offset_ms > 590_000, "the offset is measured even when refused");
  } finally {
    await s.close();
  }
});

Deno.test("a caller's X-Request-ID is kept (and signed) instead of a generated one", async () => {
  const s = await flakyServer();
  try {
    const id = crypto.randomUUID();
    const res = await s.client().request("POST", "/api/flaky", {}, { "X-Request-ID": id });
    assert.equal(res.requestId, id);
    assert.equal(res.envelope.request_id, id);
    assert.equal(s.hits.at(-1)!.requestId, id);
  } finally {
    await s.close();
  }
});
