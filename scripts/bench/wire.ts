/**
 * Wire protocol benchmark: requests/s and p50/p99 latency of signed
 * requests with signed answers (`joi-wire-v2`) next to a bare Hono JSON
 * endpoint, in the same run, over real HTTP on loopback with concurrent
 * clients and a fixed request count per row. The servers run in their own
 * process (wire_server.ts), as they do in production (joi and the mesh are
 * different VMs); this process is the clients.
 *
 * Rows, each adding one cost to the previous:
 * 1. bare Hono JSON on `Deno.serve`, plain `fetch` (the yardstick);
 * 2. the same bare app on the guarded server (serve.ts: deadlines, caps);
 * 3. signed both ways: `SignedClient` (signs, verifies the answer, parses
 *    the envelope) -> guarded server -> `signedRoutes` (verifies, signs the
 *    answer), replay guard in memory only;
 * 4. the production configuration: as 3 with the durable replay guard
 *    (nonce_store.ts: survives a restart and a power cut).
 * The last line prints row 4 / row 1 (the target is >= 0.5x).
 *
 * Run alone: `deno task bench wire`.
 *
 * @module
 */
import { channelOfRecipient } from "../../services/common/policy/household.ts";
import { bytesToHex, importWireKey, SignedClient } from "../../services/common/wire/mod.ts";

const CONCURRENCY = 16;
const REQUESTS = 4000;
const WARMUP = 500;
const PAYLOAD = {
  transport: "signal",
  message_id: "m-0001",
  sender: { id: "owner", transport_id: "+15550000001" },
  conversation: { type: "direct", id: "owner" },
  priority: "normal",
  content: { type: "text", text: "x".repeat(400) },
};
const HEADERS = {
  "X-Validated-Channel": channelOfRecipient("owner", "private"),
  "X-Validated-Sender": "owner",
  "X-Config-Hash": "0".repeat(64),
};

interface Figures {
  name: string;
  rps: number;
  p50: number;
  p99: number;
}

async function drive(name: string, count: number, one: () => Promise<void>): Promise<Figures> {
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
    latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))]!;
  return { name, rps: count / elapsed, p50: pct(0.5), p99: pct(0.99) };
}

/** Runs the benchmark and prints its figures. */
export async function bench(): Promise<void> {
  const dir = await Deno.makeTempDir({ dir: "/tmp", prefix: "joi-bench-wire-" });
  const raw = crypto.getRandomValues(new Uint8Array(32));
  const key = await importWireKey(raw, "mesh_to_joi");
  const server = new Deno.Command("deno", {
    args: [
      "run",
      "--frozen",
      "--no-prompt",
      "--allow-net=127.0.0.1",
      `--allow-read=${dir}`,
      `--allow-write=${dir}`,
      new URL("./wire_server.ts", import.meta.url).pathname,
      dir,
    ],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stdin = server.stdin.getWriter();
  try {
    await stdin.write(new TextEncoder().encode(bytesToHex(raw) + "\n")); // the key, never in argv
    raw.fill(0);
    const lines = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let first = "";
    while (!first.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error("the bench server exited before listening");
      first += value;
    }
    void (async () => {
      while (!(await lines.read()).done) { /* drain */ }
    })();
    const ports = JSON.parse(first) as Record<
      "plain" | "guarded" | "signedMemory" | "signedJournal",
      number
    >;
    const url = (port: number) => `http://127.0.0.1:${port}`;
    const body = new TextEncoder().encode(JSON.stringify(PAYLOAD));
    const bare = (base: string) => async () => {
      const r = await fetch(`${base}/bare`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body,
      });
      if (r.status !== 200) throw new Error(`bare: HTTP ${r.status}`);
      await r.json();
    };
    const signed = (base: string) => {
      const client = new SignedClient({
        baseUrl: base,
        key,
        direction: "mesh_to_joi",
        maxRetries: 0,
      });
      return async () => {
        const r = await client.request("POST", "/api/in", PAYLOAD, HEADERS);
        if (r.status !== 200) throw new Error(`signed: HTTP ${r.status}`);
      };
    };
    const variants: [string, () => Promise<void>][] = [
      ["bare Hono, Deno.serve", bare(url(ports.plain))],
      ["bare Hono, guarded server", bare(url(ports.guarded))],
      ["signed both ways, replay guard in memory", signed(url(ports.signedMemory))],
      ["signed both ways, durable replay guard", signed(url(ports.signedJournal))],
    ];
    // Interleave warm-ups so JIT and connection pools are warm for every variant.
    for (const [, f] of variants) await drive("warmup", WARMUP, f);
    const rows: Figures[] = [];
    for (const [name, f] of variants) rows.push(await drive(name, REQUESTS, f));
    const baseline = rows[0]!;
    console.log(
      `wire: ${REQUESTS} requests per row, ${CONCURRENCY} concurrent clients, ` +
        `${body.length}-byte JSON body, loopback HTTP/1.1, servers in their own process`,
    );
    console.log(
      "variant".padEnd(42) + "req/s".padStart(9) + "p50 ms".padStart(9) + "p99 ms".padStart(9) +
        "  throughput vs bare",
    );
    for (const r of rows) {
      console.log(
        r.name.padEnd(42) + r.rps.toFixed(0).padStart(9) + r.p50.toFixed(2).padStart(9) +
          r.p99.toFixed(2).padStart(9) + `  ${(r.rps / baseline.rps).toFixed(2)}x`,
      );
    }
    const production = rows[3]!;
    console.log(
      `ratio signed request + signed response (durable replay guard) / bare: ` +
        `${(production.rps / baseline.rps).toFixed(2)}x (target >= 0.50x)`,
    );
  } finally {
    await stdin.close().catch(() => {});
    await server.status;
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await bench();
