/**
 * What the guarded server (serve.ts) knows about the connection of each
 * request it serves, for the middlewares: the peer address, a way to have
 * the connection closed after the answer, and a body deadline its sweeper
 * checks (no timer per request).
 *
 * @module
 */

/** One served connection, as the middlewares may see it. */
export interface ConnectionState {
  /** The peer: its canonical IP literal, or `unix`. */
  readonly peer: string;
  /** Set to close the connection once the answer is written. */
  closeAfter: boolean;
  /** When the body being read must have arrived (epoch ms). */
  bodyDeadline: number;
  /** Called by the server's sweeper once `bodyDeadline` passed (then cleared). */
  onBodyDeadline: (() => void) | undefined;
}

const connectionOf = new WeakMap<Request, ConnectionState>();

/** Records the connection a request arrived on (serve.ts does, for each request). */
export function registerRequest(req: Request, conn: ConnectionState): void {
  connectionOf.set(req, conn);
}

/** The peer of a request served by the guarded server, else undefined. */
export function peerOf(req: Request): string | undefined {
  return connectionOf.get(req)?.peer;
}

/**
 * Has the guarded server call `expire` when `ms` pass before the returned
 * function is called (its sweeper checks every tick, at most 250 ms). Returns
 * undefined when `req` is not served by the guarded server, or already has a
 * body deadline: the caller then keeps its own timer.
 */
export function bodyDeadline(
  req: Request,
  ms: number,
  expire: () => void,
): (() => void) | undefined {
  const conn = connectionOf.get(req);
  if (conn === undefined || conn.onBodyDeadline !== undefined) return undefined;
  conn.bodyDeadline = Date.now() + ms;
  conn.onBodyDeadline = expire;
  return () => {
    if (conn.onBodyDeadline === expire) conn.onBodyDeadline = undefined;
  };
}

/**
 * Asks the server to close the connection of `req` once its answer is sent
 * (a body that did not arrive in time: its remaining bytes are not waited
 * for). A no-op for requests not served by the guarded server.
 */
export function closeAfterResponse(req: Request): void {
  const conn = connectionOf.get(req);
  if (conn) conn.closeAfter = true;
}
