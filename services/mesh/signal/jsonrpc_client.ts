/**
 * The one long-lived JSON-RPC connection to `signal-cli daemon --socket`.
 *
 * - One object per `\n`-terminated line; responses are matched to requests
 *   by `id` (signal-cli answers out of order); pushed notifications go to one
 *   handler.
 * - When the socket disappears, the daemon restarts, or a stale socket file
 *   refuses connections, pending requests fail with
 *   {@link TransportUnavailableError} and the client reconnects with
 *   exponential backoff; it never gives up and never throws out of its loop.
 * - A line longer than `maxLineBytes` is skipped and logged with its size
 *   (and its method or id when its first or last bytes name them); the lines
 *   after it are read as usual and memory stays bounded (a confused peer can
 *   neither exhaust memory nor kill the connection). An answer skipped this
 *   way fails its request at once instead of after the timeout.
 *
 * @module
 */
import { LineSplitter, type SkippedLine } from "../../common/line_reader.ts";
import type { Logger } from "../../common/log.ts";
import {
  RpcError,
  type RpcNotification,
  type SignalTransport,
  type TransportStatus,
  TransportUnavailableError,
} from "./transport.ts";

/** Options of {@link JsonRpcClient}. */
export interface JsonRpcClientOptions {
  /** signal-cli's socket path. */
  path: string;
  /** Logger (component `signal`). */
  log: Logger;
  /** First reconnect delay (default 250 ms). */
  initialBackoffMs?: number;
  /** Longest reconnect delay (default 30 s). */
  maxBackoffMs?: number;
  /** A request not answered within this fails (default 60 s). */
  requestTimeoutMs?: number;
  /** Longest accepted line in bytes (default 1 MiB); a longer one is skipped and logged. */
  maxLineBytes?: number;
  /** Clock (ms), for tests. */
  now?: () => number;
}

interface Pending {
  resolve: (v: unknown) => void;
  reject: (e: Error) => void;
  timer: ReturnType<typeof setTimeout>;
  method: string;
}

const encoder = new TextEncoder();

/** The signal-cli JSON-RPC client. */
export class JsonRpcClient implements SignalTransport {
  readonly #opts: Required<Omit<JsonRpcClientOptions, "log">> & { log: Logger };
  #conn: Deno.Conn | null = null;
  #state: TransportStatus["state"] = "disconnected";
  #connectedSince: number | null = null;
  #lastError: string | null = null;
  #version: string | null = null;
  #reconnects = 0;
  #nextId = 1;
  #pending = new Map<number, Pending>();
  #onNotification: (n: RpcNotification) => void = () => {};
  #onConnect: () => void = () => {};
  #started = false;
  #closed = false;
  #loop: Promise<void> | null = null;
  #wake: (() => void) | null = null;
  #writeChain: Promise<void> = Promise.resolve();

