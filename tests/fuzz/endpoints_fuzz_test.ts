/**
 * Fuzz: every listening port of the local stack, started as `deno task start`
 * starts it (main.ts with its manifest flags, each service with its own):
 * joi's 8443 (the mesh's calls), the mesh's 8444 (joi's calls) and joi's 8445
 * (openHAB's events), at a free base port. Generated methods, paths, headers
 * and bodies are written as raw bytes over TCP: truncated bodies, chunked
 * bodies without a length (and broken chunks), wrong lengths, invalid UTF-8,
 * forged signature headers. Property: every request gets an answer within
 * the timeout, never a 5xx, and a 4xx carries the contract's error shape;
 * afterwards every port still answers /health and the stack still runs. The
 * knowledge broker's socket gets generated lines: each is answered (or an
 * over-long one ends the connection) and a valid request after them is still
 * served.
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { createLogger } from "../../services/common/log.ts";
import { socketSlot } from "../_helpers/sockets.ts";
import { startLocalStack } from "../_helpers/local_stack.ts";
import { type Retriever, serveKnowledge } from "../../services/knowledge_broker/server.ts";
import { loadOptionalKey } from "../../services/common/wire/keys.ts";
import { type Direction, signedHeaders } from "../../services/common/wire/sign.ts";
import { hostileBytes, mutated, mutateJson, nastyString, report, runs, writeAll } from "./_fuzz.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const PATHS = [
  "/health",
  "/api/v1/message/inbound",
  "/api/v1/signal/inbound",
  "/config/identities",
  "/api/v1/message/outbound",
  "/api/v1/signal/outbound",
  "/api/v1/openhab/events",
  "/api/v1/openhab/presence",
  "/api/v1/openhab/sensors",
  "/api/v1/openhab/weather",
  "/api/v1/openhab/alert",
  "/api/v1/openhab/state",
];

const BODIES = [
  {
    transport: "signal",
    message_id: "m1",
    sender: { id: "owner", transport_id: "+15550000001" },
    conversation: { type: "direct", id: "owner" },
    priority: "normal",
    content: { type: "text", text: "hi", voice_transcription_failed: false },
    metadata: { mesh_received_at: 1, original_format: "signal" },
    timestamp: 1,
  },
  {
    transport: "signal",
    recipient: { id: "owner" },
    priority: "normal",
    delivery: { target: "direct" },
    content: { type: "text", text: "hi" },
    escalated: false,
    voice_response: false,
  },
  {
    event_id: crypto.randomUUID(),
    event_type: "state",
    timestamp: new Date().toISOString(),
    source: "127.0.0.1",
    data: { item: "Smoke", previous_state: "OFF", new_state: "ON", changed_by: "manual" },
  },
  {
    events: [{
      topic: "openhab/items/Smoke/statechanged",
      payload: '{"type":"OnOff","value":"ON","oldType":"OnOff","oldValue":"OFF"}',
      type: "ItemStateChangedEvent",
    }],
  },
];

/** One generated request, and whether it is well-formed HTTP. */
interface Raw {
  method: string;
  path: string;
  /** Header lines after the request line. */
  head: string[];
  /** The body as the handler would see it (what a signature covers). */
  body: Uint8Array;
  /** The bytes after the headers (framed). */
  payload: Uint8Array;
  /** Sign it with the port's real key (so it reaches the body parsers). */
  sign: boolean;
  /** The body is shorter than announced or its chunks are broken: end our side after it. */
  incomplete: boolean;
  wellFormed: boolean;
  shown: string;
}

const headerValue = fc.oneof(
  fc.constantFrom("", "0", "-1", "abc", "1".repeat(30), "application/json", crypto.randomUUID()),
  nastyString.map((s) => s.replace(/[\r\n]/g, "").replaceAll("\u0000", "")),
);

