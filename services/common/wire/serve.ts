/**
 * The HTTP server of every listening port (joi 8443/8445, mesh 8444): Deno's
 * own HTTP engine (hyper) on connections this module accepts itself, so that
 * each connection has deadlines and each peer a connection cap, which
 * `Deno.serve` does not offer.
 *
 * Measured on Deno 2.9.6 (the figures and commands are in the README's wire
 * section): `Deno.serve` has no header, body or idle timeout (a connection
 * trickling one header byte a second, or sending nothing, stayed open past
 * 120 s), and under the 1024-descriptor limit systemd gives a service, about
 * 1,000 idle connections made accept fail with EMFILE, which ended the
 * process ("Uncaught (in promise) Http: Error: Too many open files").
 * `node:http` has Node's `headersTimeout`/`requestTimeout` but cost 4x the
 * server CPU per request through a Hono adapter. This module keeps
 * `Deno.serve`'s engine and cost: it accepts on a `Deno.listen` listener and
 * hands each connection to Deno's internal `serveHttpOnConnection` (the
 * function `Deno.serve` itself uses) with a per-connection abort signal.
 *
 * Per connection:
 * - **headers**: the first request's line and headers must arrive within
 *   `headersTimeoutMs` of the accept;
 * - **idle**: between requests on a kept-alive connection, the next request's
 *   headers must arrive within `idleTimeoutMs` of the previous answer;
 * - **body**: read by the middlewares (body.ts) within their body timeout,
 *   checked by this module's sweeper (`bodyDeadline`, connection.ts: no timer
 *   per request); when it does not arrive, the 400 answer is sent and the
 *   connection closed (`closeAfterResponse`);
 * - **caps**: a connection beyond `maxConnectionsPerPeer` open connections of
 *   its peer address, or beyond `maxConnections` open connections of peers
 *   other than the port's own (`peers`), is closed at once (and logged, at
 *   most once per peer per 10 s): strangers can fill neither a peer's share
 *   nor, for the port's own peers, the port.
 * A deadline is checked every `tickMs` (at most 250 ms); an expired connection
 * is shut down (an answer being written is finished first). An accept that
 * fails (EMFILE) is retried after 100 ms instead of ending the server.
 *
 * @module
 */
import type { Logger } from "../log.ts";
import { INTERNAL_ERROR_MESSAGE } from "./envelope.ts";
import { registerRequest } from "./connection.ts";
import { normalizeAddress } from "./source.ts";

export { closeAfterResponse } from "./connection.ts";

/** The limits of a listening port (policy.yaml `server`). */
export interface ServerLimits {
  /** Time from accept to a complete request line and headers (ms). */
  headersTimeoutMs: number;
  /** Time from an answer to the next request's complete headers on a kept-alive connection (ms). */
  idleTimeoutMs: number;
  /** Open connections of one peer address at most. */
  maxConnectionsPerPeer: number;
  /** Open connections of other addresses than the port's own peers, at most. */
  maxConnections: number;
}

/** policy.yaml's `server` section. */
export interface ServerPolicy {
  headers_timeout_seconds: number;
  idle_timeout_seconds: number;
  max_connections_per_peer: number;
  max_connections: number;
}

/** The {@link ServerLimits} of policy.yaml's `server`. */
export function limitsFromPolicy(p: ServerPolicy): ServerLimits {
  return {
    headersTimeoutMs: p.headers_timeout_seconds * 1000,
    idleTimeoutMs: p.idle_timeout_seconds * 1000,
    maxConnectionsPerPeer: p.max_connections_per_peer,
    maxConnections: p.max_connections,
  };
}

/** Where and how to serve. */
export type ServeGuardedOptions = ServerLimits & {
  /**
   * The peers this port serves (the mesh's address on 8443...): their
   * connections count against their own per-peer cap but never against
   * `maxConnections`, so strangers filling the port cannot lock them out.
   */
  peers?: readonly string[] | undefined;
  /** Logger for refusals and errors. */
  log?: Logger | undefined;
  /** Deadline check period (default: a quarter of the shortest timeout, at most 250 ms). */
  tickMs?: number | undefined;
} & ({ hostname: string; port: number } | { path: string });

