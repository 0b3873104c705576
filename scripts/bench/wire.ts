/**
 * Wire protocol benchmark: requests/s and p50/p99 latency of a signed
 * endpoint (client signing + server verification + SQLite nonce store) next
 * to a bare Hono JSON endpoint, in the same run, over real HTTP on loopback
 * with concurrent clients and a fixed request count. The nonce store is
 * measured with `synchronous=FULL` (the default: an fsync per request) and
 * `NORMAL`.
 *
 * Run alone: `deno task bench wire`.
 *
 * @module
 */
import { Hono } from "hono";
import {
  importHmacKey,
  type NonceStore,
  ok,
  openNonceStore,
  SignedClient,
  signedHeaders,
  signedRoutes,
} from "../../services/common/wire/mod.ts";

const CONCURRENCY = 16;
const REQUESTS = 2000;
const WARMUP = 200;
const PAYLOAD = {
  transport: "signal",
  message_id: "m-0001",
  sender: { id: "owner", transport_id: "+15550000001" },
  conversation: { type: "direct", id: "owner" },
  priority: "normal",
  content: { type: "text", text: "x".repeat(400) },
};

interface Figures {
  name: string;
  rps: number;
  p50: number;
  p99: number;
}

async function drive(
  name: string,
  count: number,
  one: () => Promise<void>,
): Promise<Figures> {
  const latencies: number[] = [];
  let next = 0;
  const started = performance.now();
  const worker = async () => {
    while (next < count) {
      next++;
      const t = performance.now();
      await one();
      latencies.push(performance.now() - t);
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  const elapsed = (performance.now() - started) / 1000;
  latencies.sort((a, b) => a - b);
  const pct = (p: number) =>
    latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN;
  return { name, rps: count / elapsed, p50: pct(0.5), p99: pct(0.99) };
}

function checkOk(res: Response, what: string): Promise<unknown> {
  if (res.status !== 200) throw new Error(`${what}: HTTP ${res.status}`);
  return res.json();
}

/** Runs the benchmark and prints its figures. */
export async function bench(): Promise<void> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "joi-bench-wire-" });
  const key = await importHmacKey(crypto.getRandomValues(new Uint8Array(32)));
  const stores: NonceStore[] = [];
  const app = new Hono();
  app.post("/bare", async (c) => c.json({ status: "ok", data: { got: !!(await c.req.json()) } }));
  for (const sync of ["FULL", "NORMAL"] as const) {
    const store = openNonceStore(`${dir}/nonces-${sync}.db`, 900_000, { synchronous: sync });
    stores.push(store);
    app.use(
      `/signed-${sync}/*`,
      signedRoutes({
        key,
        direction: "mesh_to_joi",
        nonceStore: store,
        allowedSources: ["127.0.0.1"],
        toleranceMs: 300_000,
        maxBodyBytes: 65_536,
      }),
    );
    app.post(`/signed-${sync}/in`, (c) => ok(c, { received: true }));
  }
  const server = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, app.fetch);
  const base = `http://127.0.0.1:${server.addr.port}`;
  const body = new TextEncoder().encode(JSON.stringify(PAYLOAD));
  const bare = () =>
    fetch(`${base}/bare`, {
      method: "POST",
      headers: { "Content-Type": "application/json" },
      body,
    }).then((r) => checkOk(r, "bare")).then(() => {});
  const signed = (sync: string) => async () => {
    const path = `/signed-${sync}/in`;
    const headers = await signedHeaders({
      key,
      direction: "mesh_to_joi",
      method: "POST",
      path,
      body,
    });
    const res = await fetch(base + path, {
      method: "POST",
      headers: { ...headers, "Content-Type": "application/json" },
      body,
    });
    await checkOk(res, path);
  };
  const client = new SignedClient({ baseUrl: base, key, direction: "mesh_to_joi", maxRetries: 0 });
  const viaClient = async () => {
    const r = await client.request("POST", "/signed-NORMAL/in", PAYLOAD);
    if (r.status !== 200) throw new Error(`SignedClient: HTTP ${r.status}`);
  };
  try {
    const rows: Figures[] = [];
    // Interleave warm-ups so JIT and connection pools are warm for every variant.
    for (const f of [bare, signed("FULL"), signed("NORMAL"), viaClient]) {
      await drive("warmup", WARMUP, f);
    }
    rows.push(await drive("bare Hono JSON", REQUESTS, bare));
    rows.push(await drive("signed, nonces FULL", REQUESTS, signed("FULL")));
    rows.push(await drive("signed, nonces NORMAL", REQUESTS, signed("NORMAL")));
    rows.push(await drive("SignedClient (zod), NORMAL", REQUESTS, viaClient));
    const baseline = rows[0]!; // the bare row, pushed first above
    console.log(
      `wire: ${REQUESTS} requests per row, ${CONCURRENCY} concurrent clients, ` +
        `${body.length}-byte JSON body, loopback HTTP/1.1`,
    );
    console.log(
      "variant".padEnd(28) + "req/s".padStart(9) + "p50 ms".padStart(9) + "p99 ms".padStart(9) +
        "  throughput vs bare",
    );
    for (const r of rows) {
      console.log(
        r.name.padEnd(28) + r.rps.toFixed(0).padStart(9) + r.p50.toFixed(2).padStart(9) +
          r.p99.toFixed(2).padStart(9) + `  ${(r.rps / baseline.rps).toFixed(2)}x`,
      );
    }
  } finally {
    await server.shutdown();
    for (const s of stores) s.close();
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await bench();
