/**
 * The local run's stand-in for systemd's socket activation of retrieval: one
 * Unix socket per channel (`<socket dir>/<channel>.sock`, the same paths and
 * protocol joi uses in production), and per connection one `joi-retrieve`
 * started through `sudo -n -u <channel user>`, its stdin the request line and
 * its stdout the answer. The broker judges nothing: joi validates the query
 * before sending and the answer after receiving; retrieve validates the query
 * again; the kernel decides what the channel user may read.
 *
 * Like the production units: at most `maxConnections` retrievals per channel
 * (a further connection is closed at once), a 30 s bound (SIGTERM, which sudo
 * relays, then SIGKILL), the request capped at one line, the answer at 1 MB.
 *
 * @module
 */
import { createHash } from "node:crypto";
import type { Logger } from "../common/log.ts";
import { readHead } from "../common/read_head.ts";
import { retrieveSocketPath } from "../common/permissions/mod.ts";
import { MAX_OUTPUT_BYTES, MAX_REQUEST_BYTES } from "../joi/knowledge/retrieve_protocol.ts";

/** Starts one retrieval as `user`: a child with piped stdin, stdout and stderr. */
export type SpawnRetrieve = (user: string) => Deno.ChildProcess;

/**
 * The local run's {@link SpawnRetrieve}: `sudo -n -u <user> -- <retrieveBin>
 * <fixed...>` with an empty environment, exactly the command line the
 * sudoers rule pins (the request goes on stdin).
 */
export function sudoRetrieve(
  sudoBin: string,
  retrieveBin: string,
  fixed: readonly string[],
): SpawnRetrieve {
  return (user) =>
    new Deno.Command(sudoBin, {
      args: ["-n", "-u", user, "--", retrieveBin, ...fixed],
      clearEnv: true,
      env: {},
      stdin: "piped",
      stdout: "piped",
      stderr: "piped",
    }).spawn();
}

/** Options of {@link serveRetrieveSockets}. */
export interface RetrieveSocketsOptions {
  /** Folder of the sockets (created by the caller, closed to others). */
  socketDir: string;
  /** The channels to listen for (their sockets are fixed at start). */
  channels: readonly string[];
  /** The current channel -> user mapping, asked per connection (reloads take effect). */
  userOf: (channel: string) => string | undefined;
  /** Starts retrieve as a user (sudo in the local run). */
  spawn: SpawnRetrieve;
  /** Logger. */
  logger: Logger;
  /** Retrievals at once per channel (default 4, as the units' MaxConnections). */
  maxConnections?: number | undefined;
  /** Bound of one retrieval (default 30 s, as the units' RuntimeMaxSec). */
  timeoutMs?: number | undefined;
}

/** The listening sockets. */
export interface RetrieveSockets {
  /** Stops accepting, ends running retrievals, removes the sockets. */
  close(): Promise<void>;
}

/** Time between SIGTERM and SIGKILL when a retrieval is stopped. */
export const KILL_GRACE_MS = 2_000;

const digest = (b: Uint8Array) => createHash("sha256").update(b).digest("hex").slice(0, 16);

/** Listens on each channel's socket (replacing a stale socket file). */
export async function serveRetrieveSockets(o: RetrieveSocketsOptions): Promise<RetrieveSockets> {
  const listeners: Deno.UnixListener[] = [];
  const open = new Set<Deno.UnixConn>();
  const children = new Set<Deno.ChildProcess>();
  const loops: Promise<void>[] = [];
  for (const channel of o.channels) {
    const path = retrieveSocketPath(o.socketDir, channel);
    try {
      const st = await Deno.lstat(path);
      if (st.isSocket) await Deno.remove(path);
    } catch (e) {
      if (!(e instanceof Deno.errors.NotFound)) throw e;
    }
    const listener = Deno.listen({ transport: "unix", path });
    await Deno.chmod(path, 0o660);
    listeners.push(listener);
    let running = 0;
    loops.push((async () => {
      try {
        for await (const conn of listener) {
          if (running >= (o.maxConnections ?? 4)) {
            o.logger.warn("retrieve_connection_refused", { channel, reason: "max connections" });
            conn.close();
            continue;
          }
          running++;
          open.add(conn);
          serve(conn, channel, o, children).finally(() => {
            running--;
            open.delete(conn);
          });
        }
      } catch {
        // listener closed
      }
    })());
  }
  o.logger.info("knowledge_broker_listening", { dir: o.socketDir, channels: o.channels.length });
  return {
    async close() {
      for (const l of listeners) l.close();
      for (const c of open) {
        try {
          c.close();
        } catch { /* closed */ }
      }
      // SIGTERM first (sudo relays it to retrieve), SIGKILL after a grace
      await Promise.all([...children].map(async (child) => {
        try {
          child.kill("SIGTERM");
        } catch { /* gone */ }
        const timer = setTimeout(() => {
          try {
            child.kill("SIGKILL");
          } catch { /* gone */ }
        }, KILL_GRACE_MS);
        await child.status.catch(() => {});
        clearTimeout(timer);
      }));
      await Promise.all(loops);
      for (const channel of o.channels) {
        await Deno.remove(retrieveSocketPath(o.socketDir, channel)).catch(() => {});
      }
    },
  };
}