/** Counters of a running server. */
export interface ServerStats {
  /** Connections open now. */
  open: number;
  /** Connections accepted since start. */
  accepted: number;
  /** Connections closed at once for a cap. */
  refused: number;
  /** Connections closed because a deadline passed. */
  timedOut: number;
}

/** A running guarded server. */
export interface GuardedServer {
  /** The listening address (the port when 0 was asked). */
  readonly addr: Deno.NetAddr | Deno.UnixAddr;
  /** Resolves when the server has stopped. */
  readonly finished: Promise<void>;
  /** Stops accepting, closes every connection (answers in flight finish), resolves when done. */
  shutdown(): Promise<void>;
  /** Counters. */
  stats(): ServerStats;
}

/** Anything with Hono's `fetch(request, env)`. */
export interface FetchApp {
  fetch(request: Request, info: Deno.ServeHandlerInfo<Deno.Addr>): Response | Promise<Response>;
}

interface Conn {
  peer: string;
  abort: AbortController;
  inflight: number;
  deadline: number;
  closeAfter: boolean;
  bodyDeadline: number;
  onBodyDeadline: (() => void) | undefined;
  finished?: Promise<void>;
}

type ServeOnConnection = (
  conn: Deno.Conn,
  signal: AbortSignal,
  handler: (req: Request, info: Deno.ServeHandlerInfo<Deno.Addr>) => Promise<Response>,
  onError: (error: unknown) => Response,
  onListen: (scheme: string) => void,
) => { finished: Promise<void> };

function serveOnConnection(): ServeOnConnection {
  const internal = (Deno as unknown as Record<symbol, Record<string, unknown>>)[
    (Deno as unknown as { internal: symbol }).internal
  ];
  const fn = internal?.["serveHttpOnConnection"];
  if (typeof fn !== "function") {
    throw new Error(
      `this Deno (${Deno.version.deno}) has no serveHttpOnConnection: joi's servers need ` +
        `Deno 2.9.6 (the version the README installs)`,
    );
  }
  return fn as ServeOnConnection;
}

function checkLimits(o: ServerLimits): void {
  for (const k of ["headersTimeoutMs", "idleTimeoutMs"] as const) {
    if (!Number.isFinite(o[k]) || o[k] <= 0) throw new RangeError(`${k} must be positive`);
  }
  for (const k of ["maxConnectionsPerPeer", "maxConnections"] as const) {
    if (!Number.isSafeInteger(o[k]) || o[k] <= 0) {
      throw new RangeError(`${k} must be a positive integer`);
    }
  }
}

/**
 * Serves `app` (a Hono app: its `fetch` gets the peer address as `c.env`)
 * with the deadlines and caps of the module doc.
 */
