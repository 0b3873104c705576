/**
 * Server side of the wire protocol: Hono middleware for JSON routes
 * ({@link jsonRoutes}, unsigned: openHAB ingest) and signed routes
 * ({@link signedRoutes}: mesh <-> joi).
 *
 * Both read the body exactly once, under a size limit, and hand the verified
 * bytes and parsed JSON to handlers through {@link rawBody} / {@link jsonBody}
 * (Hono's own `c.req.json()`, `c.req.text()`, `c.req.arrayBuffer()` work too:
 * they are served from the same cached bytes).
 *
 * **Starting the server.** The source-address check needs the peer address
 * that `Deno.serve` passes as the handler's second argument; Hono exposes it
 * as `c.env` (read through `getConnInfo` of `hono/deno`). Start the app as
 * `Deno.serve({ hostname, port }, app.fetch)`, never with a wrapper such as
 * `(req) => app.fetch(req)`, which drops it: without a peer address every
 * signed request is refused with 403 and an error is logged. In-process tests
 * pass it explicitly: `app.request(path, init, { remoteAddr: {...} })`.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { getConnInfo } from "hono/deno";
import type { Logger } from "../log.ts";
import { fail } from "./envelope.ts";
import { requestId } from "./envelope.ts";
import type { NonceStore } from "./nonce_store.ts";
import { readCapped } from "./read_capped.ts";
import {
  type Direction,
  HEADERS,
  isNonce,
  parseSignature,
  parseTimestamp,
  verify,
} from "./sign.ts";

/** The body of a request as the middleware read it. */
export interface VerifiedBody {
  /** Raw bytes (empty when the request had no body). */
  bytes: Uint8Array;
  /** Parsed JSON, or undefined when the body was empty. */
  json: unknown;
}

const bodies = new WeakMap<Request, VerifiedBody>();
const EMPTY = new Uint8Array(0);

/**
 * The body read and checked by {@link jsonRoutes} / {@link signedRoutes}.
 * Throws when called on a route that has neither middleware (a wiring bug).
 */
export function verifiedBody(c: Context): VerifiedBody {
  const body = bodies.get(c.req.raw);
  if (body === undefined) {
    throw new Error(
      `no verified body for ${c.req.method} ${c.req.path}: the route is not behind ` +
        `jsonRoutes() or signedRoutes()`,
    );
  }
  return body;
}

/** The raw body bytes of a verified request (see {@link verifiedBody}). */
export function rawBody(c: Context): Uint8Array {
  return verifiedBody(c).bytes;
}

/**
 * The parsed JSON body of a verified request, undefined for an empty body.
 * The type parameter is not checked: validate with a zod schema.
 */
export function jsonBody<T = unknown>(c: Context): T | undefined {
  return verifiedBody(c).json as T | undefined;
}

/** Options shared by both middlewares. */
export interface BodyOptions {
  /** Largest accepted body in bytes (policy `security.max_body_bytes`). */
  maxBodyBytes: number;
  /** Longest wait for the whole body once headers arrived (default 10 000 ms). */
  bodyTimeoutMs?: number;
  /** Where refusals are logged (security stream); nothing secret is logged. */
  logger?: Logger | undefined;
}

type BodyResult =
  | { ok: true; bytes: Uint8Array }
  | { ok: false; response: Response };

function mediaTypeProblem(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return "Content-Type is missing; send application/json";
  const [type, ...params] = contentType.split(";").map((p) => p.trim().toLowerCase());
  if (type !== "application/json") {
    return `Content-Type ${JSON.stringify(type)} is not accepted; send application/json`;
  }
  for (const p of params) {
    const [name, value] = p.split("=").map((s) => s.trim().replace(/^"|"$/g, ""));
    if (name === "charset" && value !== "utf-8" && value !== "utf8") {
      return `charset ${JSON.stringify(value)} is not accepted; JSON must be UTF-8`;
    }
  }
  return undefined;
}

