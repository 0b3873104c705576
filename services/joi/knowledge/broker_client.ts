/**
 * joi's side of the knowledge broker: the same `retrieve(channel, type, query)`
 * as the sudo caller, carried over the broker's Unix socket, so the joi
 * service itself never needs to run sudo. One connection per request; a
 * broker that is down or answers garbage yields an error outcome, never a
 * thrown exception into the agent.
 *
 * @module
 */
import type { RetrieveOutcome } from "./caller.ts";

/** Options of {@link KnowledgeClient}. */
export interface KnowledgeClientOptions {
  /** The broker's socket. */
  socketPath: string;
  /** Per-request timeout (default 35 s: retrieve's own 30 s plus margin). */
  timeoutMs?: number;
}

const MAX_LINE = 1024 * 1024 + 64 * 1024;

/** Retrieves through the broker. */
export class KnowledgeClient {
  #o: KnowledgeClientOptions;
  #next = 1;

  /** A client for the broker at `socketPath`. */
  constructor(options: KnowledgeClientOptions) {
    this.#o = options;
  }

  /** Asks the broker; every failure is an error outcome with a reason. */
  async retrieve(channel: string, type: string, query: unknown): Promise<RetrieveOutcome> {
    const fail = (reason: "failed" | "timeout" | "invalid_output"): RetrieveOutcome => ({
      status: "error",
      results: [],
      reason,
    });
    const id = this.#next++;
    let conn: Deno.UnixConn;
    try {
      conn = await Deno.connect({ transport: "unix", path: this.#o.socketPath });
    } catch {
      return fail("failed");
    }
    let expired = false;
    const timer = setTimeout(() => {
      expired = true;
      try {
        conn.close();
      } catch { /* closed */ }
    }, this.#o.timeoutMs ?? 35_000);
    try {
      await conn.write(
        new TextEncoder().encode(JSON.stringify({ id, channel, type, query }) + "\n"),
      );
      const reader = conn.readable.pipeThrough(new TextDecoderStream()).getReader();
      let buf = "";
      while (!buf.includes("\n")) {
        const { value, done } = await reader.read();
        if (done) break;
        buf += value;
        if (buf.length > MAX_LINE) return fail("invalid_output");
      }
      const line = buf.includes("\n") ? buf.slice(0, buf.indexOf("\n")) : "";
      if (!line) return fail(expired ? "timeout" : "failed");
      const msg = JSON.parse(line) as { id: number | null; outcome: RetrieveOutcome };
      if (
        msg.id !== id || !msg.outcome ||
        (msg.outcome.status !== "ok" && msg.outcome.status !== "error")
      ) {
        return fail("invalid_output");
      }
      return msg.outcome;
    } catch {
      return fail(expired ? "timeout" : "invalid_output");
    } finally {
      clearTimeout(timer);
      try {
        conn.close();
      } catch { /* closed */ }
    }
  }
}