/** Requests for a port whose own routes are `own` and whose real bodies are `bodies`. */
const requestFor = (own: string[], bodies: unknown[]): fc.Arbitrary<Raw> =>
  fc.record({
    method: fc.constantFrom(
      "GET",
      "POST",
      "POST",
      "POST",
      "PUT",
      "DELETE",
      "PATCH",
      "OPTIONS",
      "HEAD",
    ),
    path: fc.oneof(
      { arbitrary: fc.constantFrom(...own), weight: 4 },
      fc.constantFrom(...PATHS),
      fc.tuple(
        fc.constantFrom(...PATHS),
        fc.constantFrom("/", "//", "/..%2f", "?x=%00", "/%ff", "x"),
      )
        .map(([p, s]) => p + s),
      fc.stringMatching(/^\/[A-Za-z0-9._~%\/-]{0,40}$/),
    ),
    contentType: fc.option(
      fc.constantFrom(
        "application/json",
        "application/json",
        "application/json",
        "application/json; charset=utf-8",
        "text/plain",
        "application/json; charset=utf-16",
        "multipart/form-data; boundary=x",
      ),
    ),
    extra: fc.array(
      fc.tuple(
        fc.constantFrom(
          "X-Request-ID",
          "X-Timestamp",
          "X-Nonce",
          "X-HMAC-SHA256",
          "X-Validated-Channel",
          "X-Validated-Sender",
          "X-Config-Hash",
          "X-Forwarded-For",
          "Expect",
        ),
        headerValue,
      ),
      { maxLength: 5 },
    ),
    body: fc.oneof(
      fc.constant(new Uint8Array()),
      {
        arbitrary: fc.constantFrom(...bodies).map((b) => enc.encode(JSON.stringify(b))),
        weight: 3,
      },
      {
        arbitrary: fc.constantFrom(...bodies).chain((b) => mutateJson(b))
          .map((b) => enc.encode(JSON.stringify(b))),
        weight: 3,
      },
      fc.tuple(fc.constantFrom(...bodies), nastyString).map(([b, s]) =>
        enc.encode(JSON.stringify(b).replace(/"hi"|"ON"|"owner"/, JSON.stringify(s)))
      ),
      fc.json().map((j) => enc.encode(j)),
      hostileBytes,
      fc.nat({ max: 200_000 }).map((n) => enc.encode(`{"x":"${"a".repeat(n)}"}`)),
    ),
    framing: fc.constantFrom("length", "length", "truncated", "chunked", "bad-chunks", "none"),
    sign: fc.boolean(),
  }).map(({ method, path, contentType, extra, body, framing, sign }) => {
    const head = ["Host: 127.0.0.1", "Connection: close"];
    if (contentType !== null) head.push(`Content-Type: ${contentType}`);
    for (const [k, v] of extra) head.push(`${k}: ${v}`);
    let payload = body;
    let wellFormed = true;
    switch (framing) {
      case "length":
        head.push(`Content-Length: ${body.length}`);
        break;
      case "truncated":
        head.push(`Content-Length: ${body.length + 1 + (body.length % 97)}`);
        break;
      case "chunked": {
        head.push("Transfer-Encoding: chunked");
        const parts: Uint8Array[] = [];
        for (let i = 0; i < body.length; i += 1000) {
          const c = body.subarray(i, i + 1000);
          parts.push(enc.encode(`${c.length.toString(16)}\r\n`), c, enc.encode("\r\n"));
        }
        parts.push(enc.encode("0\r\n\r\n"));
        payload = concat(parts);
        break;
      }
      case "bad-chunks":
        head.push("Transfer-Encoding: chunked");
        payload = concat([enc.encode("zz\r\n"), body]);
        wellFormed = false;
        break;
      case "none":
        break;
    }
    return {
      method,
      path,
      head,
      body,
      payload,
      sign,
      incomplete: framing === "truncated" || framing === "bad-chunks",
      wellFormed,
      shown: `${method} ${path} | ${head.join(" | ")} [${framing}${sign ? ", signed" : ""}, ` +
        `${body.length} body bytes]`,
    };
  });

/** The request's bytes, signed with `key` for `direction` when it asks to be. */
async function bytesOf(
  req: Raw,
  key: CryptoKey | undefined,
  direction: Direction,
): Promise<Uint8Array> {
  const head = [`${req.method} ${req.path} HTTP/1.1`];
  for (const h of req.head) {
    // a signed request carries only the real signing headers
    if (key && req.sign && /^x-(timestamp|nonce|hmac-sha256):/i.test(h)) continue;
    head.push(h);
  }
  if (key && req.sign) {
    const signed = await signedHeaders({
      key,
      direction,
      method: req.method,
      path: req.path,
      body: req.body,
    });
    for (const [k, v] of Object.entries(signed)) head.push(`${k}: ${v}`);
  }
  return concat([enc.encode(head.join("\r\n") + "\r\n\r\n"), req.payload]);
}

