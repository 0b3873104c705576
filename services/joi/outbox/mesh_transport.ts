/**
 * One attempt to hand a message to the mesh: `POST /api/v1/message/outbound`
 * signed with the joi->mesh key through the wire module's `SignedClient`,
 * which acts only on an answer it verified (signed by the mesh, bound to this
 * request). No retries of its own: the outbox owns retry and backoff,
 * durably. The result says whether a retry can help and how long the mesh
 * asked us to wait; an answer that fails verification is a failed attempt
 * (retryable, logged by the client as a security event).
 *
 * @module
 */
import {
  JsonClient,
  type PeerClock,
  SignedClient,
  WireClientError,
  type WireKey,
} from "../../common/wire/mod.ts";
import type { Logger } from "../../common/log.ts";
import type { MeshOutboundBody } from "./message.ts";

/** The outcome of one send. */
export type SendResult =
  | { ok: true; messageId?: string }
  | { ok: false; retryable: boolean; retryAfterMs?: number; error: string };

/** Sends one message to the mesh. */
export interface MeshTransport {
  send(body: MeshOutboundBody, requestId: string): Promise<SendResult>;
  /** The clock offset to the mesh from its signed answers (signed transports only). */
  readonly clock?: PeerClock | undefined;
}

/** Options of {@link httpMeshTransport}. */
export interface HttpMeshTransportOptions {
  /** `http://10.42.0.1:8444`. */
  baseUrl: string;
  /** The joi->mesh key; unsigned when absent (tests of the unsigned path only). */
  key?: WireKey | undefined;
  /** Request timeout (ms). */
  timeoutMs?: number | undefined;
  /** Largest accepted `|mesh clock - ours|` in an answer (ms; default 5 minutes). */
  toleranceMs?: number | undefined;
  /** Injected fetch. */
  fetch?: typeof fetch | undefined;
  /** Clock for the signature timestamp. */
  now?: (() => number) | undefined;
  /** Where refused answers are logged. */
  log?: Logger | undefined;
  /**
   * The hash of joi's identity configuration, sent (signed) as `X-Config-Hash`
   * on every request so the mesh notices a change (a revocation) and fetches
   * `GET /config/identities` before it handles the next message.
   */
  configHash?: (() => string | undefined) | undefined;
}

const PATH = "/api/v1/message/outbound";

/** The HTTP transport to the mesh's 8444. */
export function httpMeshTransport(options: HttpMeshTransportOptions): MeshTransport {
  const common = {
    baseUrl: options.baseUrl,
    maxRetries: 0,
    timeoutMs: options.timeoutMs ?? 10_000,
    fetch: options.fetch,
    now: options.now,
    log: options.log,
  };
  const client = options.key
    ? new SignedClient({
      ...common,
      key: options.key,
      direction: "joi_to_mesh",
      toleranceMs: options.toleranceMs,
    })
    : new JsonClient(common);
  return {
    clock: client instanceof SignedClient ? client.clock : undefined,
    async send(body, requestId) {
      const headers: Record<string, string> = { "X-Request-ID": requestId };
      const hash = options.configHash?.();
      if (hash) headers["X-Config-Hash"] = hash;
      let r;
      try {
        r = await client.request("POST", PATH, body, headers);
      } catch (e) {
        const kind = e instanceof WireClientError ? e.kind : "network";
        const status = e instanceof WireClientError ? e.status : undefined;
        // an answer that is not an envelope: a 4xx of a proxy will not change on retry
        const final = kind === "bad_answer" && status !== undefined && status < 500 &&
          status !== 401 && status !== 409 && status !== 429;
        const what = kind === "unverified" ? "mesh answer refused" : "mesh unreachable";
        return { ok: false, retryable: !final, error: `${what}: ${(e as Error).message}` };
      }
      const env = r.envelope;
      if (r.status >= 200 && r.status < 300 && env.status === "ok") {
        const data = env.data as Record<string, unknown> | undefined;
        return {
          ok: true,
          ...(typeof data?.message_id === "string" ? { messageId: data.message_id } : {}),
        };
      }
      const code = env.status === "error" ? env.error.code : `http_${r.status}`;
      const retryAfter = env.status === "error" && env.error.retry_after !== undefined
        ? env.error.retry_after * 1000
        : undefined;
      // 5xx, 429 and a replayed nonce (a retry of ours) may succeed later; 4xx will not
      const retryable = r.status >= 500 || r.status === 429 || r.status === 409 ||
        r.status === 401;
      return {
        ok: false,
        retryable,
        ...(retryAfter ? { retryAfterMs: retryAfter } : {}),
        error: `mesh answered ${r.status} ${code}`,
      };
    },
  };
}
