/**
 * A protocol-faithful stand-in for `signal-cli daemon --socket PATH
 * --receive-mode on-connection` (signal-cli 0.14.x), for tests and benchmarks.
 *
 * It speaks JSON-RPC 2.0, one object per `\n`-terminated line, on a real Unix
 * socket, and reproduces what the mesh must survive (see
 * `/work/shared/design/signal-cli.md`): responses out of order (requests can be
 * held and released), batches, `-32700` on unparseable lines, envelopes with
 * `sourceNumber: null`, duplicates, exception-only notifications, partial send
 * failures, error `-5` with `retryAfterSeconds`, daemon restart and a stale
 * socket file left behind by a killed daemon.
 *
 * With `on-connection`, envelopes pushed while no client is connected wait on
 * "the Signal server" and are delivered when a client connects; an envelope is
 * acknowledged (removed) once written to a connected client.
 *
 * It listens on a socket path ({@link SignalCliPeer.start}), or, as signal-cli
 * does under systemd's socket activation (`StandardInput=socket`), on the
 * listening socket it inherits as file descriptor 0
 * ({@link SignalCliPeer.inherit}; see `daemon_main.ts`).
 *
 * @module
 */
import net from "node:net";

/** A JSON-RPC error object. */
export interface RpcErrorObject {
  code: number;
  message: string;
  data?: unknown;
}

/** What a `send` handler returns: a result, or an error to answer with. */
export type SendOutcome = { result: unknown } | { error: RpcErrorObject };

/** One recorded request from a client. */
export interface RecordedRequest {
  method: string;
  params: Record<string, unknown>;
  id: unknown;
  /** When it arrived (ms since the epoch). */
  at: number;
  /** What it was answered (`send`: `{timestamp, results}`), once answered with a result. */
  result?: unknown;
}

/** A group as `listGroups` returns it. */
export interface PeerGroup {
  id: string;
  name: string;
  members: { number: string | null; uuid: string; isAdmin?: boolean }[];
}

/** Options of {@link SignalCliPeer.start}. */
export interface PeerOptions {
  /** Socket path (a slot of tests/_helpers/sockets.ts). */
  path: string;
  /** The account the daemon runs for. */
  account?: string;
  /** That account's ACI (listed among every group's members, as signal-cli does). */
  accountUuid?: string;
  /** What `version` reports. */
  version?: string;
  /** Push notifications in `subscribeReceive` form (`params.subscription` + `result`). */
  subscriptionForm?: boolean;
}

const encoder = new TextEncoder();

/** A client connection: what the peer needs of a `Deno.Conn`. */
export interface PeerConn {
  read(p: Uint8Array): Promise<number | null>;
  write(p: Uint8Array): Promise<number>;
  close(): void;
}

/** The stand-in daemon. */
export class SignalCliPeer {
  readonly path: string;
  readonly account: string;
  /** The account's ACI (what quotes and reactions of its messages, and mentions of it, name). */
  readonly accountUuid: string;
  version: string;
  subscriptionForm: boolean;
  /** Every request received, in arrival order. */
  readonly requests: RecordedRequest[] = [];
  /** Groups returned by `listGroups`. */
  groups: PeerGroup[] = [];
  /**
   * Decides the outcome of each `send`. Default: SUCCESS for each recipient
   * (or each group member).
   */
  onSend: (params: Record<string, unknown>) => SendOutcome = (p) => ({
    result: this.successResult(p),
  });
  /** Number of connections accepted so far. */
  connections = 0;
  /** Called with each request as it arrives. */
  onRequest: (r: RecordedRequest) => void = () => {};

  #listener: { close(): void } | null = null;
  #conns = new Set<PeerConn>();
  #pending: unknown[] = [];
  #holds = new Map<string, Promise<void>>();
  #waiters: { pred: () => boolean; resolve: () => void }[] = [];
  #serving: Promise<void> | null = null;
  #timestamp = 1_700_000_000_000;
  #writeChains = new WeakMap<PeerConn, Promise<void>>();

  private constructor(options: PeerOptions) {
    this.path = options.path;
    this.account = options.account ?? "+15559990000";
    this.accountUuid = options.accountUuid ?? "0e0e0e0e-0000-4000-8000-00000000ac01";
    this.version = options.version ?? "0.14.6";
    this.subscriptionForm = options.subscriptionForm ?? false;
  }