/**
 * Reads the body under the limit: 415 for a body that is not JSON by type,
 * 413 from `Content-Length` before anything is read, 413 as soon as a streamed
 * (chunked) body grows past the limit (the stream is cancelled, not drained),
 * 400 when the body does not arrive within the timeout.
 */
async function readBody(c: Context, options: BodyOptions): Promise<BodyResult> {
  const req = c.req.raw;
  const lengthHeader = c.req.header("content-length");
  if (req.body === null || lengthHeader?.trim() === "0") {
    if (req.body !== null) await req.body.cancel().catch(() => {});
    return { ok: true, bytes: EMPTY };
  }
  const typeProblem = mediaTypeProblem(c.req.header("content-type"));
  if (typeProblem !== undefined) {
    await req.body.cancel().catch(() => {});
    return { ok: false, response: fail(c, "invalid_request", typeProblem, { status: 415 }) };
  }
  const max = options.maxBodyBytes;
  const tooLarge = (what: string) =>
    fail(c, "invalid_request", `body ${what} exceeds the limit of ${max} bytes`, {
      status: 413,
    });
  if (lengthHeader !== undefined) {
    const declared = /^[0-9]{1,15}$/.test(lengthHeader.trim()) ? Number(lengthHeader.trim()) : NaN;
    if (Number.isNaN(declared)) {
      await req.body.cancel().catch(() => {});
      return {
        ok: false,
        response: fail(c, "invalid_request", `Content-Length ${lengthHeader} is not a number`),
      };
    }
    if (declared > max) {
      // Refused before a byte of the body is read.
      req.body.cancel().catch(() => {});
      return { ok: false, response: tooLarge(`of ${declared} bytes (Content-Length)`) };
    }
  }
  const timeoutMs = options.bodyTimeoutMs ?? 10_000;
  const timeout = new AbortController();
  const timer = setTimeout(() => timeout.abort(), timeoutMs);
  let bytes: Uint8Array | undefined;
  try {
    bytes = await readCapped(req.body, max, timeout.signal);
  } catch {
    const problem = timeout.signal.aborted
      ? `the request body did not arrive within ${timeoutMs} ms`
      : "the request body could not be read";
    return { ok: false, response: fail(c, "invalid_request", problem) };
  } finally {
    clearTimeout(timer);
  }
  if (bytes === undefined) return { ok: false, response: tooLarge("stream") };
  return { ok: true, bytes };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Parses and publishes the body; returns a 400 response when it is not JSON. */
function publishBody(c: Context, bytes: Uint8Array): Response | undefined {
  let json: unknown = undefined;
  if (bytes.length > 0) {
    try {
      json = JSON.parse(utf8.decode(bytes));
    } catch (e) {
      const why = e instanceof SyntaxError ? e.message : "not valid UTF-8";
      return fail(c, "invalid_request", `body is not valid JSON: ${why}`);
    }
  }
  bodies.set(c.req.raw, { bytes, json });
  const buffer = bytes.slice().buffer;
  // Let Hono's own body readers (c.req.json(), validators) serve the same bytes.
  // (Hono types the cache as values; at run time it holds promises of them.)
  (c.req.bodyCache as Record<string, unknown>).arrayBuffer = Promise.resolve(buffer);
  return undefined;
}

/**
 * Middleware for unsigned JSON routes (openHAB -> joi ingest): 415 for a body
 * whose Content-Type is not `application/json` (charset, if given, UTF-8);
 * 413 when `Content-Length` exceeds `maxBodyBytes` (before reading) or a
 * streamed body grows past it (reading stops); 400 for a body that is not
 * JSON. Requests without a body pass through with {@link jsonBody} undefined.
 */
export function jsonRoutes(options: BodyOptions): MiddlewareHandler {
  checkLimit(options.maxBodyBytes);
  const log = options.logger?.child("wire");
  return async (c, next) => {
    const body = await readBody(c, options);
    if (!body.ok) {
      log?.warn("wire.body_refused", {
        request_id: requestId(c),
        path: c.req.path,
        status: body.response.status,
      });
      return body.response;
    }
    const refused = publishBody(c, body.bytes);
    if (refused) return refused;
    return await next();
  };
}

/** Options of {@link signedRoutes}. */
export interface SignedRoutesOptions extends BodyOptions {
  /**
   * HMAC key of `direction` (see `loadKey`). During a key rotation, pass
   * `[newKey, oldKey]`: a request signed under any of them is accepted; remove
   * the old key once both sides sign with the new one.
   */
  key: CryptoKey | readonly CryptoKey[];
  /** The direction of the requests this server receives. */
  direction: Direction;
  /** Where nonces of correctly signed requests are kept. */
  nonceStore: NonceStore;
  /**
   * Peer IP addresses allowed to call (exact literals, e.g. the mesh's Nebula
   * IP; IPv4-mapped IPv6 forms match their IPv4 address). The literal `unix`
   * admits connections over a Unix socket (guarded by its file permissions).
   */
  allowedSources: readonly string[];
  /** Largest accepted `|server clock - X-Timestamp|` in ms. */
  toleranceMs: number;
  /** Server clock (epoch ms), for tests. */
  now?: (() => number) | undefined;
}

const IPV4 =
  /^(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])(\.(25[0-5]|2[0-4][0-9]|1[0-9]{2}|[1-9]?[0-9])){3}$/;

