/**
 * The two properties of joi-wire-v2, written against a wire module passed in
 * (so property_test.ts can run them on the real one and on mutants that drop
 * one field from a canonical string):
 *
 * - requests: among generated requests (method, path, signed headers, body,
 *   timestamp, nonce reuse, key, direction, source) and one post-signing
 *   mutation of any byte of the method, path, body, timestamp, nonce, MAC,
 *   list, or of a signed header (changed, re-cased value, added unsigned,
 *   removed, duplicated under another casing), exactly the exactly-signed,
 *   fresh, unseen requests from an allowed source reach the handler, and
 *   every refusal has the contract's status. A header *name* re-cased is
 *   the same header in HTTP and must still pass.
 * - answers: a SignedClient accepts exactly the answers that are the
 *   server's own, unaltered, to this very request, with the server clock
 *   within the tolerance: a changed status, body, timestamp or signed header
 *   (changed, re-cased, added, removed, duplicated), a MAC, an answer to an
 *   earlier request, one signed for the other direction under a shared key
 *   file, or from a server whose clock is off is refused.
 *
 * Both run in-process (`app.request` with a peer address) on real stores.
 *
 * @module
 */
import assert from "node:assert/strict";
import fc from "fast-check";
import { Hono } from "hono";
import type * as WireModule from "../../../../services/common/wire/mod.ts";

/** The wire module (or a mutant of it). */
export type Wire = typeof WireModule;

const NOW = 1_767_225_600_000;
const TOL = 300_000;
const enc = new TextEncoder();
const dec = new TextDecoder();

const nonceArb = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((b) => {
  b[6] = (b[6]! & 0x0f) | 0x40;
  b[8] = (b[8]! & 0x3f) | 0x80;
  const h = Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
});

/** Header values a peer may sign: printable ASCII, no comma, no edge spaces, a letter in it. */
const valueArb = fc.stringMatching(/^[a-z][A-Za-z0-9_./:;=+-]{0,30}$/);

const HEADER_POOL = [
  "x-validated-channel",
  "x-validated-sender",
  "x-config-hash",
  "x-signal-sender-hash",
];

const REQUEST_MUTATIONS = [
  "method",
  "path_byte",
  "query_added",
  "body_byte",
  "timestamp",
  "nonce",
  "signature",
  "header_value_byte",
  "header_value_recased",
  "header_added_unsigned",
  "header_removed",
  "header_removed_with_list",
  "header_duplicated",
  "header_duplicated_recased",
  "list_name_dropped",
  "content_type",
] as const;
type RequestMutation = typeof REQUEST_MUTATIONS[number] | "none" | "header_name_recased";

const requestArb = fc.record({
  method: fc.constantFrom("GET", "POST", "PUT", "DELETE"),
  path: fc.tuple(
    fc.stringMatching(/^[a-z0-9_-]{1,12}$/),
    fc.option(fc.stringMatching(/^[a-z]{1,4}=[0-9]{1,3}$/), { nil: undefined }),
  ).map(([p, q]) => `/api/${p}${q ? `?${q}` : ""}`),
  body: fc.jsonValue({ maxDepth: 3 }).map((v) => JSON.stringify(v) ?? "null"),
  headers: fc.uniqueArray(fc.constantFrom(...HEADER_POOL), { maxLength: 4 }).chain((names) =>
    fc.tuple(...names.map((n) => valueArb.map((v) => [n, v] as [string, string])))
  ),
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
    { arbitrary: fc.constant<WireModule.Direction>("mesh_to_joi"), weight: 8 },
    { arbitrary: fc.constant<WireModule.Direction>("joi_to_mesh"), weight: 1 },
  ),
  mutation: fc.oneof(
    { arbitrary: fc.constant<RequestMutation>("none"), weight: 6 },
    { arbitrary: fc.constant<RequestMutation>("header_name_recased"), weight: 1 },
    { arbitrary: fc.constantFrom<RequestMutation>(...REQUEST_MUTATIONS), weight: 6 },
  ),
  at: fc.nat(),
  source: fc.oneof(
    { arbitrary: fc.constantFrom("127.0.0.1", "10.42.0.1", "::ffff:10.42.0.1"), weight: 8 },
    { arbitrary: fc.constantFrom("10.42.0.99", "::1", "192.168.1.10"), weight: 1 },
  ),
});
type GenRequest = typeof requestArb extends fc.Arbitrary<infer T> ? T : never;

