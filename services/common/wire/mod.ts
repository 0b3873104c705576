/**
 * The wire protocol between mesh, joi and openHAB, `joi-wire-v2`
 * (PROTOCOL.md beside this file is the reference, with known-answer vectors):
 * response envelopes, request and response signing, key files, the nonce
 * store, the server middlewares, the guarded server and the clients.
 *
 * A signed service, in short:
 *
 * ```ts
 * const key = await loadWireKey(undefined, "mesh_to_joi"); // $CREDENTIALS_DIRECTORY
 * const nonceStore = openNonceStore(`${stateDir}/nonces.journal`, retentionMs);
 * const app = new Hono();
 * app.use("/api/*", signedRoutes({ key, direction: "mesh_to_joi", nonceStore,
 *   allowedSources: ["10.42.0.1"], toleranceMs, maxBodyBytes }));
 * app.post("/api/v1/message/inbound", (c) => ok(c, { received: true, body: jsonBody(c) }));
 * serveGuarded(app, { hostname: "10.42.0.10", port: 8443, ...limits }); // keeps the peer address
 * ```
 *
 * and its caller:
 *
 * ```ts
 * const client = new SignedClient({ baseUrl: "http://10.42.0.10:8443", key, direction: "mesh_to_joi" });
 * const { status, envelope } = await client.request("POST", "/api/v1/message/inbound", payload);
 * ```
 *
 * @module
 */
export {
  type Envelope,
  envelopeSchema,
  ERROR_CODES,
  ERROR_STATUS,
  type ErrorBody,
  errorBodySchema,
  type ErrorCode,
  type ErrorStatus,
  fail,
  type FailOptions,
  installEnvelopeHandlers,
  INTERNAL_ERROR_MESSAGE,
  isUuid,
  ok,
  parseEnvelope,
  requestId,
} from "./envelope.ts";
export {
  canonicalString,
  type Direction,
  DIRECTIONS,
  isNonce,
  sign,
  SIGNATURE_VERSION,
  type SignedFields,
  signedHeaders,
  type SignedRequest,
  type SignOptions,
  verify,
} from "./sign.ts";
export {
  formatSignedHeaderList,
  HEADERS,
  REQUEST_TRANSPORT_HEADERS,
  RESPONSE_TRANSPORT_HEADERS,
} from "./headers.ts";
export {
  type AnswerVerdict,
  checkAnswer,
  RESPONSE_KEY_INFO,
  RESPONSE_KEY_SALT,
  RESPONSE_VERSION,
  responseCanonicalString,
  type ResponseFields,
  signResponse,
  verifyResponse,
} from "./response.ts";
export { bytesToHex, hexToBytes, importHmacKey } from "./hmac.ts";
export {
  decodeKeyMaterial,
  generateKeyFile,
  importWireKey,
  KeyFileError,
  keyPath,
  loadOptionalWireKey,
  loadWireKey,
  MIN_KEY_BYTES,
  readKeyFile,
  type WireKey,
} from "./keys.ts";
export {
  type ClaimResult,
  type NonceStore,
  type NonceStoreOptions,
  openNonceStore,
} from "./nonce_store.ts";
export { type BodyOptions, jsonBody, rawBody, type VerifiedBody, verifiedBody } from "./body.ts";
export { jsonRoutes } from "./json_routes.ts";
export {
  signedOrOpen,
  signedRoutes,
  type SignedRoutesOptions,
  type TimestampHook,
} from "./signed_routes.ts";
export { normalizeAddress, peerAddress } from "./source.ts";
export {
  type GuardedServer,
  limitsFromPolicy,
  serveGuarded,
  type ServeGuardedOptions,
  type ServerLimits,
  type ServerPolicy,
  type ServerStats,
} from "./serve.ts";
export { type ClockSample, PeerClock } from "./clock.ts";
export {
  JsonClient,
  type JsonClientOptions,
  SignedClient,
  type SignedClientOptions,
  WireClientError,
  type WireFailureKind,
  type WireRequester,
  type WireResponse,
} from "./client.ts";
