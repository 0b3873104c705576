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
 * 3. the unsigned skeleton: `JsonClient` (the signed client's retry rules,
 *    timer, capped read and envelope parsing) sending the same header fields
 *    with values of the same size -> guarded server -> body limits, envelope
 *    answers carrying the same protocol header fields, computed by nothing
 *    (wire_server.ts `skeletonApp`): everything but the MACs and their checks,
 *    so its ratio to row 1 is the most any implementation of joi-wire-v2
 *    could reach on this runtime;
 * 4. the packed skeleton: as 3, with the protocol's values packed into one
 *    header each way (`x-joi-auth`) instead of four and three: what a v3
 *    that packed them could reach at most;
 * 5. packed with the hashes: as 4, and both sides compute the body hashes
 *    and MACs a signer and a verifier compute, without checking anything:
 *    the bound no implementation of such a v3 could beat;
 * 6. signed both ways: `SignedClient` (signs, verifies the answer, parses
 *    the envelope) -> guarded server -> `signedRoutes` (verifies, signs the
 *    answer), replay guard in memory only;
 * 7. the production configuration: as 6 with the durable replay guard
 *    (nonce_store.ts: survives a restart and a power cut).
 * The rows run in interleaved rounds (row 1, 2, 3, 4, row 1, 2, ...), so the
 * load of a shared machine falls on all of them alike. Each row also shows
 * the CPU time per request of the client process and of the server process
 * (`process.cpuUsage`, the server reports its own): on a busy machine req/s
 * moves with the neighbours, CPU per request much less. The last lines print
 * row 7 / row 1 in req/s (the target is >= 0.5x) with each round's ratio,
 * rows 3, 4 and 5 / row 1 (the ceilings), and the ratio of CPU per request
 * (client + server).
 *
 * Run alone: `deno task bench wire`.
 *
 * @module
 */
import process from "node:process";
import { channelOfRecipient } from "../../services/common/policy/household.ts";
import {
  bytesToHex,
  formatSignedHeaderList,
  importWireKey,
  JsonClient,
  SignedClient,
  type WireKey,
} from "../../services/common/wire/mod.ts";
import { FAKE_MAC, PACKED_HEADER, packedValue } from "./wire_server.ts";
import { hmacHex, sha256Hex } from "../../services/common/wire/hmac.ts";
import { percentile as pct } from "./_stats.ts";

const CONCURRENCY = 16;
const ROUNDS = 5;
const PER_ROUND = 1000;
const WARMUP = 3000;
/** The message every row sends. */
export const PAYLOAD = {
  transport: "signal",
  message_id: "m-0001",
  sender: { id: "owner", transport_id: "+15550000001" },
  conversation: { type: "direct", id: "owner" },
  priority: "normal",
  content: { type: "text", text: "x".repeat(400) },
};
/** The headers the mesh signs on a message to joi (the signed rows send them). */
export const HEADERS = {
  "X-Validated-Channel": channelOfRecipient("owner", "private"),
  "X-Validated-Sender": "owner",
  "X-Config-Hash": "0".repeat(64),
};

/**
 * The headers the skeleton's `JsonClient` is given: the signed client's
 * (the bench's channel, sender and config hash) plus the protocol's own with
 * values of the same size, computed by nothing. With the X-Request-ID,
 * X-Timestamp, Content-Type and Accept-Encoding every client adds, it sends
 * the header fields a signed request carries.
 */
export function skeletonHeaders(): Record<string, string> {
  return {
    ...HEADERS,
    "X-Nonce": crypto.randomUUID(),
    "X-Signed-Headers": SIGNED_LIST,
    "X-HMAC-SHA256": FAKE_MAC,
  };
}

/** The signed-header list of the bench's requests: its headers, X-Request-ID and Content-Type. */
const SIGNED_LIST = formatSignedHeaderList(
  [...Object.keys(HEADERS), "X-Request-ID", "Content-Type"],
);

/**
 * A `fetch` for the packed rows: carries the request's protocol values in
 * one packed header (the timestamp `JsonClient` sets moves into it).
 * Without `key` its MAC is computed by nothing; with it, the request's body
 * hash and MAC are computed as a signer does, and for the answer a hash of a
 * stand-in of its size (its packed header: the body is read after this
 * returns) and a MAC, as a verifier does; nothing is checked.
 */