function concat(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

/**
 * Sends `raw` and reads the whole answer (the request asks the server to
 * close). `halfClose` ends our side after sending, so a truncated body meets
 * its end of stream; a complete request keeps it open (the HTTP server treats
 * a half-close as the client leaving and drops a response still being made).
 */
async function exchange(
  port: number,
  raw: Uint8Array,
  halfClose: boolean,
  timeoutMs: number,
): Promise<string> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  const timer = setTimeout(() => conn.close(), timeoutMs);
  try {
    try {
      await writeAll(conn, raw);
      if (halfClose) await conn.closeWrite();
    } catch {
      // the server may answer and close before reading it all (413, 400)
    }
    const chunks: Uint8Array[] = [];
    const buf = new Uint8Array(65536);
    for (;;) {
      let n: number | null;
      try {
        n = await conn.read(buf);
      } catch {
        break; // reset after the answer, or our timer
      }
      if (n === null) break;
      chunks.push(buf.slice(0, n));
    }
    return dec.decode(concat(chunks));
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed by the timer */ }
  }
}

/** How often each status was seen (printed: shows the fuzz reached the handlers). */
const statuses = new Map<string, number>();

function checkAnswer(text: string, req: Raw, port: number): void {
  const where = `port ${port}: ${req.shown}`;
  const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
  if (!m) {
    // only a request that is not HTTP may be dropped without an answer
    assert.ok(!req.wellFormed, `no answer to ${where}:\n${text}`);
    return;
  }
  const status = Number(m[1]);
  const k = `${req.sign ? "signed " : ""}${status}`;
  statuses.set(k, (statuses.get(k) ?? 0) + 1);
  assert.ok(status < 500, `${status} for ${where}:\n${text.slice(0, 400)}`);
  if (status < 400) return;
  const split = text.indexOf("\r\n\r\n");
  const headers = text.slice(0, split).toLowerCase();
  const body = text.slice(split + 4);
  if (req.method === "HEAD") return; // no body by definition
  if (!headers.includes("application/json")) {
    // refused by the HTTP layer before any handler ran (bad framing)
    assert.ok(!req.wellFormed || status === 400, `non-JSON ${status} for ${where}`);
    return;
  }
  const json = JSON.parse(body.includes("\r\n0\r\n") ? unchunk(body) : body);
  assert.equal(json.status, "error", `${where}: ${body}`);
  assert.equal(typeof json.error?.code, "string", `${where}: ${body}`);
  assert.equal(typeof json.error?.message, "string", `${where}: ${body}`);
}

function unchunk(body: string): string {
  let out = "";
  let rest = body;
  for (;;) {
    const nl = rest.indexOf("\r\n");
    const size = parseInt(rest.slice(0, nl), 16);
    if (!size) return out;
    out += rest.slice(nl + 2, nl + 2 + size);
    rest = rest.slice(nl + 2 + size + 2);
  }
}

