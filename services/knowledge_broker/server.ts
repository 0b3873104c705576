/**
 * The knowledge broker server: the only joi process allowed to run
 * `sudo -u <channel user> joi-retrieve`. It has no network (its unit sets
 * `PrivateNetwork=yes`; its Deno flags admit one Unix socket and one binary),
 * so the network-facing joi service can drop every privilege sudo needs
 * (`NoNewPrivileges=yes`, an empty capability set) and still search the
 * knowledge of the channel the mesh validated.
 *
 * Each connection is read line by line; a line over the size limit or not
 * matching the protocol gets an `invalid_query` answer and the connection is
 * closed. At most `maxConcurrent` retrievals run at once.
 *
 * @module
 */
import type { Logger } from "../common/log.ts";
import type { RetrieveOutcome } from "../joi/knowledge/caller.ts";
import { type BrokerResponse, INVALID, MAX_REQUEST_BYTES, RequestSchema } from "./protocol.ts";

/** Anything that retrieves for a channel (the sudo caller in production). */
export interface Retriever {
  retrieve(channel: string, type: string, query: unknown): Promise<RetrieveOutcome>;
}

/** Options of {@link serveKnowledge}. */
export interface KnowledgeServerOptions {
  /** Socket path (created 0660; the directory decides who may connect). */
  socketPath: string;
  /** The retriever, asked per request (so a reloaded config takes effect). */
  retriever: () => Retriever;
  /** Logger. */
  logger: Logger;
  /** Retrievals running at once (default 4). */
  maxConcurrent?: number;
}

/** A running broker. */
export interface KnowledgeServer {
  /** Stops accepting and closes open connections. */
  close(): Promise<void>;
}

class Semaphore {
  #free: number;
  #waiting: (() => void)[] = [];
  constructor(n: number) {
    this.#free = n;
  }
  async acquire(): Promise<() => void> {
    if (this.#free > 0) this.#free--;
    else await new Promise<void>((r) => this.#waiting.push(r));
    return () => {
      const next = this.#waiting.shift();
      if (next) next();
      else this.#free++;
    };
  }
}

const enc = new TextEncoder();

async function handle(
  conn: Deno.UnixConn,
  o: KnowledgeServerOptions,
  sem: Semaphore,
): Promise<void> {
  const log = o.logger;
  const write = async (r: BrokerResponse) => {
    await conn.write(enc.encode(JSON.stringify(r) + "\n"));
  };
  const reader = conn.readable.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  try {
    while (true) {
      const { value, done } = await reader.read();
      if (done) return;
      buf += value;
      if (buf.length > MAX_REQUEST_BYTES && !buf.slice(0, MAX_REQUEST_BYTES + 1).includes("\n")) {
        log.security("knowledge_request_too_large", { bytes: buf.length });
        await write({ id: null, outcome: INVALID });
        return;
      }
      let nl: number;
      while ((nl = buf.indexOf("\n")) >= 0) {
        const line = buf.slice(0, nl);
        buf = buf.slice(nl + 1);
        let parsed;
        try {
          parsed = RequestSchema.safeParse(JSON.parse(line));
        } catch {
          parsed = undefined;
        }
        if (!parsed?.success) {
          log.security("knowledge_request_malformed", { bytes: line.length });
          await write({ id: null, outcome: INVALID });
          return;
        }
        const req = parsed.data;
        const release = await sem.acquire();
        let outcome: RetrieveOutcome;
        try {
          outcome = await o.retriever().retrieve(req.channel, req.type, req.query);
        } catch (e) {
          log.error("knowledge_retrieve_crashed", { error: (e as Error).name });
          outcome = { status: "error", results: [], reason: "failed" };
        } finally {
          release();
        }
        await write({ id: req.id, outcome });
      }
    }
  } catch {
    // peer went away
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}

/** Starts the broker on a Unix socket (replacing a stale socket file). */
export async function serveKnowledge(o: KnowledgeServerOptions): Promise<KnowledgeServer> {
  try {
    const st = await Deno.lstat(o.socketPath);
    if (st.isSocket) await Deno.remove(o.socketPath);
  } catch (e) {
    if (!(e instanceof Deno.errors.NotFound)) throw e;
  }
  const listener = Deno.listen({ transport: "unix", path: o.socketPath });
  await Deno.chmod(o.socketPath, 0o660);
  const sem = new Semaphore(o.maxConcurrent ?? 4);
  const open = new Set<Deno.UnixConn>();
  const loop = (async () => {
    try {
      for await (const conn of listener) {
        open.add(conn);
        handle(conn, o, sem).finally(() => open.delete(conn));
      }
    } catch {
      // listener closed
    }
  })();
  o.logger.info("knowledge_broker_listening", { socket: o.socketPath });
  return {
    async close() {
      listener.close();
      for (const c of open) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      await loop;
    },
  };
}