  /** Starts a peer listening on `options.path` (a stale file there is removed). */
  static start(options: PeerOptions): SignalCliPeer {
    const peer = new SignalCliPeer(options);
    peer.listen();
    return peer;
  }

  /**
   * A peer serving the listening socket it inherited as file descriptor `fd`
   * (systemd's socket activation with `StandardInput=socket` hands it over as
   * 0), never binding a path of its own.
   */
  static inherit(options: Omit<PeerOptions, "path"> & { fd?: number }): SignalCliPeer {
    const peer = new SignalCliPeer({ ...options, path: `fd:${options.fd ?? 0}` });
    const server = net.createServer();
    const conns = acceptQueue<PeerConn>();
    server.on("connection", (socket) => conns.push(nodeConn(socket)));
    server.on("error", (e) => conns.fail(e));
    server.listen({ fd: options.fd ?? 0 });
    peer.#listener = {
      close: () => {
        server.close();
        conns.end();
      },
    };
    peer.#serving = peer.#accept(conns.iterable);
    return peer;
  }

  /** (Re)binds the socket, removing a stale file as systemd's RuntimeDirectory would. */
  listen(): void {
    if (this.#listener) return;
    try {
      Deno.removeSync(this.path);
    } catch { /* absent */ }
    const listener = Deno.listen({ transport: "unix", path: this.path });
    this.#listener = listener;
    this.#serving = this.#accept(listener);
  }

  /** True while a client is connected. */
  get connected(): boolean {
    return this.#conns.size > 0;
  }

  /**
   * Stops the daemon: connections and the listener close. With `stale`, the
   * socket file is left behind as a killed daemon leaves it (connects fail
   * with ECONNREFUSED until {@link listen}).
   */
  async stop(options: { stale?: boolean } = {}): Promise<void> {
    const listener = this.#listener;
    this.#listener = null;
    listener?.close();
    for (const c of this.#conns) {
      try {
        c.close();
      } catch { /* closed */ }
    }
    this.#conns.clear();
    await this.#serving?.catch(() => {});
    this.#serving = null;
    if (options.stale) {
      // Deno unlinks nothing on close; make sure a plain file stands there.
      try {
        Deno.statSync(this.path);
      } catch {
        Deno.writeTextFileSync(this.path, "");
      }
    } else {
      try {
        Deno.removeSync(this.path);
      } catch { /* absent */ }
    }
  }

  /** A fresh, increasing message timestamp (ms). */
  nextTimestamp(): number {
    return ++this.#timestamp;
  }

  /**
   * Pushes an envelope (or an exception-only notification) as "the Signal
   * server" would: delivered now if a client is connected, else on connection.
   */
  push(envelope: Record<string, unknown> | null, exception?: { message: string; type: string }) {
    const inner: Record<string, unknown> = { account: this.account };
    if (envelope) inner.envelope = envelope;
    if (exception) inner.exception = exception;
    const params = this.subscriptionForm ? { subscription: 0, result: inner } : inner;
    this.#pending.push({ jsonrpc: "2.0", method: "receive", params });
    this.#flush();
  }

  /** Sends a raw line to every connected client (protocol abuse tests). */
  async pushRaw(line: string): Promise<void> {
    for (const c of this.#conns) await this.#write(c, line);
  }

  /** Writes one line; writes to a connection never interleave. */
  #write(conn: PeerConn, line: string): Promise<void> {
    const prev = this.#writeChains.get(conn) ?? Promise.resolve();
    const next = prev.then(() => writeAll(conn, encoder.encode(line + "\n")));
    this.#writeChains.set(conn, next.catch(() => {}));
    return next;
  }

  /**
   * Holds responses to `method` until the returned function is called, so a
   * later request can be answered first (out-of-order responses).
   */
  hold(method: string): () => void {
    let release!: () => void;
    this.#holds.set(method, new Promise<void>((r) => (release = r)));
    return () => {
      this.#holds.delete(method);
      release();
    };
  }

  /** Resolves once `pred` holds (checked after every request and connection); rejects after `limitMs`. */
  waitFor(pred: () => boolean, limitMs = 60_000): Promise<void> {
    if (pred()) return Promise.resolve();
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((w) => w.pred !== pred);
        reject(new Error(`signal-cli peer: condition not reached within ${limitMs} ms`));
      }, limitMs);
      this.#waiters.push({
        pred,
        resolve: () => {
          clearTimeout(timer);
          resolve();
        },
      });
    });
  }

  /** Requests of one method. */
  calls(method: string): RecordedRequest[] {
    return this.requests.filter((r) => r.method === method);
  }

  /** The default all-SUCCESS result of a `send`. */
  successResult(params: Record<string, unknown>): unknown {
    return {
      timestamp: this.nextTimestamp(),
      results: this.addressesOf(params).map((a) => ({ recipientAddress: a, type: "SUCCESS" })),
    };
  }

  /** The recipient addresses a `send` targets (group members for a group). */
  addressesOf(params: Record<string, unknown>): { uuid: string | null; number: string | null }[] {
    if (typeof params.groupId === "string") {
      const g = this.groups.find((x) => x.id === params.groupId);
      return (g?.members ?? []).map((m) => ({ uuid: m.uuid, number: m.number }));
    }
    const rec = Array.isArray(params.recipient) ? params.recipient : [params.recipient];
    return rec.map((r) => {
      const s = String(r);
      return s.startsWith("+") ? { uuid: null, number: s } : { uuid: s, number: null };
    });
  }

  #notify(): void {
    this.#waiters = this.#waiters.filter((w) => {
      if (w.pred()) {
        w.resolve();
        return false;
      }
      return true;
    });
  }

  #flush(): void {
    const conn = this.#conns.values().next().value;
    if (!conn) return;
    while (this.#pending.length) {
      const msg = this.#pending.shift();
      // not delivered (the client died under us): keep it on "the server"
      this.#write(conn, JSON.stringify(msg)).catch(() => this.#pending.unshift(msg));
    }
  }

  async #accept(listener: AsyncIterable<PeerConn>): Promise<void> {
    try {
      for await (const conn of listener) {
        this.connections++;
        this.#conns.add(conn);
        this.#handle(conn).catch(() => {}).finally(() => {
          this.#conns.delete(conn);
          this.#notify();
        });
        this.#flush();
        this.#notify();
      }
    } catch { /* listener closed */ }
  }

  async #handle(conn: PeerConn): Promise<void> {
    const decoder = new TextDecoder();
    let buf = "";
    const chunk = new Uint8Array(64 * 1024);
    while (true) {
      let n: number | null;
      try {
        n = await conn.read(chunk);
      } catch {
        return;
      }
      if (n === null) return;
      buf += decoder.decode(chunk.subarray(0, n), { stream: true });
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        this.#line(conn, line);
      }
    }
  }

  #line(conn: PeerConn, line: string): void {
    let parsed: unknown;
    try {
      if (line.trim() === "") throw new Error("empty");
      parsed = JSON.parse(line);
    } catch {
      this.#reply(conn, {
        jsonrpc: "2.0",
        error: { code: -32700, message: "Failed to parse JSON-RPC request" },
        id: null,
      });
      return;
    }
    const items = Array.isArray(parsed) ? parsed : [parsed];
    for (const item of items) this.#request(conn, item);
  }

  #request(conn: PeerConn, item: unknown): void {
    const rec = (typeof item === "object" && item !== null ? item : {}) as Record<string, unknown>;
    if (typeof rec.method !== "string") {
      this.#reply(conn, {
        jsonrpc: "2.0",
        error: { code: -32600, message: "Invalid request" },
        id: rec.id ?? null,
      });
      return;
    }
    const req = item as { method: string; params?: unknown; id?: unknown };
    const params =
      (typeof req.params === "object" && req.params !== null ? req.params : {}) as Record<
        string,
        unknown
      >;
    const recorded: RecordedRequest = { method: req.method, params, id: req.id, at: Date.now() };
    this.requests.push(recorded);
    this.onRequest(recorded);
    const answer = this.#dispatch(req.method, params);
    if ("result" in answer) recorded.result = answer.result;
    this.#notify();
    if (req.id === undefined) return; // a notification gets no response
    const hold = this.#holds.get(req.method) ?? Promise.resolve();
    hold.then(() => {
      this.#reply(conn, { jsonrpc: "2.0", ...answer, id: req.id });
    });
  }

  #dispatch(method: string, params: Record<string, unknown>): SendOutcome {
    switch (method) {
      case "version":
        return { result: { version: this.version } };
      case "send": {
        if (params.groupId === undefined && params.recipient === undefined) {
          return { error: { code: -32602, message: "No recipients given" } };
        }
        return this.onSend(params);
      }
      case "listGroups":
        return {
          result: this.groups.map((g) => ({
            id: g.id,
            name: g.name,
            description: "",
            isMember: true,
            isBlocked: false,
            // signal-cli lists the account itself among the members
            members: [
              { number: this.account, uuid: this.accountUuid, isAdmin: true },
              ...g.members.map((m) => ({ ...m, isAdmin: m.isAdmin ?? false })),
            ],
            pendingMembers: [],
            requestingMembers: [],
            admins: [],
            banned: [],
          })),
        };
      case "sendTyping":
      case "sendReceipt":
        return { result: {} };
      default:
        return { error: { code: -32601, message: "Method not implemented" } };
    }
  }

  #reply(conn: PeerConn, msg: unknown): void {
    this.#write(conn, JSON.stringify(msg)).catch(() => {});
  }
}

