/**
 * Property: among thousands of generated requests (random method, path,
 * body, timestamp offset, nonce reuse, key, direction, source and
 * post-signing mutation), exactly the exactly-signed, fresh (timestamp within
 * tolerance), unseen requests from an allowed source reach the handler, and
 * every refusal carries the contract's status. The verifier runs in-process
 * (`app.request`) on a real SQLite nonce store per run.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Hono } from "hono";
import {
  type Direction,
  jsonBody,
  ok,
  openNonceStore,
  rawBody,
  signedHeaders,
  signedRoutes,
} from "../../../../services/common/wire/mod.ts";
import { importHmacKey } from "../../../../services/common/wire/sign.ts";

const NOW = 1_767_225_600_000;
const TOL = 300_000;
const ALLOWED = ["127.0.0.1", "10.42.0.1"];
const enc = new TextEncoder();

const MUTATIONS = ["flip_body", "path", "method", "timestamp", "nonce", "signature"] as const;
type Mutation = typeof MUTATIONS[number] | "none";

const nonceArb = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => {
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
});

const requestArb = fc.record({
  method: fc.constantFrom("GET", "POST", "PUT", "DELETE"),
  path: fc.tuple(
    fc.stringMatching(/^[a-z0-9_-]{1,12}$/),
    fc.option(fc.stringMatching(/^[a-z]{1,4}=[0-9]{1,3}$/), { nil: undefined }),
  ).map(([p, q]) => `/api/${p}${q ? `?${q}` : ""}`),
  body: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? "null"),
  offset: fc.oneof(
    { arbitrary: fc.integer({ min: -TOL, max: TOL }), weight: 4 },
    { arbitrary: fc.integer({ min: -3 * TOL, max: 3 * TOL }), weight: 2 },
    { arbitrary: fc.constantFrom(-TOL - 1, TOL + 1, -TOL, TOL), weight: 1 },
  ),
  fresh: nonceArb,
  reuse: fc.option(fc.nat(), { freq: 4, nil: undefined }),
  key: fc.oneof(
    { arbitrary: fc.constant("right" as const), weight: 6 },
    { arbitrary: fc.constantFrom("other_direction" as const, "random" as const), weight: 1 },
  ),
  signDirection: fc.oneof(
    { arbitrary: fc.constant<Direction>("mesh_to_joi"), weight: 8 },
    { arbitrary: fc.constant<Direction>("joi_to_mesh"), weight: 1 },
  ),
  mutation: fc.oneof(
    { arbitrary: fc.constant<Mutation>("none"), weight: 6 },
    { arbitrary: fc.constantFrom<Mutation>(...MUTATIONS), weight: 3 },
  ),
  mutationAt: fc.nat(),
  source: fc.oneof(
    { arbitrary: fc.constantFrom("127.0.0.1", "10.42.0.1", "::ffff:10.42.0.1"), weight: 8 },
    { arbitrary: fc.constantFrom("10.42.0.99", "::1", "192.168.1.10"), weight: 1 },
  ),
});

type Gen = typeof requestArb extends fc.Arbitrary<infer T> ? T : never;

const tally = { 200: 0, 401: 0, 403: 0, 409: 0 } as Record<number, number>;

Deno.test("property: exactly the exactly-signed, fresh, unseen requests from allowed sources pass", async () => {
  const dir = await Deno.makeTempDir({ prefix: "joi-wire-prop-" });
  const keys = {
    right: await importHmacKey(crypto.getRandomValues(new Uint8Array(32))),
    other_direction: await importHmacKey(crypto.getRandomValues(new Uint8Array(32))),
    random: await importHmacKey(crypto.getRandomValues(new Uint8Array(32))),
  };
  let run = 0;
  let total = 0;
  try {
    await fc.assert(
      fc.asyncProperty(fc.array(requestArb, { minLength: 1, maxLength: 16 }), async (reqs) => {
        const store = openNonceStore(`${dir}/run${run++}.db`, 3 * TOL, {
          synchronous: "NORMAL",
          now: () => NOW,
        });
        try {
          const handled: { body: Uint8Array; json: unknown }[] = [];
          const app = new Hono();
          app.use(
            "/api/*",
            signedRoutes({
              key: keys.right,
              direction: "mesh_to_joi",
              nonceStore: store,
              allowedSources: ALLOWED,
              toleranceMs: TOL,
              maxBodyBytes: 1 << 20,
              now: () => NOW,
            }),
          );
          app.all("/api/*", (c) => {
            handled.push({ body: rawBody(c), json: jsonBody(c) });
            return ok(c, {});
          });
          const used: string[] = [];
          const seen = new Set<string>(); // model: nonces of correctly signed requests
          let passes = 0;
          for (const g of reqs) {
            const { status, expected, bodyText } = await exchange(app, g, used, seen, keys);
            total++;
            tally[status] = (tally[status] ?? 0) + 1;
            assert.equal(status, expected, JSON.stringify(g));
            if (expected === 200) passes++;
            if (status === 200) {
              const last = handled.at(-1)!;
              assert.equal(new TextDecoder().decode(last.body), bodyText);
              assert.deepEqual(last.json, bodyText === "" ? undefined : JSON.parse(bodyText));
            }
          }
          assert.equal(handled.length, passes, "only expected passes reach the handler");
        } finally {
          store.close();
        }
      }),
      { numRuns: 500 },
    );
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
  // The property is not vacuous: every outcome happened, passes most of all.
  console.log(`property: ${total} requests, outcomes ${JSON.stringify(tally)}`);
  assert.ok(total >= 2000, `only ${total} requests generated`);
  for (const s of [200, 401, 403, 409]) assert.ok(tally[s]! > 50, `too few ${s}: ${tally[s]}`);
});

async function exchange(
  app: Hono,
  g: Gen,
  used: string[],
  seen: Set<string>,
  keys: Record<Gen["key"], CryptoKey>,
): Promise<{ status: number; expected: number; bodyText: string }> {
  const hasBody = g.method === "POST" || g.method === "PUT";
  const bodyText = hasBody ? g.body : "";
  let body = enc.encode(bodyText);
  const nonce = g.reuse !== undefined && used.length > 0 ? used[g.reuse % used.length] : g.fresh;
  used.push(nonce!);
  const timestamp = NOW + g.offset;
  let method = g.method;
  let path = g.path;
  const headers = new Headers(
    await signedHeaders({
      key: keys[g.key],
      direction: g.signDirection,
      method,
      path,
      body,
      timestamp,
      nonce,
    }),
  );
  let mutation = g.mutation;
  if (mutation === "flip_body" && body.length === 0) mutation = "timestamp";
  switch (mutation) {
    case "flip_body": {
      body = body.slice();
      body[g.mutationAt % body.length]! ^= 1 << (g.mutationAt % 8);
      break;
    }
    case "path":
      path = path.replace("/api/", "/api/x");
      break;
    case "method":
      method = ({ GET: "DELETE", DELETE: "GET", POST: "PUT", PUT: "POST" } as const)[g.method];
      break;
    case "timestamp":
      headers.set("X-Timestamp", String(timestamp + 1 + (g.mutationAt % 1000)));
      break;
    case "nonce": {
      const last = nonce!.at(-1) === "0" ? "1" : "0";
      headers.set("X-Nonce", nonce!.slice(0, -1) + last);
      break;
    }
    case "signature": {
      const sig = headers.get("X-HMAC-SHA256")!;
      const i = g.mutationAt % sig.length;
      const flipped = ((parseInt(sig[i]!, 16) + 1 + (g.mutationAt % 15)) % 16).toString(16);
      headers.set("X-HMAC-SHA256", sig.slice(0, i) + flipped + sig.slice(i + 1));
      break;
    }
  }
  if (body.length > 0) headers.set("Content-Type", "application/json");

  // The model.
  let expected: number;
  const allowed = ["127.0.0.1", "10.42.0.1", "::ffff:10.42.0.1"].includes(g.source);
  const signedRight = g.key === "right" && g.signDirection === "mesh_to_joi" && mutation === "none";
  if (!allowed) expected = 403;
  else if (!signedRight) expected = 401;
  else if (seen.has(nonce!)) expected = 409;
  else {
    seen.add(nonce!);
    expected = Math.abs(g.offset) > TOL ? 401 : 200;
  }

  const res = await app.request(
    `http://127.0.0.1${path}`,
    { method, headers, body: body.length > 0 ? body : null },
    { remoteAddr: { hostname: g.source, port: 40000, transport: "tcp" } },
  );
  await res.body?.cancel();
  return { status: res.status, expected, bodyText };
}
