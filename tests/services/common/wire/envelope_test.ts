import assert from "node:assert/strict";
import { Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { createLogger, memorySink } from "../../../../services/common/log.ts";
import {
  envelopeSchema,
  ERROR_CODES,
  ERROR_STATUS,
  fail,
  installEnvelopeHandlers,
  INTERNAL_ERROR_MESSAGE,
  ok,
  parseEnvelope,
} from "../../../../services/common/wire/mod.ts";

function app(sink = memorySink()) {
  const a = new Hono();
  installEnvelopeHandlers(a, createLogger("test", { quiet: true, sinks: [sink] }));
  a.get("/throws", () => {
    throw new Error("db at /var/lib/joi/joi.db is locked");
  });
  a.get("/http-exception", () => {
    throw new HTTPException(400, { message: "field x missing" });
  });
  a.get("/ok", (c) => ok(c, { n: 1 }));
  a.get("/created", (c) => ok(c, { n: 2 }, 201));
  a.get("/fail/:code", (c) => {
    const code = c.req.param("code") as typeof ERROR_CODES[number];
    return fail(c, code, "secret detail /etc/joi/x", {
      retryAfter: code === "rate_limited" ? 29.2 : undefined,
    });
  });
  a.get("/too-big", (c) => fail(c, "invalid_request", "too big", { status: 413 }));
  a.get("/misuse", (c) => fail(c, "forbidden", "x", { status: 413 }));
  return a;
}

Deno.test("ok and fail produce envelopes the client schema accepts, with the contract's statuses", async () => {
  const a = app();
  const res = await a.request("/ok");
  assert.equal(res.status, 200);
  const body = await res.json();
  assert.deepEqual(Object.keys(body).sort(), ["data", "request_id", "status", "timestamp"]);
  assert.equal(envelopeSchema.parse(body).status, "ok");
  assert.equal(res.headers.get("x-request-id"), body.request_id);
  assert.equal((await a.request("/created")).status, 201);
  const expected = {
    invalid_request: 400,
    auth_failed: 401,
    forbidden: 403,
    not_found: 404,
    replay_detected: 409,
    rate_limited: 429,
    internal_error: 500,
  };
  assert.deepEqual({ ...ERROR_STATUS }, expected);
  for (const code of ERROR_CODES) {
    const r = await a.request(`/fail/${code}`);
    assert.equal(r.status, expected[code], code);
    const env = envelopeSchema.parse(await r.json());
    assert.ok(env.status === "error");
    assert.equal(env.error.code, code);
    if (code === "rate_limited") {
      assert.equal(env.error.retry_after, 30);
      assert.equal(r.headers.get("retry-after"), "30");
    }
  }
});

Deno.test("internal_error leaks no detail", async () => {
  const r = await app().request("/fail/internal_error");
  const text = await r.text();
  assert.ok(!text.includes("secret detail"));
  assert.ok(!text.includes("/etc/joi"));
  assert.equal(JSON.parse(text).error.message, INTERNAL_ERROR_MESSAGE);
});

Deno.test("invalid_request may use 413/415; other codes may not borrow statuses", async () => {
  const sink = memorySink();
  const a = app(sink);
  assert.equal((await a.request("/too-big")).status, 413);
  const misuse = await a.request("/misuse"); // fail() threw: a programming error
  assert.equal(misuse.status, 500);
  assert.equal((await misuse.json()).error.code, "internal_error");
  assert.match(String(sink.lines[0]!.error), /HTTP 413 is not a status of error code forbidden/);
});

Deno.test("thrown errors and unknown routes still answer envelopes; detail goes to the log only", async () => {
  const sink = memorySink();
  const a = app(sink);
  const thrown = await a.request("/throws");
  assert.equal(thrown.status, 500);
  const text = await thrown.text();
  assert.ok(!text.includes("joi.db"));
  assert.equal(envelopeSchema.parse(JSON.parse(text)).status, "error");
  assert.ok(sink.lines.some((l) => String(l.error).includes("joi.db is locked")));
  const nf = await a.request("/nowhere");
  assert.equal(nf.status, 404);
  assert.equal((await nf.json()).error.code, "not_found");
  const hx = await a.request("/http-exception");
  assert.equal(hx.status, 400);
  assert.deepEqual((await hx.json()).error, {
    code: "invalid_request",
    message: "field x missing",
  });
});

Deno.test("a given UUID X-Request-ID is echoed; garbage is replaced", async () => {
  const a = app();
  const id = crypto.randomUUID();
  const r = await a.request("/ok", { headers: { "X-Request-ID": id } });
  assert.equal((await r.json()).request_id, id);
  const g = await a.request("/ok", { headers: { "X-Request-ID": "<script>" } });
  const gid = (await g.json()).request_id;
  assert.notEqual(gid, "<script>");
  assert.equal(g.headers.get("x-request-id"), gid);
});

Deno.test("parseEnvelope says what is wrong with a bad answer", () => {
  assert.match((parseEnvelope("<html>") as { problem: string }).problem, /not JSON/);
  const p = parseEnvelope(JSON.stringify({ status: "error", request_id: "x", timestamp: "now" }));
  assert.equal(p.ok, false);
  assert.match((p as { problem: string }).problem, /request_id: request_id must be a UUID/);
  assert.match((p as { problem: string }).problem, /error:/);
});
