/**
 * joi's side of knowledge retrieval: one connection to the channel's retrieve
 * socket per query. Production: `/run/joi-retrieve/<channel>.sock`, a systemd
 * socket (`Accept=yes`) that starts one `joi-retrieve` as the channel user per
 * connection; only joi's user may connect. Local run: the knowledge broker's
 * socket of the same name, which runs it through sudo.
 *
 * Before anything is sent: the channel must be in `channel_users.yaml`
 * (default deny) and its user must exist; the query is validated and
 * re-serialised canonically (a parser bug stays in joi). What comes back is
 * read up to a hard cap within a timeout and validated field by field: it must
 * have been read under the channel user's uid and only from folders that user
 * may read. Failures are error outcomes with a reason, never exceptions, and
 * nothing retrieve wrote to stderr (the journal) reaches the agent.
 *
 * @module
 */
import type { Logger } from "../../common/log.ts";
import { retrieveSocketPath } from "../../common/permissions/mod.ts";
import type { Recipients } from "../../common/policy/recipients.ts";
import { passwdUids } from "../config/passwd.ts";
import { knowledgeFolders } from "./folders.ts";
import {
  MAX_OUTPUT_BYTES,
  MAX_REQUEST_BYTES,
  parseRequest,
  type Query,
  QueryError,
  requestLine,
  validateQuery,
} from "./retrieve_protocol.ts";
import {
  type RetrieveFailure,
  type RetrieveOutcome,
  validateRetrieveOutput,
} from "./retrieve_output.ts";

/** Default bound of one retrieval: the unit's own 30 s plus the time to start it. */
export const RETRIEVE_TIMEOUT_MS = 35_000;

/** The channel configuration a retrieval is judged by (joi's current policies). */
export interface RetrieveChannels {
  /** channel_users.yaml's `allowed_channel_users` (default deny). */
  allowedChannelUsers: Readonly<Record<string, string>>;
  /** recipients.yaml, to check each result comes from a folder the user may read. */
  recipients: Recipients;
}

/** Options of {@link RetrieveClient}. */
export interface RetrieveClientOptions {
  /** The folder of the channels' retrieve sockets (`--retrieve-socket-dir`). */
  socketDir: string;
  /** The current channel configuration (asked per query, so a reload takes effect). */
  channels: () => RetrieveChannels;
  /** uid of a user name, undefined when it does not exist (default: /etc/passwd). */
  uidOf?: ((user: string) => number | undefined) | undefined;
  /** Logger. */
  logger: Logger;
  /** Timeout of one retrieval (default {@link RETRIEVE_TIMEOUT_MS}). */
  timeoutMs?: number | undefined;
}

/** Reads `/etc/passwd` for a user's uid. */
export function passwdUid(user: string, passwd = "/etc/passwd"): number | undefined {
  return passwdUids(Deno.readTextFileSync(passwd)).get(user);
}

const fail = (reason: RetrieveFailure): RetrieveOutcome => ({
  status: "error",
  results: [],
  reason,
});

/** Retrieves knowledge for the agent, as the channel's user, through its socket. */
export class RetrieveClient {
  readonly #o: RetrieveClientOptions;

  /** A client for the sockets in `options.socketDir`. */
  constructor(options: RetrieveClientOptions) {
    this.#o = options;
  }

