/**
 * The wire protocol between mesh, joi and openHAB (contracts.md, "Every
 * request between mesh, joi and openHAB"): response envelopes, request
 * signing, key files, the nonce store, server middleware and clients.
 *
 * A signed service, in short:
 *
 * ```ts
 * const key = await loadKey(undefined, "mesh_to_joi.key"); // $CREDENTIALS_DIRECTORY
 * const nonceStore = openNonceStore(`${stateDir}/nonces.db`, retentionMs);
 * const app = new Hono();
 * app.use("/api/*", signedRoutes({ key, direction: "mesh_to_joi", nonceStore,
 *   allowedSources: ["10.42.0.1"], toleranceMs, maxBodyBytes }));
 * app.post("/api/v1/message/inbound", (c) => ok(c, { received: true, body: jsonBody(c) }));
 * Deno.serve({ hostname: "10.42.0.10", port: 8443 }, app.fetch); // app.fetch: keeps the peer address
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
  HEADERS,
  importHmacKey,
  isNonce,
  sign,
  SIGNATURE_VERSION,
  type SignedFields,
  signedHeaders,
  type SignOptions,
  verify,
} from "./sign.ts";
export {
  decodeKeyMaterial,
  generateKeyFile,
  KeyFileError,
  keyPath,
  loadKey,
  MIN_KEY_BYTES,
  readKeyFile,
} from "./keys.ts";
export { type NonceStore, type NonceStoreOptions, openNonceStore } from "./nonce_store.ts";
export {
  type BodyOptions,
  jsonBody,
  jsonRoutes,
  normalizeAddress,
  peerAddress,
  rawBody,
  signedRoutes,
  type SignedRoutesOptions,
  type VerifiedBody,
  verifiedBody,
} from "./verify.ts";
export {
  JsonClient,
  type JsonClientOptions,
  SignedClient,
  type SignedClientOptions,
  WireClientError,
  type WireResponse,
} from "./client.ts";