/** The canonical form of an IP literal (lowercase, IPv4-mapped IPv6 unwrapped). */
export function normalizeAddress(address: string): string {
  let a = address.trim().toLowerCase();
  if (a.startsWith("[") && a.endsWith("]")) a = a.slice(1, -1);
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(a);
  return mapped?.[1] ?? a;
}

function checkSources(sources: readonly string[]): Set<string> {
  const set = new Set<string>();
  for (const s of sources) {
    const n = normalizeAddress(s);
    const isV6 = n.includes(":") && /^[0-9a-f:.]+$/.test(n);
    if (n !== "unix" && !IPV4.test(n) && !isV6) {
      throw new TypeError(
        `signedRoutes: allowed source "${s}" is not an IP address literal (or "unix"); ` +
          `list the peer's address as it connects, e.g. its Nebula IP 10.42.0.1`,
      );
    }
    set.add(n);
  }
  return set;
}

function checkLimit(maxBodyBytes: number): void {
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes <= 0) {
    throw new RangeError(`maxBodyBytes must be a positive integer, got ${maxBodyBytes}`);
  }
}

/** The peer of this request: an IP, `unix`, or undefined when the server hides it. */
export function peerAddress(c: Context): string | undefined {
  let info;
  try {
    info = getConnInfo(c);
  } catch {
    return undefined;
  }
  if ((info.remote.transport as string | undefined) === "unix") return "unix";
  return info.remote.address === undefined ? undefined : normalizeAddress(info.remote.address);
}

/**
 * Middleware for signed routes. Checks, in this order, and answers:
 * 1. source address in `allowedSources`, else 403 `forbidden`;
 * 2. `X-Timestamp`, `X-Nonce`, `X-HMAC-SHA256` present and well formed, else
 *    401 `auth_failed` naming the header (a missing or malformed
 *    `X-Request-ID` is replaced, never refused);
 * 3. body type and size (415 / 413 `invalid_request`, see {@link jsonRoutes});
 * 4. HMAC over the canonical string (sign.ts) in constant time, else 401;
 * 5. nonce unseen (recorded only now, so unsigned garbage cannot fill the
 *    store), else 409 `replay_detected`;
 * 6. timestamp within `toleranceMs` of the server clock, else 401;
 * 7. body is JSON (checked only once authenticated), else 400.
 */