  /** Retrieves for `channel`: `type` is search/get/list, `query` the object (e.g. from the LLM). */
  async retrieve(channel: string, type: string, query: unknown): Promise<RetrieveOutcome> {
    const log = this.#o.logger;
    const { allowedChannelUsers, recipients } = this.#o.channels();
    const user = Object.hasOwn(allowedChannelUsers, channel)
      ? allowedChannelUsers[channel]
      : undefined;
    if (user === undefined) {
      log.security("retrieve_denied", { channel, reason: "channel not in allowed_channel_users" });
      return fail("denied");
    }
    const uid = (this.#o.uidOf ?? passwdUid)(user);
    if (uid === undefined) {
      log.security("retrieve_denied", { channel, user, reason: "channel user does not exist" });
      return fail("denied");
    }
    let q: Query;
    let line: string;
    try {
      q = validateQuery(type, query);
      line = requestLine(q);
      // what retrieve will check, checked here first: a parser bug stays in joi
      parseRequest(line.slice(0, -1));
      if (new TextEncoder().encode(line).length > MAX_REQUEST_BYTES) {
        throw new QueryError("request too large");
      }
    } catch (e) {
      log.warn("retrieve_invalid_query", {
        channel,
        reason: e instanceof QueryError ? e.message : "unserialisable",
      });
      return fail("invalid_query");
    }
    const started = performance.now();
    const exchanged = await exchange(
      retrieveSocketPath(this.#o.socketDir, channel),
      line,
      this.#o.timeoutMs ?? RETRIEVE_TIMEOUT_MS,
    );
    const ms = Math.round(performance.now() - started);
    if (exchanged.kind === "unreachable") {
      log.error("retrieve_unreachable", { channel, user, error: exchanged.error, ms });
      return fail("failed");
    }
    if (exchanged.kind === "timeout") {
      log.error("retrieve_timeout", { channel, user, type: q.type, ms });
      return fail("timeout");
    }
    if (exchanged.kind === "too_large") {
      log.security("retrieve_output_too_large", { channel, user, type: q.type });
      return fail("output_too_large");
    }
    if (exchanged.bytes.length === 0) {
      // retrieve refused or failed: its reason is in the journal (or the broker's log)
      log.error("retrieve_failed", { channel, user, type: q.type, ms });
      return fail("failed");
    }
    const readable = knowledgeFolders(recipients)
      .filter((f) => f.readers.includes(user))
      .map((f) => f.path);
    const parsed = validateRetrieveOutput(exchanged.bytes, user, uid, readable);
    if (typeof parsed === "string") {
      log.security("retrieve_invalid_output", { channel, user, problem: parsed });
      return fail("invalid_output");
    }
    log.debug("retrieve_ok", { channel, type: q.type, results: parsed.results.length, ms });
    return parsed;
  }
}

/** What one exchange on a socket gave. */
type Exchange =
  | { kind: "answer"; bytes: Uint8Array }
  | { kind: "unreachable"; error: string }
  | { kind: "timeout" }
  | { kind: "too_large" };

/**
 * Connects to `path`, writes `line` (or `raw` bytes), reads until the peer
 * closes: at most {@link MAX_OUTPUT_BYTES} plus a margin, within `timeoutMs`
 * for the whole exchange. The connection is always closed.
 */
export async function exchange(
  path: string,
  line: string,
  timeoutMs: number,
  raw?: Uint8Array,
): Promise<Exchange> {
  let conn: Deno.UnixConn;
  try {
    conn = await Deno.connect({ transport: "unix", path });
  } catch (e) {
    return { kind: "unreachable", error: e instanceof Error ? e.name : "error" };
  }
  let expired = false;
  const timer = setTimeout(() => {
    expired = true;
    try {
      conn.close();
    } catch { /* closed */ }
  }, timeoutMs);
  const cap = MAX_OUTPUT_BYTES + 4096;
  const chunks: Uint8Array[] = [];
  let size = 0;
  try {
    const bytes = raw ?? new TextEncoder().encode(line);
    for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
    await conn.closeWrite(); // the request is complete: the other side reads to its end
    const buf = new Uint8Array(64 * 1024);
    for (;;) {
      const n = await conn.read(buf);
      if (n === null) break;
      if (size + n > cap) return { kind: "too_large" };
      chunks.push(buf.slice(0, n));
      size += n;
    }
  } catch (e) {
    if (expired) return { kind: "timeout" };
    if (size === 0) return { kind: "unreachable", error: e instanceof Error ? e.name : "error" };
  } finally {
    clearTimeout(timer);
    try {
      conn.close();
    } catch { /* closed */ }
  }
  if (expired) return { kind: "timeout" };
  const out = new Uint8Array(size);
  let off = 0;
  for (const c of chunks) {
    out.set(c, off);
    off += c.length;
  }
  return { kind: "answer", bytes: out };
}
