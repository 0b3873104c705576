/**
 * The server side of `deno task bench wire`, run as its own process (as a
 * server is, on its own VM): one port per variant, printed as one JSON line
 * on stdout once listening; the key (hex) arrives on stdin, never in argv.
 * Each further line on stdin is answered with this process's CPU time so far
 * (`{"cpuUs": n}`). Runs until stdin closes.
 *
 * `deno run --allow-net=127.0.0.1 --allow-read=DIR --allow-write=DIR
 *  scripts/bench/wire_server.ts DIR`
 *
 * @module
 */
import process from "node:process";
import { type Context, Hono, type MiddlewareHandler } from "hono";
import {
  formatSignedHeaderList,
  hexToBytes,
  importWireKey,
  jsonRoutes,
  type NonceStore,
  ok,
  openNonceStore,
  rawBody,
  serveGuarded,
  signedRoutes,
  type WireKey,
} from "../../services/common/wire/mod.ts";
import { hmacHex, sha256Hex } from "../../services/common/wire/hmac.ts";
import { setAnswerSigner } from "../../services/common/wire/envelope.ts";

/** The limits the variants are served with (the shipped policy's). */
export const BENCH_LIMITS = {
  headersTimeoutMs: 5000,
  idleTimeoutMs: 30_000,
  maxConnectionsPerPeer: 64,
  maxConnections: 256,
};

/** The bare app: Hono, JSON in, JSON out, nothing else. */
export function bareApp(): Hono {
  const app = new Hono();
  app.post(
    "/bare",
    async (c) => c.json({ status: "ok", data: { got: !!(await c.req.json()) } }),
  );
  return app;
}

/** The handler behind every API row: an `ok` envelope, as joi's inbound answers. */
const answerIn = (c: Context) => ok(c, { received: true, will_respond: true });

/** The signed app: `signedRoutes` in front of a handler answering with `ok`. */
export function signedApp(key: WireKey, store: NonceStore): Hono {
  const app = new Hono();
  app.use(
    "/api/*",
    signedRoutes({
      key,
      direction: "mesh_to_joi",
      nonceStore: store,
      allowedSources: ["127.0.0.1"],
      toleranceMs: 300_000,
      maxBodyBytes: 65_536,
    }),
  );
  app.post("/api/in", answerIn);
  return app;
}

/** A MAC-shaped value: 64 hex digits, computed by nothing. */
export const FAKE_MAC = "0".repeat(64);

/**
 * The signed app without its cryptography and checks: the same body limits
 * (`jsonRoutes`), the same envelope, and answers carrying the same three
 * protocol headers with values of the same size, computed by nothing. Its
 * ratio to the bare app is the best any implementation of joi-wire-v2's
 * headers and envelope could reach on this runtime.
 */
export function skeletonApp(): Hono {
  return unsignedApp((headers) => ({
    "x-timestamp": String(Date.now()),
    "x-signed-headers": formatSignedHeaderList(headers.map(([n]) => n)),
    "x-hmac-sha256": FAKE_MAC,
  }));
}

/**
 * The body limits and envelope answers of the signed app, with `sign` making
 * the answers' protocol headers and `before` (if any) run ahead of the handler.
 */
function unsignedApp(
  sign: (headers: readonly (readonly [string, string])[], text: string) => Record<string, string>,
  before?: MiddlewareHandler,
): Hono {
  const app = new Hono();
  app.use("/api/*", async (c, next) => {
    setAnswerSigner(c.req.raw, (_status, headers, text) => sign(headers, text));
    await next();
  });
  app.use("/api/*", jsonRoutes({ maxBodyBytes: 65_536 }));
  if (before !== undefined) app.use("/api/*", before);
  app.post("/api/in", answerIn);
  return app;
}

/** The one header a packed exchange carries its protocol values in, each way. */
export const PACKED_HEADER = "x-joi-auth";

/**
 * A packed exchange's answer header: timestamp, signed-header list and MAC
 * in one field (a v3 would carry them so; no such protocol exists).
 */
export function packedValue(timestamp: number, list: string, mac: string): string {
  return `v3 t=${timestamp} h=${list} mac=${mac}`;
}

/**
 * The skeleton with the protocol's values packed into one header each way
 * instead of four and three. Without `key`, nothing is computed (the packed
 * ceiling); with it, the request's body hash and MAC and the answer's are
 * computed as a signer and verifier would, and nothing is checked: the
 * bound no implementation of such a v3 could beat.
 */
export function packedApp(key?: WireKey): Hono {
  const sign = (headers: readonly (readonly [string, string])[], text: string) => {
    const t = Date.now();
    const mac = key === undefined
      ? FAKE_MAC
      : hmacHex(key.response, `${t}\n${headers.join("\n")}\n${sha256Hex(text)}`);
    return {
      [PACKED_HEADER]: packedValue(t, formatSignedHeaderList(headers.map(([n]) => n)), mac),
    };
  };
  // what a verifier computes (and would compare: not done here)
  const verify: MiddlewareHandler | undefined = key === undefined ? undefined : async (c, next) => {
    const auth = c.req.header(PACKED_HEADER) ?? "";
    hmacHex(key.request, `${c.req.method}\n${c.req.path}\n${auth}\n${sha256Hex(rawBody(c))}`);
    await next();
  };
  return unsignedApp(sign, verify);
}

async function main(): Promise<void> {
  const dir = Deno.args[0];
  if (!dir) throw new Error("usage: wire_server.ts DIR (the key arrives on stdin)");
  const reader = Deno.stdin.readable.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) return;
    text += new TextDecoder().decode(value);
  }
  const key = await importWireKey(hexToBytes(text.trim()), "mesh_to_joi");
  const memory = openNonceStore(":memory:", 900_000);
  const journal = openNonceStore(`${dir}/nonces.journal`, 900_000);
  const host = { hostname: "127.0.0.1", port: 0, ...BENCH_LIMITS };
  const plain = Deno.serve({ hostname: "127.0.0.1", port: 0, onListen() {} }, bareApp().fetch);
  const guarded = serveGuarded(bareApp(), host);
  const skeleton = serveGuarded(skeletonApp(), host);
  const packed = serveGuarded(packedApp(), host);
  const packedHashes = serveGuarded(packedApp(key), host);
  const signedMemory = serveGuarded(signedApp(key, memory), host);
  const signedJournal = serveGuarded(signedApp(key, journal), host);
  const port = (s: { addr: Deno.Addr }) => (s.addr as Deno.NetAddr).port;
  console.log(JSON.stringify({
    plain: port(plain),
    guarded: port(guarded),
    skeleton: port(skeleton),
    packed: port(packed),
    packedHashes: port(packedHashes),
    signedMemory: port(signedMemory),
    signedJournal: port(signedJournal),
  }));
  // Each line the bench sends asks for this process's CPU time so far (us), until stdin closes.
  const decoder = new TextDecoder();
  for (;;) {
    const { value, done } = await reader.read();
    if (done) break;
    for (const _ of decoder.decode(value).matchAll(/\n/g)) {
      const { user, system } = process.cpuUsage();
      console.log(JSON.stringify({ cpuUs: user + system }));
    }
  }
  await plain.shutdown();
  await Promise.all(
    [guarded, skeleton, packed, packedHashes, signedMemory, signedJournal].map((s) => s.shutdown()),
  );
  memory.close();
  journal.close();
}

if (import.meta.main) await main();