Deno.test({
  name: "fuzz: every port of the running stack, any bytes",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const varDir = await Deno.makeTempDir({ prefix: "joi-fuzz-ports-" });
    const { base, child, lines, pump, errs, until } = startLocalStack(varDir);
    let exited = false;
    child.status.then(() => exited = true);
    try {
      await until(
        "the stack to be up",
        () => exited || lines.some((l) => l.startsWith("[main] joi is up")),
        90_000,
      );
      assert.equal(exited, false, `the stack did not start:\n${lines.join("\n")}`);
      const openhab = PATHS.filter((p) => p.startsWith("/api/v1/openhab/"));
      const ports: [string, number, Direction, fc.Arbitrary<Raw>][] = [
        [
          "joi 8443",
          base,
          "mesh_to_joi",
          requestFor(PATHS.slice(0, 4), [BODIES[0]]),
        ],
        ["mesh 8444", base + 1, "joi_to_mesh", requestFor(PATHS.slice(4, 6), [BODIES[1]])],
        ["joi 8445", base + 2, "openhab_to_joi", requestFor(openhab, BODIES.slice(2))],
      ];
      const n = runs(60);
      for (const [name, port, direction, request] of ports) {
        // the local stack signs mesh <-> joi; openHAB's port is signed only when its key exists
        const key = await loadOptionalKey(`${varDir}/secrets`, `${direction}.key`);
        for (const req of fc.sample(request, n)) {
          const bytes = await bytesOf(req, key, direction);
          const text = await exchange(port, bytes, req.incomplete, 15_000);
          checkAnswer(text, req, port);
        }
        report(`endpoint ${name}`, n);
        console.log(`  statuses: ${JSON.stringify(Object.fromEntries(statuses))}`);
        statuses.clear();
      }
      for (const [name, port] of ports) {
        const r = await fetch(`http://127.0.0.1:${port}/health`, {
          signal: AbortSignal.timeout(5000),
        });
        assert.equal(r.status, 200, `${name} no longer healthy`);
        await r.body?.cancel();
      }
      assert.equal(exited, false, "the stack died");
      assert.ok(
        !lines.some((l) => /Uncaught|panicked/.test(l)),
        lines.filter((l) => /Uncaught|panicked/.test(l)).join("\n"),
      );
    } finally {
      try {
        child.kill("SIGTERM");
      } catch { /* gone */ }
      await child.status;
      await pump;
      await errs;
      await child.stdin.close().catch(() => {});
      await Deno.remove(varDir, { recursive: true });
    }
  },
});

Deno.test({
  name: "fuzz: the knowledge socket, any bytes",
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const socketPath = socketSlot(13);
    const retriever: Retriever = {
      retrieve: () => Promise.resolve({ status: "ok", truncated: false, results: [] }),
    };
    const server = await serveKnowledge({
      socketPath,
      retriever: () => retriever,
      logger: createLogger("knowledge", { quiet: true }),
    });
    const valid = '{"id":7,"channel":"family_group","type":"search","query":{"q":"boiler"}}';
    const line = fc.oneof(
      mutated(valid),
      nastyString,
      fc.json(),
      fc.nat({ max: 40_000 }).map((n) => "x".repeat(n)),
      hostileBytes.map((b) => dec.decode(b)),
    ).map((l) => l.replaceAll("\n", " "));
    try {
      const n = runs(80);
      for (const lines of fc.sample(fc.array(line, { minLength: 1, maxLength: 3 }), n)) {
        const conn = await Deno.connect({ transport: "unix", path: socketPath });
        const timer = setTimeout(() => conn.close(), 10_000);
        try {
          // the fuzzed lines, then a valid request: it must still be answered
          await writeAll(conn, enc.encode([...lines, valid].join("\n") + "\n"));
          let text = "";
          const buf = new Uint8Array(65536);
          while (!text.includes('"id":7')) {
            const got = await conn.read(buf).catch(() => null);
            if (got === null) break;
            text += dec.decode(buf.subarray(0, got));
          }
          for (const answer of text.split("\n").filter((l) => l !== "")) {
            const a = JSON.parse(answer);
            assert.ok(["ok", "error"].includes(a.outcome?.status), answer);
          }
          // a malformed or over-long line is refused and ends the connection (logged);
          // after well-formed lines the valid request is answered
          const refused = text.includes('"reason":"invalid_query"');
          assert.ok(refused || text.includes('"id":7'), `no answer after ${lines}`);
        } finally {
          clearTimeout(timer);
          try {
            conn.close();
          } catch { /* closed */ }
        }
      }
      // and the broker still serves a new connection
      const conn = await Deno.connect({ transport: "unix", path: socketPath });
      await writeAll(conn, enc.encode(valid + "\n"));
      const buf = new Uint8Array(4096);
      const got = await conn.read(buf);
      conn.close();
      assert.ok(got && dec.decode(buf.subarray(0, got)).includes('"id":7'), "broker stopped");
      report("knowledge socket", n);
    } finally {
      await server.close();
    }
  },
});