export function packedFetch(key?: WireKey): typeof fetch {
  return (async (input: URL | RequestInfo, init?: RequestInit) => {
    const headers = init!.headers as Record<string, string>;
    const body = init!.body as Uint8Array;
    // the client's own X-Timestamp travels packed, as the answer's does
    const t = Number(headers["X-Timestamp"]);
    delete headers["X-Timestamp"];
    const mac = key === undefined
      ? FAKE_MAC
      : hmacHex(key.request, `POST\n${Object.values(headers).join("\n")}\n${sha256Hex(body)}`);
    headers[PACKED_HEADER] = packedValue(t, SIGNED_LIST, mac) + ` n=${crypto.randomUUID()}`;
    const r = await fetch(input, init);
    if (key !== undefined) {
      const answer = r.headers.get(PACKED_HEADER) ?? "";
      hmacHex(key.response, `${answer}\n${sha256Hex(answer)}`);
    }
    return r;
  }) as typeof fetch;
}

/** One row's figures, summed over its rounds. */
interface Row {
  name: string;
  one: () => Promise<void>;
  requests: number;
  seconds: number;
  latencies: number[];
  clientCpuUs: number;
  serverCpuUs: number;
  /** req/s of each round. */
  rounds: number[];
}

/** Runs `count` requests of `one` with CONCURRENCY workers; returns the seconds and each latency. */
async function drive(
  count: number,
  one: () => Promise<void>,
): Promise<{ seconds: number; latencies: number[] }> {
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
  return { seconds: (performance.now() - started) / 1000, latencies };
}

