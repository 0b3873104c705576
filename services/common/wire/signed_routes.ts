/**
 * Middleware for signed routes (mesh <-> joi, relay -> joi): verifies each
 * request (`joi-wire-v2`, sign.ts) and signs each answer
 * (`joi-wire-v2-response`, response.ts). PROTOCOL.md is the reference.
 *
 * @module
 */
import type { Context, MiddlewareHandler } from "hono";
import { type AnswerSigner, fail, isSignedAnswer, requestId, setAnswerSigner } from "./envelope.ts";
import {
  collectSignedHeaders,
  describeHeaderProblem,
  formatSignedHeaderList,
  HEADERS,
  isSignableValue,
  parseSignedHeaderList,
  PROTOCOL_HEADERS,
  REQUEST_TRANSPORT_HEADERS,
  RESPONSE_TRANSPORT_HEADERS,
} from "./headers.ts";
import type { WireKey } from "./keys.ts";
import type { ClaimResult, NonceStore } from "./nonce_store.ts";
import { signResponse } from "./response.ts";
import {
  canonicalFromParts,
  type Direction,
  isNonce,
  isSignature,
  matchingKey,
  parseTimestamp,
} from "./sign.ts";
import { type BodyOptions, checkLimit, publishBody, readBody } from "./body.ts";
import { checkSources, peerAddress } from "./source.ts";

/** Options of {@link signedRoutes}. */
export interface SignedRoutesOptions extends BodyOptions {
  /**
   * The key of `direction` (see `loadWireKey`). During a key rotation, pass
   * `[newKey, oldKey]`: a request signed under any of them is accepted and
   * answered under the same one; remove the old key once both sides use the new.
   */
  key: WireKey | readonly WireKey[];
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
  /**
   * Called for each request whose MAC verified, with its peer and the skew of
   * its `X-Timestamp` to the server clock (`server - X-Timestamp`, ms), and
   * whether the skew made it refused: the clock watch counts refusals and
   * takes one-way offsets from it. Must not throw.
   */
  onTimestamp?: TimestampHook | undefined;
}

/** See {@link SignedRoutesOptions.onTimestamp}. */
export type TimestampHook = (s: { peer: string; skewMs: number; refused: boolean }) => void;

/** What an answer is bound to: the request's nonce, and the key to sign with. */
interface Binding {
  nonce: string;
  key: WireKey;
}

/**
 * Middleware for signed routes. Checks, in this order, and answers:
 * 1. source address in `allowedSources`, else 403 `forbidden` (unsigned answer);
 * 2. `X-Timestamp`, `X-Nonce`, `X-HMAC-SHA256`, `X-Signed-Headers` present and
 *    well formed, else 401 `auth_failed` naming the header;
 * 3. every header that is not transport is in `X-Signed-Headers`, every
 *    listed one is present once with a signable value, else 401 naming it;
 * 4. body type and size (415 / 413 `invalid_request`, see body.ts);
 * 5. HMAC over the canonical string (sign.ts) in constant time, else 401;
 * 6. nonce unseen, else 409 `replay_detected`, and the timestamp above the
 *    floor left by an earlier run, else 401 (nonce_store.ts: whatever must
 *    be durable is, before the handler runs);
 * 7. timestamp within `toleranceMs` of the server clock, else 401;
 * 8. body is JSON (checked only once authenticated), else 400.
 *
 * Every answer to a request whose nonce and MAC were well formed, refusals
 * included, is signed (response.ts) under the response key of the key that
 * verified it (the first key when none did), with the server's clock in
 * `X-Timestamp`; every answer header that is not transport is signed.
 */