export function serveGuarded(app: FetchApp, options: ServeGuardedOptions): GuardedServer {
  checkLimits(options);
  const serveOn = serveOnConnection();
  const log = options.log?.child("server");
  const listener = "path" in options
    ? Deno.listen({ transport: "unix", path: options.path })
    : Deno.listen({ hostname: options.hostname, port: options.port });
  const conns = new Set<Conn>();
  const perPeer = new Map<string, number>();
  const ownPeers = new Set((options.peers ?? []).map(normalizeAddress));
  let strangers = 0; // open connections of peers not in ownPeers
  const stats: ServerStats = { open: 0, accepted: 0, refused: 0, timedOut: 0 };
  const lastRefusalLog = new Map<string, { at: number; count: number }>();
  let closed = false;

  const tickMs = options.tickMs ??
    Math.max(5, Math.min(250, Math.min(options.headersTimeoutMs, options.idleTimeoutMs) / 4));
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const c of conns) {
      const expire = c.onBodyDeadline;
      if (expire !== undefined && c.bodyDeadline <= now) {
        c.onBodyDeadline = undefined;
        expire();
      }
      if (c.inflight === 0 && c.deadline <= now && !c.abort.signal.aborted) {
        if (!c.closeAfter) stats.timedOut++;
        c.abort.abort();
      }
    }
  }, tickMs);

  const refuse = (conn: Deno.Conn, peer: string, reason: string) => {
    stats.refused++;
    try {
      conn.close();
    } catch {
      // already gone
    }
    const now = Date.now();
    const seen = lastRefusalLog.get(peer) ?? { at: 0, count: 0 };
    seen.count++;
    if (now - seen.at >= 10_000) {
      log?.security("wire.connection_refused", {
        peer,
        reason,
        refused_since_last_log: seen.count,
        open_from_peer: perPeer.get(peer) ?? 0,
        open: conns.size,
      });
      seen.at = now;
      seen.count = 0;
    }
    lastRefusalLog.set(peer, seen);
  };

  const onError = (error: unknown): Response => {
    log?.error("wire.server_error", { error: String(error).slice(0, 300) });
    return Response.json({
      status: "error",
      request_id: crypto.randomUUID(),
      timestamp: new Date().toISOString(),
      error: { code: "internal_error", message: INTERNAL_ERROR_MESSAGE },
    }, { status: 500 });
  };

  const serveConn = (conn: Deno.Conn, peer: string) => {
    const c: Conn = {
      peer,
      abort: new AbortController(),
      inflight: 0,
      deadline: Date.now() + options.headersTimeoutMs,
      closeAfter: false,
      bodyDeadline: 0,
      onBodyDeadline: undefined,
    };
    conns.add(c);
    perPeer.set(peer, (perPeer.get(peer) ?? 0) + 1);
    if (!ownPeers.has(peer)) strangers++;
    stats.open = conns.size;
    const handler = async (req: Request, info: Deno.ServeHandlerInfo<Deno.Addr>) => {
      c.inflight++;
      registerRequest(req, c);
      try {
        return await app.fetch(req, info);
      } finally {
        if (--c.inflight === 0) {
          // closeAfter: shut down at the next tick, once the answer is written
          c.deadline = c.closeAfter ? 0 : Date.now() + options.idleTimeoutMs;
        }
      }
    };
    const done = () => {
      if (!conns.has(c)) return;
      conns.delete(c);
      if (!ownPeers.has(peer)) strangers--;
      const n = (perPeer.get(peer) ?? 1) - 1;
      if (n <= 0) perPeer.delete(peer);
      else perPeer.set(peer, n);
      stats.open = conns.size;
    };
    try {
      c.finished = serveOn(conn, c.abort.signal, handler, onError, () => {}).finished
        .catch(() => {})
        .finally(done);
    } catch (e) {
      log?.error("wire.serve_connection_failed", { error: (e as Error).message });
      try {
        conn.close();
      } catch {
        // already gone
      }
      done();
    }
  };

  const acceptLoop = async () => {
    while (!closed) {
      let conn: Deno.Conn;
      try {
        conn = await listener.accept();
      } catch (e) {
        if (closed || e instanceof Deno.errors.BadResource) return;
        log?.error("wire.accept_failed", { error: (e as Error).message, retry_ms: 100 });
        await new Promise((r) => setTimeout(r, 100));
        continue;
      }
      stats.accepted++;
      const remote = conn.remoteAddr;
      const peer = remote.transport === "tcp" ? normalizeAddress(remote.hostname) : "unix";
      if ((perPeer.get(peer) ?? 0) >= options.maxConnectionsPerPeer) {
        refuse(conn, peer, "max_connections_per_peer");
      } else if (!ownPeers.has(peer) && strangers >= options.maxConnections) {
        refuse(conn, peer, "max_connections");
      } else serveConn(conn, peer);
    }
  };

  const finished = acceptLoop().finally(async () => {
    clearInterval(sweeper);
    for (const c of conns) c.abort.abort();
    await Promise.all([...conns].map((c) => c.finished));
  });

  return {
    addr: listener.addr,
    finished,
    async shutdown() {
      if (!closed) {
        closed = true;
        try {
          listener.close();
        } catch {
          // already closed
        }
      }
      await finished;
    },
    stats: () => ({ ...stats }),
  };
}