const cpuNow = () => {
  const { user, system } = process.cpuUsage();
  return user + system;
};

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
  const encoder = new TextEncoder();
  try {
    await stdin.write(encoder.encode(bytesToHex(raw) + "\n")); // the key, never in argv
    raw.fill(0);
    const reader = server.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let pending = "";
    const line = async (): Promise<string> => {
      while (!pending.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) throw new Error("the bench server exited");
        pending += value;
      }
      const at = pending.indexOf("\n");
      const out = pending.slice(0, at);
      pending = pending.slice(at + 1);
      return out;
    };
    const serverCpu = async (): Promise<number> => {
      await stdin.write(encoder.encode("cpu\n"));
      return (JSON.parse(await line()) as { cpuUs: number }).cpuUs;
    };
    const ports = JSON.parse(await line()) as Record<
      | "plain"
      | "guarded"
      | "skeleton"
      | "packed"
      | "packedHashes"
      | "signedMemory"
      | "signedJournal",
      number
    >;
    const url = (port: number) => `http://127.0.0.1:${port}`;
    // The yardstick client does what any JSON client does: serialise, send, parse.
    const bare = (base: string) => async () => {
      const r = await fetch(`${base}/bare`, {
        method: "POST",
        headers: { "Content-Type": "application/json" },
        body: JSON.stringify(PAYLOAD),
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
    const skeleton = (base: string) => {
      const client = new JsonClient({ baseUrl: base, maxRetries: 0 });
      const headers = skeletonHeaders();
      return async () => {
        const r = await client.request("POST", "/api/in", PAYLOAD, headers);
        if (r.status !== 200) throw new Error(`skeleton: HTTP ${r.status}`);
      };
    };
    const packed = (base: string, withHashes: boolean) => {
      const client = new JsonClient({
        baseUrl: base,
        maxRetries: 0,
        fetch: packedFetch(withHashes ? key : undefined),
      });
      return async () => {
        const r = await client.request("POST", "/api/in", PAYLOAD, HEADERS);
        if (r.status !== 200) throw new Error(`packed: HTTP ${r.status}`);
      };
    };
    const row = (name: string, one: () => Promise<void>): Row => ({
      name,
      one,
      requests: 0,
      seconds: 0,
      latencies: [],
      clientCpuUs: 0,
      serverCpuUs: 0,
      rounds: [],
    });
    const rows = [
      row("bare Hono, Deno.serve", bare(url(ports.plain))),
      row("bare Hono, guarded server", bare(url(ports.guarded))),
      row("unsigned skeleton (ceiling), guarded", skeleton(url(ports.skeleton))),
      row("packed skeleton (a v3's ceiling)", packed(url(ports.packed), false)),
      row("packed + hashes, no checks (a v3's bound)", packed(url(ports.packedHashes), true)),
      row("signed both ways, replay guard in memory", signed(url(ports.signedMemory))),
      row("signed both ways, durable replay guard", signed(url(ports.signedJournal))),
    ];
    // Warm every variant (JIT, connection pools) before measuring any.
    for (const r of rows) await drive(WARMUP, r.one);
    for (let round = 0; round < ROUNDS; round++) {
      for (const r of rows) {
        const c0 = cpuNow();
        const s0 = await serverCpu();
        const { seconds, latencies } = await drive(PER_ROUND, r.one);
        r.serverCpuUs += (await serverCpu()) - s0;
        r.clientCpuUs += cpuNow() - c0;
        r.requests += PER_ROUND;
        r.seconds += seconds;
        r.latencies.push(...latencies);
        r.rounds.push(PER_ROUND / seconds);
      }
    }
    const baseline = rows[0]!;
    const ceiling = rows[2]!;
    const packedBound = rows[4]!;
    const production = rows[6]!;
    const ratioOf = (r: Row) => (r.requests / r.seconds) / (baseline.requests / baseline.seconds);
    const perRequest = (r: Row) => (r.clientCpuUs + r.serverCpuUs) / r.requests;
    const load = Deno.loadavg().map((x) => x.toFixed(1)).join(" ");
    console.log(
      `wire: ${ROUNDS} interleaved rounds of ${PER_ROUND} requests per row, ${CONCURRENCY} ` +
        `concurrent clients, ${
          encoder.encode(JSON.stringify(PAYLOAD)).length
        }-byte JSON body, loopback HTTP/1.1, servers in their own process; ` +
        `load average ${load} (2 cores, shared)`,
    );
    console.log(
      "variant".padEnd(42) + "req/s".padStart(8) + "p50 ms".padStart(8) + "p99 ms".padStart(8) +
        "  CPU us/req client+server".padStart(27) + "  req/s vs bare",
    );
    for (const r of rows) {
      r.latencies.sort((a, b) => a - b);
      const cpu = `${(r.clientCpuUs / r.requests).toFixed(0)} + ${
        (r.serverCpuUs / r.requests).toFixed(0)
      } = ${perRequest(r).toFixed(0)}`;
      console.log(
        r.name.padEnd(42) + (r.requests / r.seconds).toFixed(0).padStart(8) +
          pct(r.latencies, 50).toFixed(2).padStart(8) +
          pct(r.latencies, 99).toFixed(2).padStart(8) + cpu.padStart(27) +
          `  ${ratioOf(r).toFixed(2)}x`,
      );
    }
    const roundRatios = production.rounds.map((v, i) => v / baseline.rounds[i]!).sort((a, b) =>
      a - b
    );
    const ratio = ratioOf(production);
    console.log(
      `ratio signed request + signed response (durable replay guard) / bare, req/s: ` +
        `${ratio.toFixed(2)}x (rounds ${roundRatios.map((x) => x.toFixed(2)).join(" ")}; ` +
        `target >= 0.50x: ${ratio >= 0.5 ? "met" : "NOT met"})`,
    );
    const ceilingRatio = ratioOf(ceiling);
    console.log(
      `ceiling: unsigned skeleton / bare, req/s: ${ceilingRatio.toFixed(2)}x ` +
        `(CPU per request ${(perRequest(baseline) / perRequest(ceiling)).toFixed(2)}x): ` +
        `the protocol's header fields, body limits and envelope without any MAC; ` +
        `no signing code can beat it`,
    );
    console.log(
      `bound of a v3 packing the protocol's values into one header each way, computing the ` +
        `hashes and MACs and checking nothing: ${ratioOf(packedBound).toFixed(2)}x ` +
        `(packed skeleton ${ratioOf(rows[3]!).toFixed(2)}x)`,
    );
    console.log(
      `ratio of CPU per request, bare / signed (client + server): ` +
        `${(perRequest(baseline) / perRequest(production)).toFixed(2)}x ` +
        `(the req/s ratio on cores of their own, when CPU bound)`,
    );
  } finally {
    await stdin.close().catch(() => {});
    await server.status;
    await Deno.remove(dir, { recursive: true });
  }
}

if (import.meta.main) await bench();