async function writeAll(conn: PeerConn, bytes: Uint8Array): Promise<void> {
  let off = 0;
  while (off < bytes.length) off += await conn.write(bytes.subarray(off));
}

/** An async iterable fed by callbacks (node's `connection` events). */
function acceptQueue<T>() {
  const items: T[] = [];
  let wake: (() => void) | null = null;
  let done = false;
  let error: unknown = null;
  const poke = () => {
    wake?.();
    wake = null;
  };
  return {
    push(item: T) {
      items.push(item);
      poke();
    },
    end() {
      done = true;
      poke();
    },
    fail(e: unknown) {
      error = e;
      done = true;
      poke();
    },
    iterable: {
      async *[Symbol.asyncIterator]() {
        while (true) {
          const item = items.shift();
          if (item !== undefined) {
            yield item;
            continue;
          }
          if (error) throw error;
          if (done) return;
          await new Promise<void>((r) => (wake = r));
        }
      },
    } as AsyncIterable<T>,
  };
}

/** A node socket as a {@link PeerConn}. */
function nodeConn(socket: net.Socket): PeerConn {
  const chunks: Uint8Array[] = [];
  let ended = false;
  let wake: (() => void) | null = null;
  const poke = () => {
    wake?.();
    wake = null;
  };
  socket.on("data", (d: Uint8Array) => {
    chunks.push(new Uint8Array(d));
    poke();
  });
  socket.on("end", () => {
    ended = true;
    poke();
  });
  socket.on("close", () => {
    ended = true;
    poke();
  });
  socket.on("error", () => {
    ended = true;
    poke();
  });
  return {
    async read(p: Uint8Array): Promise<number | null> {
      while (chunks.length === 0) {
        if (ended) return null;
        await new Promise<void>((r) => (wake = r));
      }
      const head = chunks[0]!;
      const n = Math.min(p.length, head.length);
      p.set(head.subarray(0, n));
      if (n === head.length) chunks.shift();
      else chunks[0] = head.subarray(n);
      return n;
    },
    write(p: Uint8Array): Promise<number> {
      return new Promise((resolve, reject) => {
        if (socket.destroyed) return reject(new Error("connection closed"));
        socket.write(p, (err) => (err ? reject(err) : resolve(p.length)));
      });
    },
    close() {
      socket.destroy();
    },
  };
}