/** Changes one character of `s` at a position derived from `at` (never to itself). */
function changeByte(s: string, at: number, from = 0): string {
  const i = from + (at % (s.length - from));
  const c = s.charCodeAt(i);
  const alphabet = "abcdefghijklmnopqrstuvwxyz0123456789";
  let r = alphabet[(at >> 3) % alphabet.length]!;
  if (r.charCodeAt(0) === c) r = alphabet[((at >> 3) + 1) % alphabet.length]!;
  return s.slice(0, i) + r + s.slice(i + 1);
}

/** `s` with one letter's case flipped (the value must hold a letter). */
function recase(s: string, at: number): string {
  const letters = [...s].map((ch, i) => [ch, i] as const).filter(([ch]) => /[A-Za-z]/.test(ch));
  if (letters.length === 0) return changeByte(s, at); // nothing to re-case: change a byte
  const [ch, i] = letters[at % letters.length]!;
  const flipped = ch === ch.toLowerCase() ? ch.toUpperCase() : ch.toLowerCase();
  return s.slice(0, i) + flipped + s.slice(i + 1);
}

/** Tally of the outcomes, so a run can show the property was not vacuous. */
export type Tally = Record<string, number>;

/**
 * Runs the request property `runs` times; throws (fast-check's report) when
 * a request is answered otherwise than the model says.
 */
export async function requestProperty(wire: Wire, runs: number, seed?: number): Promise<Tally> {
  const keys = {
    right: await wire.importWireKey(crypto.getRandomValues(new Uint8Array(32)), "mesh_to_joi"),
    other_direction: await wire.importWireKey(
      crypto.getRandomValues(new Uint8Array(32)),
      "joi_to_mesh",
    ),
    random: await wire.importWireKey(crypto.getRandomValues(new Uint8Array(32)), "mesh_to_joi"),
  };
  const tally: Tally = {};
  await fc.assert(
    fc.asyncProperty(fc.array(requestArb, { minLength: 1, maxLength: 12 }), async (reqs) => {
      const store = wire.openNonceStore(":memory:", 3 * TOL, { now: () => NOW });
      const handled: { body: Uint8Array; json: unknown }[] = [];
      const app = new Hono();
      app.use(
        "/api/*",
        wire.signedRoutes({
          key: keys.right,
          direction: "mesh_to_joi",
          nonceStore: store,
          allowedSources: ["127.0.0.1", "10.42.0.1"],
          toleranceMs: TOL,
          maxBodyBytes: 1 << 20,
          now: () => NOW,
        }),
      );
      app.all("/api/*", (c) => {
        handled.push({ body: wire.rawBody(c), json: wire.jsonBody(c) });
        return wire.ok(c, {});
      });
      const used: string[] = [];
      const seen = new Set<string>(); // model: nonces of correctly signed requests
      let passes = 0;
      for (const g of reqs) {
        const { status, expected, bodyText, mutation } = await exchange(
          wire,
          app,
          g,
          used,
          seen,
          keys,
        );
        tally[`${status}`] = (tally[`${status}`] ?? 0) + 1;
        tally[mutation] = (tally[mutation] ?? 0) + 1;
        assert.equal(status, expected, `${mutation}: ${JSON.stringify(g)}`);
        if (expected === 200) {
          passes++;
          const last = handled.at(-1)!;
          assert.equal(dec.decode(last.body), bodyText);
        }
      }
      assert.equal(handled.length, passes, "only expected passes reach the handler");
      store.close();
    }),
    { numRuns: runs, ...(seed === undefined ? {} : { seed }) },
  );
  return tally;
}

