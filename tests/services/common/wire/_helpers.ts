/**
 * Shared fixtures of the wire tests: keys, a real loopback server, raw HTTP.
 *
 * @module
 */
import { Hono } from "hono";
import {
  importWireKey,
  jsonBody,
  type NonceStore,
  ok,
  openNonceStore,
  rawBody,
  serveGuarded,
  signedRoutes,
  type WireKey,
} from "../../../../services/common/wire/mod.ts";
import type { Logger } from "../../../../services/common/log.ts";

/** Two independent random keys, one per direction. */
export async function testKeys(): Promise<{ meshToJoi: WireKey; joiToMesh: WireKey }> {
  return {
    meshToJoi: await importWireKey(crypto.getRandomValues(new Uint8Array(32)), "mesh_to_joi"),
    joiToMesh: await importWireKey(crypto.getRandomValues(new Uint8Array(32)), "joi_to_mesh"),
  };
}

/** A running loopback server. */
export interface TestServer {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  /** Port. */
  port: number;
  /** Stops it and waits until it is closed. */
  close(): Promise<void>;
}

/** The limits of the shipped policy, for test servers. */
export const TEST_LIMITS = {
  headersTimeoutMs: 5000,
  idleTimeoutMs: 30_000,
  maxConnectionsPerPeer: 16,
  maxConnections: 256,
};

/** Serves `app` on 127.0.0.1, port 0, with the guarded server of production. */
export function serve(app: Hono): TestServer {
  const server = serveGuarded(app, { hostname: "127.0.0.1", port: 0, ...TEST_LIMITS });
  const port = (server.addr as Deno.NetAddr).port;
  return {
    url: `http://127.0.0.1:${port}`,
    port,
    async close() {
      await server.shutdown();
    },
  };
}

/** Options of {@link signedApp}. */
export interface SignedAppOptions {
  key: WireKey;
  store: NonceStore;
  now: () => number;
  allowedSources?: string[] | undefined;
  maxBodyBytes?: number | undefined;
  toleranceMs?: number | undefined;
  logger?: Logger | undefined;
}

/** What the handlers of {@link signedApp} saw. */
export interface Seen {
  /** Every request that reached a handler: method, path, nonce, parsed body. */
  handled: { method: string; path: string; nonce: string; json: unknown }[];
}

/** A Hono app with signed routes under /api (mesh -> joi), echoing what it got. */
export function signedApp(options: SignedAppOptions): { app: Hono; seen: Seen } {
  const app = new Hono();
  const seen: Seen = { handled: [] };
  app.use(
    "/api/*",
    signedRoutes({
      key: options.key,
      direction: "mesh_to_joi",
      nonceStore: options.store,
      allowedSources: options.allowedSources ?? ["127.0.0.1"],
      toleranceMs: options.toleranceMs ?? 300_000,
      maxBodyBytes: options.maxBodyBytes ?? 1024,
      now: options.now,
      logger: options.logger,
    }),
  );
  app.all("/api/*", (c) => {
    seen.handled.push({
      method: c.req.method,
      path: c.req.path,
      nonce: c.req.header("x-nonce") ?? "",
      json: jsonBody(c),
    });
    return ok(c, { json: jsonBody(c), bytes: rawBody(c).length });
  });
  return { app, seen };
}

/** A temp dir and a nonce store file in it. */
export async function tempStore(
  retentionMs = 900_000,
): Promise<{ dir: string; path: string; store: NonceStore }> {
  const dir = await Deno.makeTempDir({ prefix: "joi-wire-" });
  const path = `${dir}/nonces.journal`;
  return { dir, path, store: openNonceStore(path, retentionMs) };
}

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A raw HTTP/1.1 answer: status, header block and body text. */
export interface RawAnswer {
  status: number;
  head: string;
  body: string;
}

/**
 * Writes `head` (request line + headers, without the blank line) and then
 * `parts` on a raw TCP connection WITHOUT finishing the body, and reads the
 * answer. Proves the server answered before the body was complete: the
 * connection never sends the rest.
 */
export async function rawExchange(
  port: number,
  head: string,
  parts: Uint8Array[],
): Promise<RawAnswer> {
  const conn = await Deno.connect({ hostname: "127.0.0.1", port });
  try {
    await writeAll(conn, enc.encode(head.replaceAll("\n", "\r\n") + "\r\n\r\n"));
    for (const p of parts) {
      try {
        await writeAll(conn, p);
      } catch {
        break; // the server may close the connection once it has answered
      }
    }
    let text = "";
    const buf = new Uint8Array(65536);
    while (true) {
      const end = text.indexOf("\r\n\r\n");
      if (end >= 0) {
        const length = /\r\ncontent-length:\s*(\d+)/i.exec(text.slice(0, end));
        if (length && text.length - end - 4 >= Number(length[1])) {
          const status = Number(text.slice(9, 12));
          return {
            status,
            head: text.slice(0, end),
            body: text.slice(end + 4, end + 4 + Number(length[1])),
          };
        }
      }
      const n = await conn.read(buf);
      if (n === null) throw new Error(`connection closed before a full answer: ${text}`);
      text += dec.decode(buf.subarray(0, n));
    }
  } finally {
    conn.close();
  }
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** The headers of a signed request to send raw: `signedHeaders` output as header lines. */
export function headerLines(headers: Record<string, string>): string[] {
  return Object.entries(headers).map(([k, v]) => `${k}: ${v}`);
}
