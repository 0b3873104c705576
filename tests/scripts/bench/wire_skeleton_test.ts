/**
 * The wire bench's ceiling row is only a ceiling if the unsigned skeleton
 * carries what a signed exchange carries: the same header fields, with values
 * of the same size, both ways, and the same answer body. Checked over real
 * servers on loopback, as the bench runs them.
 */
import assert from "node:assert/strict";
import {
  importWireKey,
  JsonClient,
  openNonceStore,
  serveGuarded,
  SignedClient,
} from "../../../services/common/wire/mod.ts";
import { HEADERS, packedFetch, PAYLOAD, skeletonHeaders } from "../../../scripts/bench/wire.ts";
import {
  BENCH_LIMITS,
  PACKED_HEADER,
  packedApp,
  signedApp,
  skeletonApp,
} from "../../../scripts/bench/wire_server.ts";

/** `[name, value length]` of each header, sorted: what the fields cost on the wire. */
function shape(headers: Headers | Record<string, string>): [string, number][] {
  const out: [string, number][] = [];
  const entries = headers instanceof Headers
    ? [...headers.entries()]
    : Object.entries(headers).map(([n, v]) => [n.toLowerCase(), v] as const);
  for (const [n, v] of entries) out.push([n, v.length]);
  return out.sort((a, b) => (a[0] < b[0] ? -1 : 1));
}

/** A fetch (by default the real one) that records the request's headers and the answer's. */
function recording(
  inner: typeof fetch = fetch,
): { fetch: typeof fetch; sent: Record<string, string>[]; got: Headers[] } {
  const sent: Record<string, string>[] = [];
  const got: Headers[] = [];
  const f = (async (input: URL | RequestInfo, init?: RequestInit) => {
    const r = await inner(input, init);
    sent.push({ ...(init?.headers as Record<string, string>) }); // as sent, once inner added its own
    got.push(r.headers);
    return r;
  }) as typeof fetch;
  return { fetch: f, sent, got };
}

Deno.test("wire bench: the skeletons send and answer the header fields of a signed exchange", async () => {
  const key = await importWireKey(crypto.getRandomValues(new Uint8Array(32)), "mesh_to_joi");
  const store = openNonceStore(":memory:", 900_000);
  const host = { hostname: "127.0.0.1", port: 0, ...BENCH_LIMITS };
  const signedServer = serveGuarded(signedApp(key, store), host);
  const skeletonServer = serveGuarded(skeletonApp(), host);
  const packedServer = serveGuarded(packedApp(key), host);
  const base = (s: { addr: Deno.Addr }) => `http://127.0.0.1:${(s.addr as Deno.NetAddr).port}`;
  try {
    const s = recording();
    const signed = new SignedClient({
      baseUrl: base(signedServer),
      key,
      direction: "mesh_to_joi",
      maxRetries: 0,
      fetch: s.fetch,
    });
    const k = recording();
    const skeleton = new JsonClient({
      baseUrl: base(skeletonServer),
      maxRetries: 0,
      fetch: k.fetch,
    });
    const a = await signed.request("POST", "/api/in", PAYLOAD, HEADERS);
    const b = await skeleton.request("POST", "/api/in", PAYLOAD, skeletonHeaders());
    assert.equal(a.status, 200);
    assert.equal(b.status, 200);
    assert.deepEqual(shape(k.sent[0]!), shape(s.sent[0]!), "request header fields");
    assert.deepEqual(shape(k.got[0]!), shape(s.got[0]!), "answer header fields");
    assert.deepEqual(
      b.envelope.status === "ok" && b.envelope.data,
      a.envelope.status === "ok" && a.envelope.data,
    );
    // the skeleton computes nothing: its answers carry no valid MAC
    assert.equal(k.got[0]!.get("x-hmac-sha256"), "0".repeat(64));

    // packed: the same fields but the protocol's own, which travel in one header each way
    const p = recording(packedFetch(key));
    const packed = new JsonClient({ baseUrl: base(packedServer), maxRetries: 0, fetch: p.fetch });
    assert.equal((await packed.request("POST", "/api/in", PAYLOAD, HEADERS)).status, 200);
    const names = (h: Headers | Record<string, string>) => shape(h).map(([n]) => n);
    const protocol = ["x-hmac-sha256", "x-nonce", "x-signed-headers", "x-timestamp"];
    const without = (n: string[]) => n.filter((x) => !protocol.includes(x));
    assert.deepEqual(names(p.sent[0]!), [...without(names(s.sent[0]!)), PACKED_HEADER].sort());
    assert.deepEqual(names(p.got[0]!), [...without(names(s.got[0]!)), PACKED_HEADER].sort());
    assert.match(
      p.got[0]!.get(PACKED_HEADER)!,
      /^v3 t=\d+ h=content-type;x-request-id mac=[0-9a-f]{64}$/,
    );
    assert.notEqual(
      p.got[0]!.get(PACKED_HEADER)!.slice(-64),
      "0".repeat(64),
      "its MAC is computed",
    );
  } finally {
    await Promise.all([signedServer, skeletonServer, packedServer].map((x) => x.shutdown()));
    store.close();
  }
});