async function exchange(
  wire: Wire,
  app: Hono,
  g: GenRequest,
  used: string[],
  seen: Set<string>,
  keys: Record<GenRequest["key"], WireModule.WireKey>,
): Promise<{ status: number; expected: number; bodyText: string; mutation: string }> {
  const hasBody = g.method === "POST" || g.method === "PUT";
  const bodyText = hasBody ? g.body : "";
  let body = enc.encode(bodyText);
  const nonce = g.reuse !== undefined && used.length > 0 ? used[g.reuse % used.length]! : g.fresh;
  used.push(nonce);
  const timestamp = NOW + g.offset;
  let method: string = g.method;
  let path = g.path;
  const toSign: Record<string, string> = Object.fromEntries(g.headers);
  toSign["X-Request-ID"] = "8a4e1b0c-6d2f-4e3a-9b1c-0d2e3f4a5b6c";
  if (hasBody) toSign["Content-Type"] = "application/json";
  const signed = wire.signedHeaders({
    key: keys[g.key].request,
    direction: g.signDirection,
    method,
    path,
    body,
    headers: toSign,
    timestamp,
    nonce,
  });
  const headers = new Headers(signed.headers);
  const signedNames = headers.get("x-signed-headers")!.split(";");
  let mutation: RequestMutation = g.mutation;
  // fall back to a mutation that applies to this request
  if (mutation === "body_byte" && body.length === 0) mutation = "timestamp";
  if (mutation === "content_type" && !hasBody) mutation = "nonce";
  const extra = g.headers.map(([n]) => n);
  const pick = extra.length > 0 ? extra[g.at % extra.length]! : undefined;
  if (
    pick === undefined && [
      "header_value_byte",
      "header_value_recased",
      "header_removed",
      "header_removed_with_list",
      "header_duplicated",
      "header_duplicated_recased",
      "list_name_dropped",
      "header_name_recased",
    ].includes(mutation)
  ) mutation = mutation === "header_name_recased" ? "none" : "header_added_unsigned";
  switch (mutation) {
    case "method":
      method = ({ GET: "DELETE", DELETE: "GET", POST: "PUT", PUT: "POST" } as const)[g.method];
      break;
    case "path_byte":
      path = changeByte(path, g.at, 5); // never the leading "/api/"
      break;
    case "query_added":
      path += path.includes("?") ? "&x=1" : "?x=1";
      break;
    case "body_byte":
      body = body.slice();
      body[g.at % body.length]! ^= 1 << (g.at % 8);
      break;
    case "timestamp":
      headers.set("X-Timestamp", String(timestamp + 1 + (g.at % 1000)));
      break;
    case "nonce": {
      const last = nonce.at(-1) === "0" ? "1" : "0";
      headers.set("X-Nonce", nonce.slice(0, -1) + last);
      break;
    }
    case "signature": {
      const sig = headers.get("X-HMAC-SHA256")!;
      const i = g.at % sig.length;
      const flipped = ((parseInt(sig[i]!, 16) + 1 + (g.at % 15)) % 16).toString(16);
      headers.set("X-HMAC-SHA256", sig.slice(0, i) + flipped + sig.slice(i + 1));
      break;
    }
    case "header_value_byte":
      headers.set(pick!, changeByte(headers.get(pick!)!, g.at));
      break;
    case "header_value_recased":
      headers.set(pick!, recase(headers.get(pick!)!, g.at));
      break;
    case "header_added_unsigned": {
      const absent = HEADER_POOL.find((n) => !extra.includes(n)) ?? "x-extra-authority";
      headers.set(absent, "owner_private_dm");
      break;
    }
    case "header_removed":
      headers.delete(pick!);
      break;
    case "header_removed_with_list":
      headers.delete(pick!);
      headers.set("X-Signed-Headers", signedNames.filter((n) => n !== pick).join(";"));
      break;
    case "header_duplicated":
      headers.append(pick!, headers.get(pick!)!);
      break;
    case "header_duplicated_recased":
      headers.append(pick!.toUpperCase(), "owner_private_dm");
      break;
    case "list_name_dropped":
      headers.set("X-Signed-Headers", signedNames.filter((n) => n !== pick).join(";"));
      break;
    case "content_type":
      headers.set("Content-Type", "application/json; charset=utf-8");
      break;
    case "header_name_recased": {
      // the same header in HTTP: names are case-insensitive
      const value = headers.get(pick!)!;
      headers.delete(pick!);
      headers.set(pick!.toUpperCase(), value);
      break;
    }
  }

  // The model.
  let expected: number;
  const allowed = ["127.0.0.1", "10.42.0.1", "::ffff:10.42.0.1"].includes(g.source);
  const intact = mutation === "none" || mutation === "header_name_recased";
  const signedRight = g.key === "right" && g.signDirection === "mesh_to_joi" && intact;
  if (!allowed) expected = 403;
  else if (!signedRight) expected = 401;
  else if (seen.has(nonce)) expected = 409;
  else {
    seen.add(nonce);
    expected = Math.abs(g.offset) > TOL ? 401 : 200;
  }

  const res = await app.request(
    `http://127.0.0.1${path}`,
    { method, headers, body: body.length > 0 ? body : null },
    { remoteAddr: { hostname: g.source, port: 40000, transport: "tcp" } },
  );
  await res.body?.cancel();
  return { status: res.status, expected, bodyText, mutation };
}