/** Reads the request line (up to its newline, capped); undefined when it is longer. */
async function readRequest(conn: Deno.UnixConn): Promise<Uint8Array | undefined> {
  const buf = new Uint8Array(MAX_REQUEST_BYTES + 1);
  let used = 0;
  for (;;) {
    const nl = buf.subarray(0, used).indexOf(10);
    if (nl >= 0) return buf.slice(0, nl + 1);
    if (used >= buf.length) return undefined;
    const n = await conn.read(buf.subarray(used));
    if (n === null) return buf.slice(0, used);
    used += n;
  }
}

/** `p`, or undefined when it takes longer than `ms`. */
async function deadline<T>(p: Promise<T>, ms: number): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<undefined>((r) => timer = setTimeout(() => r(undefined), ms));
  try {
    return await Promise.race([p, late]);
  } finally {
    clearTimeout(timer);
  }
}

async function serve(
  conn: Deno.UnixConn,
  channel: string,
  o: RetrieveSocketsOptions,
  children: Set<Deno.ChildProcess>,
): Promise<void> {
  const log = o.logger;
  try {
    const user = o.userOf(channel);
    if (user === undefined) {
      log.security("retrieve_denied", { channel, reason: "channel not in allowed_channel_users" });
      return;
    }
    // the bound covers reading the request too: a peer that never ends its
    // line holds no slot for longer than a retrieval may take
    const request = await deadline(readRequest(conn), o.timeoutMs ?? 30_000);
    if (request === undefined || request.length === 0) {
      log.security("retrieve_request_refused", { channel, reason: "empty or longer than a line" });
      return;
    }
    const child = o.spawn(user);
    children.add(child);
    let grace: ReturnType<typeof setTimeout> | undefined;
    let timedOut = false;
    let tooLarge = false;
    const stop = () => {
      try {
        child.kill("SIGTERM"); // sudo relays SIGTERM to retrieve; a killed sudo would not
      } catch { /* gone */ }
      grace ??= setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch { /* gone */ }
      }, KILL_GRACE_MS);
    };
    const timer = setTimeout(() => {
      timedOut = true;
      stop();
    }, o.timeoutMs ?? 30_000);
    const feed = (async () => {
      const w = child.stdin.getWriter();
      try {
        await w.write(request);
        await w.close();
      } catch { /* retrieve exited early */ }
    })();
    const answer = (async () => {
      let size = 0;
      for await (const chunk of child.stdout) {
        if (tooLarge || timedOut) continue; // drain: past its bound an answer is void
        size += chunk.length;
        if (size > MAX_OUTPUT_BYTES + 4096) {
          tooLarge = true;
          stop();
          continue;
        }
        for (let off = 0; off < chunk.length;) off += await conn.write(chunk.subarray(off));
      }
    })();
    const stderr = readHead(child.stderr.getReader(), 16 * 1024);
    const [status, err] = await Promise.all([
      child.status,
      stderr,
      feed,
      answer.catch(() => stop()),
    ]).finally(() => {
      clearTimeout(timer);
      clearTimeout(grace);
      children.delete(child);
    });
    if (timedOut) log.error("retrieve_timeout", { channel, user });
    else if (tooLarge) log.security("retrieve_output_too_large", { channel, user });
    else if (!status.success) {
      // stderr stays here: its length and hash identify it in the log
      log.error("retrieve_failed", {
        channel,
        user,
        code: status.code,
        stderr_bytes: err.total,
        stderr_sha256: digest(err.bytes),
      });
    }
  } catch (e) {
    log.error("retrieve_connection_failed", { channel, error: (e as Error).name });
  } finally {
    try {
      conn.close();
    } catch { /* closed */ }
  }
}
