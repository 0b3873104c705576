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

Deno.test("client never retries 400, 401 or 409", async () => {
  const s = await flakyServer();
  try {
    const bad = await s.client().request("POST", "/api/bad", {});
    assert.equal(bad.status, 400);
    const replay = await s.client().request("POST", "/api/replay", {});
    assert.equal(replay.status, 409);
    const wrongKey = await s.client({ key: s.keys.joiToMesh }).request("POST", "/api/flaky", {});
    assert.equal(wrongKey.status, 401);
    assert.equal(
      wrongKey.envelope.status === "error" && wrongKey.envelope.error.code,
      "auth_failed",
    );
    assert.equal(s.hits.length, 3);
    assert.deepEqual(s.sleeps, []);
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