export function signedRoutes(options: SignedRoutesOptions): MiddlewareHandler {
  checkLimit(options.maxBodyBytes);
  if (!Number.isFinite(options.toleranceMs) || options.toleranceMs <= 0) {
    throw new RangeError(`toleranceMs must be positive, got ${options.toleranceMs}`);
  }
  const sources = checkSources(options.allowedSources);
  const keys: readonly CryptoKey[] = Array.isArray(options.key) ? options.key : [options.key];
  if (keys.length === 0) throw new TypeError("signedRoutes: at least one key is required");
  const now = options.now ?? Date.now;
  const log = options.logger?.child("wire");
  return async (c, next) => {
    const refuse = (response: Response, reason: string, fields: Record<string, unknown> = {}) => {
      log?.security("wire.refused", {
        reason,
        status: response.status,
        request_id: requestId(c),
        method: c.req.method,
        path: c.req.path,
        ...fields,
      });
      c.req.raw.body?.cancel().catch(() => {});
      return response;
    };

    const peer = peerAddress(c);
    if (peer === undefined) {
      log?.error("wire.no_peer_address", {
        hint: "start the server as Deno.serve(options, app.fetch) so the peer address reaches Hono",
      });
      return refuse(fail(c, "forbidden", "source address unknown"), "no_peer_address");
    }
    if (!sources.has(peer)) {
      return refuse(fail(c, "forbidden", "source address not allowed"), "source", { peer });
    }

    const header = (name: string) => c.req.header(name)?.trim();
    const tsText = header(HEADERS.timestamp);
    const nonce = header(HEADERS.nonce);
    const sigText = header(HEADERS.signature);
    for (
      const [name, value] of [[HEADERS.timestamp, tsText], [HEADERS.nonce, nonce], [
        HEADERS.signature,
        sigText,
      ]] as const
    ) {
      if (value === undefined || value === "") {
        return refuse(fail(c, "auth_failed", `missing header ${name}`), "missing_header", {
          header: name,
        });
      }
    }
    const timestamp = parseTimestamp(tsText!);
    if (timestamp === undefined) {
      return refuse(
        fail(
          c,
          "auth_failed",
          `malformed header ${HEADERS.timestamp}: expected epoch milliseconds`,
        ),
        "malformed_header",
        { header: HEADERS.timestamp },
      );
    }
    if (!isNonce(nonce!)) {
      return refuse(
        fail(c, "auth_failed", `malformed header ${HEADERS.nonce}: expected a lowercase UUIDv4`),
        "malformed_header",
        { header: HEADERS.nonce },
      );
    }
    const signature = parseSignature(sigText!);
    if (signature === undefined) {
      return refuse(
        fail(c, "auth_failed", `malformed header ${HEADERS.signature}: expected 64 hex digits`),
        "malformed_header",
        { header: HEADERS.signature },
      );
    }

    const body = await readBody(c, options);
    if (!body.ok) return refuse(body.response, "body");

    const url = new URL(c.req.url);
    const fields = {
      direction: options.direction,
      method: c.req.method,
      path: url.pathname + url.search,
      timestamp,
      nonce: nonce!,
      body: body.bytes,
    };
    if (!(await verify(keys, fields, signature))) {
      return refuse(fail(c, "auth_failed", "signature does not match"), "signature");
    }

    let fresh: boolean;
    try {
      fresh = options.nonceStore.insert(nonce!);
    } catch (e) {
      log?.error("wire.nonce_store_failed", { error: (e as Error).message });
      return fail(c, "internal_error", "nonce store unavailable");
    }
    if (!fresh) {
      return refuse(fail(c, "replay_detected", "nonce already used"), "replay", { nonce });
    }

    const skewMs = now() - timestamp;
    if (Math.abs(skewMs) > options.toleranceMs) {
      return refuse(
        fail(
          c,
          "auth_failed",
          `${HEADERS.timestamp} is ${Math.round(Math.abs(skewMs) / 1000)} s ` +
            `${skewMs > 0 ? "behind" : "ahead of"} the server clock ` +
            `(tolerance ${Math.round(options.toleranceMs / 1000)} s); check both clocks (NTP)`,
        ),
        "timestamp",
        { skew_ms: skewMs },
      );
    }

    const refused = publishBody(c, body.bytes);
    if (refused) return refuse(refused, "json");
    return await next();
  };
}