/** Fields of a test envelope. */
export interface EnvelopeSpec {
  number: string | null;
  uuid: string;
  timestamp: number;
  text?: string | null;
  groupId?: string;
  attachments?: Record<string, unknown>[];
  name?: string;
  /** A quote-reply of the message sent at `id` by `author` (signal-cli's `quote`). */
  quote?: { id: number; author: { number: string | null; uuid: string }; text?: string | null };
  /** A reaction to the message sent at `targetSentTimestamp` by `author`. */
  reaction?: {
    emoji: string;
    author: { number: string | null; uuid: string };
    targetSentTimestamp: number;
    isRemove?: boolean;
  };
  /** `mentions[]`: each `{number, uuid, start, length}` (the text holds U+FFFC there). */
  mentions?: { number: string | null; uuid: string | null; start: number; length: number }[];
}

/** An incoming data message as signal-cli 0.14 prints it. */
export function dataEnvelope(s: EnvelopeSpec): Record<string, unknown> {
  const dataMessage: Record<string, unknown> = {
    timestamp: s.timestamp,
    message: s.text ?? null,
    expiresInSeconds: 0,
    viewOnce: false,
  };
  if (s.attachments?.length) dataMessage.attachments = s.attachments;
  if (s.quote) {
    dataMessage.quote = {
      id: s.quote.id,
      author: s.quote.author.number ?? s.quote.author.uuid,
      authorNumber: s.quote.author.number,
      authorUuid: s.quote.author.uuid,
      text: s.quote.text ?? null,
      attachments: [],
    };
  }
  if (s.reaction) {
    dataMessage.reaction = {
      emoji: s.reaction.emoji,
      targetAuthor: s.reaction.author.number ?? s.reaction.author.uuid,
      targetAuthorNumber: s.reaction.author.number,
      targetAuthorUuid: s.reaction.author.uuid,
      targetSentTimestamp: s.reaction.targetSentTimestamp,
      isRemove: s.reaction.isRemove ?? false,
    };
  }
  if (s.mentions?.length) {
    dataMessage.mentions = s.mentions.map((m) => ({ name: m.number ?? m.uuid, ...m }));
  }
  if (s.groupId) {
    dataMessage.groupInfo = { groupId: s.groupId, groupName: "g", revision: 3, type: "DELIVER" };
  }
  return {
    source: s.number ?? s.uuid,
    sourceNumber: s.number,
    sourceUuid: s.uuid,
    sourceName: s.name ?? "Someone",
    sourceDevice: 1,
    timestamp: s.timestamp,
    serverReceivedTimestamp: s.timestamp + 5,
    serverDeliveredTimestamp: s.timestamp + 9,
    dataMessage,
  };
}