const ANSWER_MUTATIONS = [
  "status",
  "body_byte",
  "timestamp",
  "mac",
  "header_value_byte",
  "header_value_recased",
  "header_added",
  "header_removed",
  "header_removed_with_list",
  "header_duplicated",
  "header_duplicated_recased",
  "earlier_answer",
  "other_direction_shared_key",
  "server_clock_off",
] as const;
type AnswerMutation = typeof ANSWER_MUTATIONS[number] | "none" | "header_name_recased";

const answerArb = fc.record({
  route: fc.constantFrom("ok", "created", "refused", "limited", "custom"),
  data: fc.jsonValue({ maxDepth: 2 }),
  mutation: fc.oneof(
    { arbitrary: fc.constant<AnswerMutation>("none"), weight: 5 },
    { arbitrary: fc.constant<AnswerMutation>("header_name_recased"), weight: 1 },
    { arbitrary: fc.constantFrom<AnswerMutation>(...ANSWER_MUTATIONS), weight: 6 },
  ),
  at: fc.nat(),
});

/**
 * Runs the answer property `runs` times: a SignedClient talks to a signed
 * server through a man in the middle applying one mutation to the answer.
 */
export async function answerProperty(wire: Wire, runs: number, seed?: number): Promise<Tally> {
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const key = await wire.importWireKey(raw, "mesh_to_joi");
  const shared = await wire.importWireKey(raw, "joi_to_mesh"); // one key file for two directions
  const tally: Tally = {};
  const server = (k: WireModule.WireKey, direction: WireModule.Direction, now: () => number) => {
    const app = new Hono();
    app.use(
      "/api/*",
      wire.signedRoutes({
        key: k,
        direction,
        nonceStore: wire.openNonceStore(":memory:", 3 * TOL, { now }),
        allowedSources: ["127.0.0.1"],
        toleranceMs: TOL,
        maxBodyBytes: 1 << 20,
        now,
      }),
    );
    app.post("/api/ok", (c) => wire.ok(c, wire.jsonBody(c)));
    app.post("/api/created", (c) => wire.ok(c, { made: wire.jsonBody(c) }, 201));
    app.post("/api/refused", (c) => wire.fail(c, "forbidden", "no"));
    app.post("/api/limited", (c) => wire.fail(c, "rate_limited", "wait", { retryAfter: 3 }));
    app.post("/api/custom", (c) => {
      c.header("X-Extra", "yes");
      return c.json({
        status: "ok",
        request_id: crypto.randomUUID(),
        timestamp: new Date(NOW).toISOString(),
        data: 1,
      }, 202);
    });
    return app;
  };
  const real = server(key, "mesh_to_joi", () => NOW);
  const other = server(shared, "joi_to_mesh", () => NOW);
  const skewed = server(key, "mesh_to_joi", () => NOW + TOL + 1000);
  const env = { remoteAddr: { hostname: "127.0.0.1", port: 40000, transport: "tcp" } };
  await fc.assert(
    fc.asyncProperty(fc.array(answerArb, { minLength: 1, maxLength: 8 }), async (gens) => {
      let earlier: { status: number; headers: Headers; body: Uint8Array } | undefined;
      for (const g of gens) {
        let mutation: AnswerMutation = g.mutation;
        if (mutation === "earlier_answer" && earlier === undefined) mutation = "mac";
        const fetchThrough: typeof fetch = async (input, init) => {
          const url = String(input);
          const app = mutation === "other_direction_shared_key"
            ? other
            : mutation === "server_clock_off"
            ? skewed
            : real;
          const res = await app.request(url, init, env);
          const answer = {
            status: res.status,
            headers: new Headers(res.headers),
            body: new Uint8Array(await res.arrayBuffer()),
          };
          const genuine = { ...answer, headers: new Headers(answer.headers) };
          mutateAnswer(answer, mutation, g.at, earlier);
          earlier = genuine;
          return new Response(answer.body, { status: answer.status, headers: answer.headers });
        };
        const client = new wire.SignedClient({
          baseUrl: "http://127.0.0.1:1",
          key,
          direction: "mesh_to_joi",
          maxRetries: 0,
          toleranceMs: TOL,
          now: () => NOW,
          fetch: fetchThrough,
        });
        const intact = mutation === "none" || mutation === "header_name_recased";
        let outcome: string;
        try {
          const r = await client.request("POST", `/api/${g.route}`, g.data);
          outcome = `accepted ${r.status}`;
          const expected =
            { ok: 200, created: 201, refused: 403, limited: 429, custom: 202 }[g.route];
          assert.equal(r.status, expected);
        } catch (e) {
          if (!(e instanceof wire.WireClientError)) throw e;
          outcome = e.kind;
        }
        const label = `${intact ? "intact" : mutation} ${
          outcome.replace(/^accepted \d+$/, "accepted")
        }`;
        tally[label] = (tally[label] ?? 0) + 1;
        if (intact) assert.match(outcome, /^accepted/, `intact answer refused (${mutation})`);
        else assert.equal(outcome, "unverified", `${mutation} was accepted: ${JSON.stringify(g)}`);
      }
    }),
    { numRuns: runs, ...(seed === undefined ? {} : { seed }) },
  );
  return tally;
}

