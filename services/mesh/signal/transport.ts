/**
 * What the mesh needs from "Signal": a JSON-RPC request channel and a stream
 * of `receive` notifications. The real signal-cli daemon
 * ({@link ./jsonrpc_client.ts}) and the local terminal ({@link ./terminal.ts})
 * both implement it, so every message goes through the same checks.
 *
 * @module
 */

/** A JSON-RPC notification pushed by signal-cli (`method: "receive"`, ...). */
export interface RpcNotification {
  method: string;
  params: unknown;
}

/** Connection state of the transport, for `/health`. */
export interface TransportStatus {
  /** `connected` when requests can be made now. */
  state: "connecting" | "connected" | "disconnected" | "closed";
  /** signal-cli's version as last reported by `version`, if known. */
  version: string | null;
  /** When the current connection was established (ms), or null. */
  connectedSince: number | null;
  /** Last connection error, without secrets. */
  lastError: string | null;
  /** Reconnects since start. */
  reconnects: number;
}

/** The mesh's view of signal-cli. */
export interface SignalTransport {
  /** Starts connecting (idempotent). */
  start(): void;
  /** Stops for good: rejects pending requests and closes the connection. */
  close(): Promise<void>;
  /** Calls `method`; resolves with the `result` or rejects with {@link RpcError}. */
  request<T = unknown>(method: string, params?: Record<string, unknown>): Promise<T>;
  /** Registers the handler of pushed notifications (one handler). */
  onNotification(handler: (n: RpcNotification) => void): void;
  /** Registers a callback run after each successful (re)connection. */
  onConnect(handler: () => void): void;
  /** Current state. */
  status(): TransportStatus;
}

/** A JSON-RPC error answered by signal-cli (`code`, `message`, `data`). */
export class RpcError extends Error {
  /** JSON-RPC error code (-1, -3, -4, -5, -32601, ...). */
  readonly code: number;
  /** `error.data` (for -5: `{response: {results: [...]}}`). */
  readonly data: unknown;
  constructor(code: number, message: string, data?: unknown) {
    super(`signal-cli error ${code}: ${message}`);
    this.name = "RpcError";
    this.code = code;
    this.data = data;
  }
}

/** The transport cannot take requests now (no connection, closed, timed out). */
export class TransportUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = "TransportUnavailableError";
  }
}