/** A delivery/read receipt envelope. */
export function receiptEnvelope(s: { number: string; uuid: string; timestamp: number }) {
  return {
    source: s.number,
    sourceNumber: s.number,
    sourceUuid: s.uuid,
    sourceDevice: 1,
    timestamp: s.timestamp,
    receiptMessage: { when: s.timestamp, isDelivery: true, isRead: false, timestamps: [1] },
  };
}

/** A typing indicator envelope. */
export function typingEnvelope(s: { number: string; uuid: string; timestamp: number }) {
  return {
    source: s.number,
    sourceNumber: s.number,
    sourceUuid: s.uuid,
    sourceDevice: 1,
    timestamp: s.timestamp,
    typingMessage: { action: "STARTED", timestamp: s.timestamp },
  };
}

/** A sync message (the account's own other device sent something). */
export function syncEnvelope(s: { number: string; uuid: string; timestamp: number }) {
  return {
    source: s.number,
    sourceNumber: s.number,
    sourceUuid: s.uuid,
    sourceDevice: 2,
    timestamp: s.timestamp,
    syncMessage: {
      sentMessage: { destination: "+15550000009", timestamp: s.timestamp, message: "x" },
    },
  };
}

/** The bytes of a `data:` URI the mesh handed to `send` (a voice note, a long text). */
export function dataUriBytes(uri: string): Uint8Array {
  return Uint8Array.from(atob(uri.split(",")[1] ?? ""), (c) => c.charCodeAt(0));
}

/** An attachment as signal-cli 0.14 prints it (the file lies at `<data dir>/attachments/<id>`). */
export function attachment(
  contentType: string,
  id: string,
  size: number,
  filename: string | null = null,
): Record<string, unknown> {
  return {
    contentType,
    filename,
    id,
    size,
    width: null,
    height: null,
    caption: null,
    uploadTimestamp: 1,
  };
}

/** A phone's voice note attachment: `audio/aac`, no filename. */
export function voiceAttachment(id: string, size: number): Record<string, unknown> {
  return attachment("audio/aac", id, size);
}

/** The attachment of a long text: the whole body as `text/x-signal-plain`. */
export function longTextAttachment(id: string, size: number): Record<string, unknown> {
  return attachment("text/x-signal-plain", id, size);
}