function mutateAnswer(
  a: { status: number; headers: Headers; body: Uint8Array },
  mutation: AnswerMutation,
  at: number,
  earlier: { status: number; headers: Headers; body: Uint8Array } | undefined,
): void {
  const names = (a.headers.get("x-signed-headers") ?? "").split(";");
  const pick = names[at % names.length]!;
  switch (mutation) {
    case "status":
      a.status = a.status === 200 ? 201 : 200;
      break;
    case "body_byte":
      a.body = a.body.slice();
      a.body[at % a.body.length]! ^= 1 << (at % 8);
      break;
    case "timestamp":
      a.headers.set("x-timestamp", String(Number(a.headers.get("x-timestamp")) + 1 + (at % 999)));
      break;
    case "mac": {
      const mac = a.headers.get("x-hmac-sha256")!;
      const i = at % mac.length;
      a.headers.set(
        "x-hmac-sha256",
        mac.slice(0, i) + (mac[i] === "0" ? "1" : "0") + mac.slice(i + 1),
      );
      break;
    }
    case "header_value_byte":
      a.headers.set(pick, changeByte(a.headers.get(pick)!, at));
      break;
    case "header_value_recased":
      a.headers.set(pick, recase(a.headers.get(pick)!, at));
      break;
    case "header_added":
      a.headers.set(["retry-after", "x-validated-channel", "x-config-hash"][at % 3]!, "60");
      break;
    case "header_removed":
      a.headers.delete(pick);
      break;
    case "header_removed_with_list":
      a.headers.delete(pick);
      a.headers.set("x-signed-headers", names.filter((n) => n !== pick).join(";"));
      break;
    case "header_duplicated":
      a.headers.append(pick, a.headers.get(pick)!);
      break;
    case "header_duplicated_recased":
      a.headers.append(pick.toUpperCase(), "other");
      break;
    case "earlier_answer":
      a.status = earlier!.status;
      a.headers = new Headers(earlier!.headers);
      a.body = earlier!.body;
      break;
    case "header_name_recased": {
      const value = a.headers.get(pick)!;
      a.headers.delete(pick);
      a.headers.set(pick.toUpperCase(), value);
      break;
    }
    case "none":
    case "other_direction_shared_key":
    case "server_clock_off":
      break;
  }
}
