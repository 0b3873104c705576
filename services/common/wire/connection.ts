/**
 * What the guarded server (serve.ts) knows about the connection of each
 * request it serves, for the middlewares: the peer address, and a way to
 * have the connection closed after the answer.
 *
 * @module
 */

/** One served connection, as the middlewares may see it. */
export interface ConnectionState {
  /** The peer: its canonical IP literal, or `unix`. */
  readonly peer: string;
  /** Set to close the connection once the answer is written. */
  closeAfter: boolean;
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
 * Asks the server to close the connection of `req` once its answer is sent
 * (a body that did not arrive in time: its remaining bytes are not waited
 * for). A no-op for requests not served by the guarded server.
 */
export function closeAfterResponse(req: Request): void {
  const conn = connectionOf.get(req);
  if (conn) conn.closeAfter = true;
}
