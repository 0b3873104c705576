/**
 * A real HTTP test mesh for joi's outbox: `POST /api/v1/message/outbound`
 * behind the wire module's `signedRoutes` (source address, HMAC, nonce,
 * timestamp; signed answers), recording what it accepted. It can be stopped and started again
 * on the same port to play an unreachable mesh, and told to fail with 5xx.
 *
 * @module
 */
import { Hono } from "hono";
import { fail, ok } from "../../services/common/wire/envelope.ts";
import {
  importWireKey,
  jsonBody,
  openNonceStore,
  signedRoutes,
} from "../../services/common/wire/mod.ts";

/** One message the test mesh accepted. */
export interface MeshReceived {
  body: {
    recipient: { id: string };
    priority: "normal" | "critical";
    delivery: { target: string; group_id?: string };
    content: { type: string; text: string };
    escalated: boolean;
  };
  requestId: string | null;
  at: number;
}

/** A running test mesh. */
export interface MeshPeer {
  /** `http://127.0.0.1:<port>`. */
  url: string;
  port: number;
  /** Messages accepted, in order. */
  received: MeshReceived[];
  /** Refusals (status, code) of requests that failed verification. */
  refused: { status: number; path: string }[];
  /** Answer 503 to the next `n` valid requests. */
  failNext(n: number): void;
  /** Resolves when `pred` holds for the received list (checked on each arrival). */
  waitFor(pred: (r: MeshReceived[]) => boolean, timeoutMs?: number): Promise<void>;
  /** Stops listening (the port refuses connections). */
  stop(): Promise<void>;
  /** Listens again on the same port. */
  start(): void;
  /** Stops and removes its state. */
  close(): Promise<void>;
}

/** Options of {@link startMeshPeer}. */
export interface MeshPeerOptions {
  /** Raw key bytes of joi->mesh. */
  keyBytes: Uint8Array;
  /** Folder for its nonce store. */
  dir: string;
  /** Clock shared with joi under test. */
  now?: () => number;
  /** Port to use (0: any). */
  port?: number;
}

/** A fresh random 32-byte key. */
export function randomKeyBytes(): Uint8Array {
  return crypto.getRandomValues(new Uint8Array(32));
}

/** Starts a signed test mesh on 127.0.0.1. */
export async function startMeshPeer(o: MeshPeerOptions): Promise<MeshPeer> {
  const key = await importWireKey(o.keyBytes, "joi_to_mesh");
  const now = o.now ?? Date.now;
  const nonces = openNonceStore(`${o.dir}/mesh-nonces.journal`, 15 * 60_000, { now });
  const received: MeshReceived[] = [];
  const refused: { status: number; path: string }[] = [];
  let failing = 0;
  const waiters = new Set<() => void>();
  const app = new Hono();
  app.get("/health", (c) => ok(c, { service: "test-mesh" }));
  app.use(
    "/api/v1/*",
    signedRoutes({
      key,
      direction: "joi_to_mesh",
      nonceStore: nonces,
      allowedSources: ["127.0.0.1"],
      toleranceMs: 5 * 60_000,
      maxBodyBytes: 65_536,
      now,
    }),
  );
  app.post("/api/v1/message/outbound", (c) => {
    if (failing > 0) {
      failing--;
      return fail(c, "internal_error", "test mesh failing on purpose");
    }
    const body = jsonBody<MeshReceived["body"]>(c)!;
    received.push({ body, requestId: c.req.header("x-request-id") ?? null, at: Date.now() });
    for (const w of waiters) w();
    return ok(c, {
      message_id: crypto.randomUUID(),
      transport: "signal",
      sent_at: new Date().toISOString(),
      delivered: false,
    });
  });
  const wrapped = async (req: Request, info: Deno.ServeHandlerInfo<Deno.NetAddr>) => {
    const res = await app.fetch(req, info);
    if (res.status >= 400) refused.push({ status: res.status, path: new URL(req.url).pathname });
    return res;
  };
  let server = Deno.serve({ hostname: "127.0.0.1", port: o.port ?? 0, onListen() {} }, wrapped);
  const port = server.addr.port;
  let running = true;
  const peer: MeshPeer = {
    url: `http://127.0.0.1:${port}`,
    port,
    received,
    refused,
    failNext(n) {
      failing = n;
    },
    waitFor(pred, timeoutMs = 10_000) {
      if (pred(received)) return Promise.resolve();
      return new Promise((resolve, reject) => {
        const timer = setTimeout(() => {
          waiters.delete(check);
          reject(new Error(`test mesh: condition not met in ${timeoutMs} ms`));
        }, timeoutMs);
        const check = () => {
          if (pred(received)) {
            clearTimeout(timer);
            waiters.delete(check);
            resolve();
          }
        };
        waiters.add(check);
      });
    },
    async stop() {
      if (!running) return;
      running = false;
      await server.shutdown();
    },
    start() {
      if (running) return;
      server = Deno.serve({ hostname: "127.0.0.1", port, onListen() {} }, wrapped);
      running = true;
    },
    async close() {
      await peer.stop();
      nonces.close?.();
    },
  };
  return peer;
}
