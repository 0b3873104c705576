/**
 * One attempt to hand a message to the mesh: `POST /api/v1/message/outbound`
 * signed with the joi->mesh key (wire module), no retries of its own (the
 * outbox owns retry and backoff, durably). The result says whether a retry can
 * help and how long the mesh asked us to wait.
 *
 * @module
 */
import { signedHeaders } from "../../common/wire/sign.ts";
import type { MeshOutboundBody } from "./message.ts";

/** The outcome of one send. */
export type SendResult =
  | { ok: true; messageId?: string }
  | { ok: false; retryable: boolean; retryAfterMs?: number; error: string };

/** Sends one message to the mesh. */
export interface MeshTransport {
  send(body: MeshOutboundBody, requestId: string): Promise<SendResult>;
}

/** Options of {@link httpMeshTransport}. */
export interface HttpMeshTransportOptions {
  /** `http://10.42.0.1:8444`. */
  baseUrl: string;
  /** The joi->mesh HMAC key; unsigned when absent (tests of the unsigned path only). */
  key?: CryptoKey;
  /** Request timeout (ms). */
  timeoutMs?: number;
  /** Injected fetch. */
  fetch?: typeof fetch;
  /** Clock for the signature timestamp. */
  now?: () => number;
  /**
   * The hash of joi's identity configuration, sent as `X-Config-Hash` on
   * every request so the mesh notices a change (a revocation) and fetches
   * `GET /config/identities` before it handles the next message.
   */
  configHash?: () => string | undefined;
}

const PATH = "/api/v1/message/outbound";
const encoder = new TextEncoder();

/** The HTTP transport to the mesh's 8444. */
export function httpMeshTransport(options: HttpMeshTransportOptions): MeshTransport {
  const doFetch = options.fetch ?? fetch;
  const now = options.now ?? Date.now;
  const url = new URL(PATH, options.baseUrl).toString();
  return {
    async send(body, requestId) {
      const raw = encoder.encode(JSON.stringify(body));
      const headers: Record<string, string> = {
        "content-type": "application/json",
        "x-request-id": requestId,
      };
      const hash = options.configHash?.();
      if (hash) headers["x-config-hash"] = hash;
      if (!options.key) headers["x-timestamp"] = String(now());
      else {
        Object.assign(
          headers,
          await signedHeaders({
            key: options.key,
            direction: "joi_to_mesh",
            method: "POST",
            path: PATH,
            body: raw,
            timestamp: now(),
          }),
        );
      }
      let res: Response;
      try {
        res = await doFetch(url, {
          method: "POST",
          headers,
          body: raw,
          signal: AbortSignal.timeout(options.timeoutMs ?? 10_000),
        });
      } catch (e) {
        return { ok: false, retryable: true, error: `mesh unreachable: ${(e as Error).message}` };
      }
      let json: Record<string, unknown> | undefined;
      try {
        json = await res.json();
      } catch {
        json = undefined;
      }
      if (res.ok && json?.status === "ok") {
        const data = json.data as Record<string, unknown> | undefined;
        return {
          ok: true,
          ...(typeof data?.message_id === "string" ? { messageId: data.message_id } : {}),
        };
      }
      const err = json?.error as Record<string, unknown> | undefined;
      const code = typeof err?.code === "string" ? err.code : `http_${res.status}`;
      const retryAfter = typeof err?.retry_after === "number"
        ? err.retry_after * 1000
        : Number(res.headers.get("retry-after")) * 1000 || undefined;
      // 5xx, 429 and a replayed nonce (a retry of ours) may succeed later; 4xx will not
      const retryable = res.status >= 500 || res.status === 429 || res.status === 409 ||
        res.status === 401;
      return {
        ok: false,
        retryable,
        ...(retryAfter ? { retryAfterMs: retryAfter } : {}),
        error: `mesh answered ${res.status} ${code}`,
      };
    },
  };
}