  constructor(options: JsonRpcClientOptions) {
    this.#opts = {
      initialBackoffMs: 250,
      maxBackoffMs: 30_000,
      requestTimeoutMs: 60_000,
      maxLineBytes: 1024 * 1024,
      now: Date.now,
      ...options,
    };
  }

  /** @inheritdoc */
  start(): void {
    if (this.#started) return;
    this.#started = true;
    this.#loop = this.#run();
  }

  /** @inheritdoc */
  async close(): Promise<void> {
    this.#closed = true;
    this.#state = "closed";
    this.#wake?.();
    try {
      this.#conn?.close();
    } catch { /* already closed */ }
    this.#failPending("signal-cli client closed");
    await this.#loop;
  }

  /** @inheritdoc */
  onNotification(handler: (n: RpcNotification) => void): void {
    this.#onNotification = handler;
  }

  /** @inheritdoc */
  onConnect(handler: () => void): void {
    this.#onConnect = handler;
  }

  /** @inheritdoc */
  status(): TransportStatus {
    return {
      state: this.#state,
      version: this.#version,
      connectedSince: this.#connectedSince,
      lastError: this.#lastError,
      reconnects: this.#reconnects,
    };
  }

  /** @inheritdoc */
  request<T = unknown>(method: string, params?: Record<string, unknown>): Promise<T> {
    const conn = this.#conn;
    if (!conn || this.#state !== "connected") {
      return Promise.reject(
        new TransportUnavailableError(
          `signal-cli is not connected (${this.#lastError ?? this.#state}); ` +
            `check that the daemon runs and ${this.#opts.path} is reachable`,
        ),
      );
    }
    const id = this.#nextId++;
    const line = JSON.stringify({ jsonrpc: "2.0", method, params: params ?? {}, id }) + "\n";
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id);
        reject(
          new TransportUnavailableError(
            `signal-cli did not answer ${method} within ${this.#opts.requestTimeoutMs} ms`,
          ),
        );
      }, this.#opts.requestTimeoutMs);
      this.#pending.set(id, { resolve: resolve as (v: unknown) => void, reject, timer, method });
      this.#write(conn, line).catch((e) => {
        const p = this.#pending.get(id);
        if (!p) return;
        this.#pending.delete(id);
        clearTimeout(p.timer);
        p.reject(new TransportUnavailableError(`writing to signal-cli failed: ${errText(e)}`));
      });
    });
  }

  #write(conn: Deno.Conn, line: string): Promise<void> {
    const bytes = encoder.encode(line);
    const next = this.#writeChain.then(async () => {
      let off = 0;
      while (off < bytes.length) off += await conn.write(bytes.subarray(off));
    });
    this.#writeChain = next.catch(() => {});
    return next;
  }

  async #run(): Promise<void> {
    let backoff = this.#opts.initialBackoffMs;
    let first = true;
    while (!this.#closed) {
      this.#state = "connecting";
      try {
        const conn = await Deno.connect({ transport: "unix", path: this.#opts.path });
        if (this.#closed) {
          conn.close();
          break;
        }
        this.#conn = conn;
        this.#state = "connected";
        this.#connectedSince = this.#opts.now();
        this.#lastError = null;
        if (!first) this.#reconnects++;
        first = false;
        backoff = this.#opts.initialBackoffMs;
        this.#opts.log.info("signal_connected", { path: this.#opts.path });
        this.#afterConnect();
        await this.#readLoop(conn);
        this.#lastError = "connection closed by signal-cli";
      } catch (e) {
        this.#lastError = `cannot connect to ${this.#opts.path}: ${errText(e)}`;
      }
      this.#conn = null;
      this.#connectedSince = null;
      this.#failPending(this.#lastError ?? "signal-cli connection lost");
      if (this.#closed) break;
      this.#state = "disconnected";
      this.#opts.log.warn("signal_disconnected", {
        error: this.#lastError,
        retry_in_ms: backoff,
      });
      await this.#sleep(backoff);
      backoff = Math.min(backoff * 2, this.#opts.maxBackoffMs);
    }
    this.#state = "closed";
  }

  #afterConnect(): void {
    this.request<{ version?: unknown }>("version").then((r) => {
      if (typeof r?.version === "string") this.#version = r.version;
      this.#opts.log.info("signal_version", { version: this.#version });
    }).catch((e) => {
      this.#opts.log.warn("signal_version_failed", { error: errText(e) });
    }).finally(() => {
      try {
        this.#onConnect();
      } catch (e) {
        this.#opts.log.error("signal_on_connect_failed", { error: errText(e) });
      }
    });
  }

  #sleep(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const t = setTimeout(() => {
        this.#wake = null;
        resolve();
      }, ms);
      this.#wake = () => {
        clearTimeout(t);
        this.#wake = null;
        resolve();
      };
    });
  }

  async #readLoop(conn: Deno.Conn): Promise<void> {
    const lines = new LineSplitter({ maxLineBytes: this.#opts.maxLineBytes, terminators: "lf" });
    const chunk = new Uint8Array(64 * 1024);
    while (true) {
      let n: number | null;
      try {
        n = await conn.read(chunk);
      } catch {
        n = null;
      }
      if (n === null) {
        try {
          conn.close();
        } catch { /* closed */ }
        return;
      }
      for (const item of lines.push(chunk.subarray(0, n))) {
        if ("line" in item) this.#line(item.line);
        else this.#skipped(item);
      }
    }
  }

  /** An over-long line was skipped: say what it was; fail its request at once if it was an answer. */
  #skipped(item: SkippedLine): void {
    const method = /"method"\s*:\s*"([A-Za-z]{1,40})"/.exec(item.head)?.[1];
    const idText = /"id"\s*:\s*(\d{1,15})\s*\}\s*$/.exec(item.tail)?.[1] ??
      /"id"\s*:\s*(\d{1,15})\s*,/.exec(item.head)?.[1];
    const id = idText === undefined ? undefined : Number(idText);
    this.#opts.log.warn("signal_line_too_long", {
      bytes: item.skipped,
      limit: this.#opts.maxLineBytes,
      ...(method ? { method } : {}),
      ...(id !== undefined ? { id } : {}),
    });
    const p = id === undefined ? undefined : this.#pending.get(id);
    if (!p) return;
    this.#pending.delete(id!);
    clearTimeout(p.timer);
    p.reject(
      new RpcError(
        -32603,
        `signal-cli's answer to ${p.method} was ${item.skipped} bytes, over the ` +
          `${this.#opts.maxLineBytes}-byte line limit; it was skipped`,
      ),
    );
  }

  #line(line: string): void {
    if (line.trim() === "") return;
    let msg: unknown;
    try {
      msg = JSON.parse(line);
    } catch {
      this.#opts.log.warn("signal_unparseable_line", { bytes: line.length });
      return;
    }
    const items = Array.isArray(msg) ? msg : [msg];
    for (const item of items) this.#message(item);
  }

  #message(item: unknown): void {
    if (typeof item !== "object" || item === null) return;
    const m = item as Record<string, unknown>;
    if (typeof m.method === "string") {
      try {
        this.#onNotification({ method: m.method, params: m.params });
      } catch (e) {
        this.#opts.log.error("signal_notification_handler_failed", { error: errText(e) });
      }
      return;
    }
    if (typeof m.id !== "number") {
      if (m.error) {
        const err = m.error as Record<string, unknown>;
        this.#opts.log.warn("signal_error_without_id", { code: err.code });
      }
      return;
    }
    const p = this.#pending.get(m.id);
    if (!p) return; // timed out already, or not ours
    this.#pending.delete(m.id);
    clearTimeout(p.timer);
    if (m.error && typeof m.error === "object") {
      const e = m.error as Record<string, unknown>;
      p.reject(
        new RpcError(
          typeof e.code === "number" ? e.code : -32603,
          typeof e.message === "string" ? e.message : "unknown error",
          e.data,
        ),
      );
    } else {
      p.resolve(m.result);
    }
  }

  #failPending(reason: string): void {
    for (const [id, p] of this.#pending) {
      clearTimeout(p.timer);
      p.reject(new TransportUnavailableError(`signal-cli ${p.method} failed: ${reason}`));
      this.#pending.delete(id);
    }
  }
}

function errText(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