export function signedRoutes(options: SignedRoutesOptions): MiddlewareHandler {
  checkLimit(options.maxBodyBytes);
  if (!Number.isFinite(options.toleranceMs) || options.toleranceMs <= 0) {
    throw new RangeError(`toleranceMs must be positive, got ${options.toleranceMs}`);
  }
  const sources = checkSources(options.allowedSources);
  const keys: readonly WireKey[] = Array.isArray(options.key)
    ? options.key
    : [options.key as WireKey];
  if (keys.length === 0) throw new TypeError("signedRoutes: at least one key is required");
  for (const k of keys) {
    if (k.direction !== options.direction) {
      throw new TypeError(
        `signedRoutes: a ${k.direction} key cannot verify ${options.direction} requests`,
      );
    }
  }
  const requestKeys = keys.map((k) => k.request);
  const now = options.now ?? Date.now;
  const log = options.logger?.child("wire");
  const direction = options.direction;

  /** Logs a refusal and stops reading the body. */
  const refuse = (
    c: Context,
    response: Response,
    reason: string,
    fields?: Record<string, unknown>,
  ): Response => {
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
  const authFailed = (c: Context, message: string, reason: string, header?: string) =>
    refuse(c, fail(c, "auth_failed", message), reason, header ? { header } : undefined);

  /** The refusal to send (undefined: the request may go on). Binds answers as soon as it can. */
  const check = async (c: Context): Promise<Response | undefined> => {
    const peer = peerAddress(c);
    if (peer === undefined) {
      log?.error("wire.no_peer_address", {
        hint: "serve the app with serveGuarded(app, ...) or Deno.serve(options, app.fetch) " +
          "so the peer address reaches Hono",
      });
      return refuse(c, fail(c, "forbidden", "source address unknown"), "no_peer_address");
    }
    if (!sources.has(peer)) {
      return refuse(c, fail(c, "forbidden", "source address not allowed"), "source", { peer });
    }

    const raw = c.req.raw;
    const headers = raw.headers;
    const nonce = headers.get(HEADERS.nonce);
    const signature = headers.get(HEADERS.signature);
    let binding: Binding | undefined;
    if (nonce !== null && signature !== null && isNonce(nonce) && isSignature(signature)) {
      // from here on, answers made by ok()/fail() are signed as they are made
      binding = { nonce, key: keys[0]! };
      setAnswerSigner(raw, answerSigner(binding, direction, now));
      bindings.set(raw, binding);
    }
    const tsText = headers.get(HEADERS.timestamp);
    const listText = headers.get(HEADERS.signedHeaders);
    const missing = !tsText
      ? HEADERS.timestamp
      : !nonce
      ? HEADERS.nonce
      : !signature
      ? HEADERS.signature
      : !listText
      ? HEADERS.signedHeaders
      : undefined;
    if (missing !== undefined) {
      return authFailed(c, `missing header ${missing} (joi-wire-v2)`, "missing_header", missing);
    }
    const timestamp = parseTimestamp(tsText!);
    if (timestamp === undefined) {
      return authFailed(
        c,
        `malformed header ${HEADERS.timestamp}: expected epoch milliseconds`,
        "malformed_header",
        HEADERS.timestamp,
      );
    }
    if (binding === undefined) {
      const bad = !isNonce(nonce!) ? HEADERS.nonce : HEADERS.signature;
      const expected = bad === HEADERS.nonce ? "a lowercase UUIDv4" : "64 lowercase hex digits";
      return authFailed(
        c,
        `malformed header ${bad}: expected ${expected}`,
        "malformed_header",
        bad,
      );
    }
    const list = parseSignedHeaderList(listText!);
    if ("problem" in list) {
      return authFailed(
        c,
        `malformed header ${HEADERS.signedHeaders}: ${list.problem}`,
        "malformed_header",
        HEADERS.signedHeaders,
      );
    }
    const values = collectSignedHeaders(headers, list, REQUEST_TRANSPORT_HEADERS);
    if (!Array.isArray(values)) {
      return authFailed(c, describeHeaderProblem(values), `header_${values.kind}`, values.name);
    }
    if (!list.set.has("x-request-id")) {
      return authFailed(
        c,
        "X-Request-ID must be signed (joi-wire-v2)",
        "header_missing",
        "x-request-id",
      );
    }

    const body = await readBody(c, options);
    if (!body.ok) return refuse(c, body.response, "body");

    const url = raw.url;
    const data = canonicalFromParts(
      direction,
      raw.method,
      url.slice(url.indexOf("/", url.indexOf("//") + 2)),
      timestamp,
      nonce!,
      list.names,
      values,
      body.bytes,
    );
    const matched = matchingKey(requestKeys, data, signature!);
    if (matched < 0) return authFailed(c, "signature does not match", "signature");
    binding.key = keys[matched]!; // answer under the key that verified

    let claim: ClaimResult;
    try {
      const r = options.nonceStore.claim(nonce!, timestamp);
      claim = typeof r === "string" ? r : await r;
    } catch (e) {
      log?.error("wire.nonce_store_failed", { error: (e as Error).message });
      return fail(c, "internal_error", "nonce store unavailable");
    }
    if (claim === "replay") {
      return refuse(c, fail(c, "replay_detected", "nonce already used"), "replay", { nonce });
    }
    if (claim === "before_restart") {
      return authFailed(
        c,
        `${HEADERS.timestamp} predates this server's restart; sign the request again`,
        "before_restart",
      );
    }
    const skewMs = now() - timestamp;
    const late = skewMs > options.toleranceMs || -skewMs > options.toleranceMs;
    options.onTimestamp?.({ peer, skewMs, refused: late });
    if (late) {
      return refuse(
        c,
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
    return refused ? refuse(c, refused, "json") : undefined;
  };

  return async (c, next) => {
    const refused = await check(c);
    if (refused === undefined) await next();
    let response = refused ?? c.res;
    const binding = bindings.get(c.req.raw);
    if (binding !== undefined && !isSignedAnswer(response)) {
      // an answer not made by ok()/fail(): read it back and sign it
      response = await signAnswer(c, response, binding, direction, now(), log);
    }
    // Replace the answer without Hono merging the old one's headers back in.
    (c as { res: Response | undefined }).res = undefined;
    c.res = response;
    return response;
  };
}

/** What answers to a request are bound to, once its nonce and MAC were read. */
const bindings = new WeakMap<Request, Binding>();

/** Signs answers made by ok()/fail() for one request, bound to it. */
function answerSigner(binding: Binding, direction: Direction, now: () => number): AnswerSigner {
  return (status, headers, text) => {
    const timestamp = now();
    return {
      [HEADERS.timestamp]: String(timestamp),
      [HEADERS.signedHeaders]: formatSignedHeaderList(headers.map(([n]) => n)),
      [HEADERS.signature]: signResponse(binding.key.response, {
        direction,
        requestNonce: binding.nonce,
        status,
        timestamp,
        headers,
        body: text,
      }),
    };
  };
}

/**
 * Any other answer (not made by ok()/fail()), read back and rebuilt with its
 * `X-Timestamp`, `X-Signed-Headers` and `X-HMAC-SHA256`; every header that
 * is not transport is signed, one that cannot be is dropped.
 */
async function signAnswer(
  c: Context,
  res: Response,
  binding: Binding,
  direction: Direction,
  timestamp: number,
  log: SignedRoutesOptions["logger"],
): Promise<Response> {
  const body = new Uint8Array(await res.arrayBuffer());
  const headers = new Headers(res.headers);
  headers.set(HEADERS.requestId, requestId(c));
  const signed: [string, string][] = [];
  const unsignable: string[] = [];
  headers.forEach((value, name) => {
    if (RESPONSE_TRANSPORT_HEADERS.has(name) || PROTOCOL_HEADERS.has(name)) return;
    if (isSignableValue(value)) signed.push([name, value]);
    else unsignable.push(name);
  });
  for (const name of unsignable) {
    // A handler set a header no client could verify: drop it rather than answer ambiguously.
    headers.delete(name);
    log?.error("wire.response_header_dropped", { header: name, path: c.req.path });
  }
  const mac = signResponse(binding.key.response, {
    direction,
    requestNonce: binding.nonce,
    status: res.status,
    timestamp,
    headers: signed,
    body,
  });
  headers.set(HEADERS.timestamp, String(timestamp));
  headers.set(HEADERS.signedHeaders, formatSignedHeaderList(signed.map(([n]) => n)));
  headers.set(HEADERS.signature, mac);
  const empty = body.length === 0 || res.status === 204 || res.status === 304;
  return new Response(empty ? null : body, { status: res.status, headers });
}

/**
 * For routes open to anyone but signable (`/health`): a request carrying
 * `X-HMAC-SHA256` goes through `signed` (verified, answered signed, so a peer
 * can trust it and read the server's clock); one without passes unsigned.
 */
export function signedOrOpen(signed: MiddlewareHandler): MiddlewareHandler {
  return async (c, next) => {
    if (c.req.raw.headers.has(HEADERS.signature)) return await signed(c, next);
    await next();
    return undefined;
  };
}
