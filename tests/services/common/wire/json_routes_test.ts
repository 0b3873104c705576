/**
 * The unsigned JSON middleware (json_routes.ts, body.ts) on the guarded
 * server: media type, size limits before and while reading, JSON syntax, and
 * the body deadline.
 */
import assert from "node:assert/strict";
import { Hono } from "hono";
import { jsonRoutes, ok } from "../../../../services/common/wire/mod.ts";
import { rawExchange, serve } from "./_helpers.ts";

const enc = new TextEncoder();

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
