/**
 * Request signing, `joi-wire-v2` (PROTOCOL.md beside this file is the
 * reference, with known-answer vectors).
 *
 * The signature is the lowercase hex HMAC-SHA256, under the key of the
 * request's direction, of this canonical string (lines joined by `\n`, no
 * trailing newline):
 *
 * ```
 * joi-wire-v2
 * <direction>            mesh_to_joi | joi_to_mesh | openhab_to_joi
 * <METHOD>               upper case, e.g. POST
 * <path>                 pathname plus search exactly as sent, e.g. /api/v1/x?a=1
 * <X-Timestamp>          decimal epoch milliseconds
 * <X-Nonce>              lowercase UUIDv4
 * <name>:<value>         one line per header of X-Signed-Headers, in its order
 * <sha256(body)>         lowercase hex SHA-256 of the raw body bytes
 * ```
 *
 * v1 bound direction, method, path, timestamp, nonce and body; v2 keeps those
 * and adds the signed headers (see headers.ts: every header that is not
 * transport must be listed, so the channel, sender, config hash, request id and
 * content type joi acts on are all under the MAC; `X-Signed-Headers` lists
 * them, and its names are the names of the header lines). No line can absorb
 * bytes of its neighbour: every field but the path and header values has a
 * fixed alphabet without `\n`, neither of those can hold a raw newline, every
 * header line holds a `:` and the body hash line none.
 *
 * Each direction has its own key and the direction label is signed, so a
 * request is never accepted in another direction, even under a shared key.
 *
 * @module
 */
import { equalConstantTime, hmacHex, sha256Hex } from "./hmac.ts";
import { formatSignedHeaderList, headersToSign } from "./headers.ts";

export { HEADERS } from "./headers.ts";

/** Which way a request travels; each direction has its own key. */
export type Direction = "mesh_to_joi" | "joi_to_mesh" | "openhab_to_joi";

/** Every direction. */
export const DIRECTIONS: readonly Direction[] = ["mesh_to_joi", "joi_to_mesh", "openhab_to_joi"];

/** Version label opening the canonical string of a request. */
export const SIGNATURE_VERSION = "joi-wire-v2";

/** The fields a request signature covers. */
export interface SignedFields {
  /** Direction label. */
  direction: Direction;
  /** HTTP method (case-insensitive; upper-cased). */
  method: string;
  /** URL pathname plus search (`?...`, if any). */
  path: string;
  /** `X-Timestamp`: epoch milliseconds. */
  timestamp: number;
  /** `X-Nonce`: lowercase UUIDv4. */
  nonce: string;
  /** Signed headers as `[lowercase name, value]`, sorted by name (see headers.ts). */
  headers: readonly (readonly [string, string])[];
  /** Raw body bytes (empty when there is no body). */
  body: Uint8Array;
}

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const TIMESTAMP = /^[0-9]{1,15}$/;
const SIGNATURE = /^[0-9a-f]{64}$/;
const METHOD = /^[A-Za-z]+$/;

/** True for a lowercase UUIDv4 (what `crypto.randomUUID()` returns). */
export function isNonce(value: string): boolean {
  return UUID_V4.test(value);
}

/** Parses an `X-Timestamp` header (decimal epoch ms), or undefined when malformed. */
export function parseTimestamp(value: string): number | undefined {
  return TIMESTAMP.test(value) ? Number(value) : undefined;
}

/** True for an `X-HMAC-SHA256` value: 64 lowercase hex digits. */
export function isSignature(value: string): boolean {
  return SIGNATURE.test(value);
}

/** Throws unless `fields` can be written unambiguously (shared with responses). */
export function checkCommonFields(what: string, timestamp: number, nonce: string): void {
  if (!isNonce(nonce)) {
    throw new TypeError(`cannot sign ${what}: nonce "${nonce}" is not a lowercase UUIDv4`);
  }
  if (!Number.isSafeInteger(timestamp) || timestamp < 0 || timestamp >= 1e15) {
    throw new TypeError(`cannot sign ${what}: timestamp ${timestamp} is not epoch milliseconds`);
  }
}

/**
 * The header lines of a canonical string: `name:value` per signed header, in
 * the order of `X-Signed-Headers` (sorted names). The list itself is bound
 * through the names; a value is one line (printable ASCII, no comma).
 */
export function headerLines(headers: readonly (readonly [string, string])[]): string {
  let sorted = true;
  for (let i = 1; i < headers.length && sorted; i++) sorted = headers[i - 1]![0] < headers[i]![0];
  const list = sorted ? headers : [...headers].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  return list.map(([name, value]) => `${name}:${value}`).join("\n");
}

/**
 * The canonical string from parts a verifier has already checked (the names
 * of a validated list and the received values): the same string
 * {@link canonicalString} makes, without checking again.
 */
export function canonicalFromParts(
  direction: Direction,
  method: string,
  path: string,
  timestamp: number,
  nonce: string,
  names: readonly string[],
  values: readonly string[],
  body: Uint8Array,
): string {
  let out = `${SIGNATURE_VERSION}\n${direction}\n${method}\n${path}\n${timestamp}\n${nonce}`;
  for (let i = 0; i < names.length; i++) out += `\n${names[i]}:${values[i]}`;
  return `${out}\n${sha256Hex(body)}`;
}

/**
 * The canonical string of {@link SignedFields} (see the module doc). Throws
 * when a field could make the string ambiguous (a newline in the path, a
 * malformed nonce or timestamp, unsorted headers): only well-formed requests
 * are signed.
 */
export function canonicalString(fields: SignedFields): string {
  checkCommonFields("request", fields.timestamp, fields.nonce);
  if (!fields.path.startsWith("/") || /[\r\n]/.test(fields.path)) {
    throw new TypeError(`cannot sign: path "${fields.path}" must start with / and be one line`);
  }
  if (!METHOD.test(fields.method)) {
    throw new TypeError(`cannot sign: method "${fields.method}" is not an HTTP method`);
  }
  if (fields.headers.length === 0) {
    throw new TypeError("cannot sign: at least X-Request-ID must be signed");
  }
  const headers = [...fields.headers].sort((a, b) => (a[0] < b[0] ? -1 : 1));
  return canonicalFromParts(
    fields.direction,
    fields.method.toUpperCase(),
    fields.path,
    fields.timestamp,
    fields.nonce,
    headers.map(([n]) => n),
    headers.map(([, v]) => v),
    fields.body,
  );
}

/** The lowercase hex `X-HMAC-SHA256` of `fields` under `key` (the direction's raw key). */
export function sign(key: CryptoKey, fields: SignedFields): string {
  return hmacHex(key, canonicalString(fields));
}

/**
 * Which of `keys` (a rotation: new and old) signed `fields` with `signature`
 * (64 lowercase hex digits): its index, or -1. Every key is tried (no early
 * exit) and each MAC is compared in constant time; a request that cannot be
 * written as a canonical string verifies under none.
 */
export function verify(
  keys: readonly CryptoKey[],
  fields: SignedFields,
  signature: string,
): number {
  let data: string;
  try {
    data = canonicalString(fields);
  } catch {
    return -1;
  }
  return matchingKey(keys, data, signature);
}

/** The index of the key whose HMAC of `data` is `signature` (hex), or -1; constant time per key. */
export function matchingKey(keys: readonly CryptoKey[], data: string, signature: string): number {
  if (!isSignature(signature)) return -1;
  let found = -1;
  for (let i = 0; i < keys.length; i++) {
    if (equalConstantTime(hmacHex(keys[i]!, data), signature) && found < 0) found = i;
  }
  return found;
}

/** Options of {@link signedHeaders}. */
export interface SignOptions {
  /** Request key of `direction` (`WireKey.request`). */
  key: CryptoKey;
  /** Direction label. */
  direction: Direction;
  /** HTTP method. */
  method: string;
  /** Pathname plus search. */
  path: string;
  /** Raw body bytes (empty for none). */
  body: Uint8Array;
  /**
   * Headers to send signed: `X-Request-ID` (required), `Content-Type` when
   * there is a body, and every header the receiver acts on.
   */
  headers: Readonly<Record<string, string>>;
  /** Epoch ms; defaults to `Date.now()`. */
  timestamp?: number | undefined;
  /** Defaults to a fresh `crypto.randomUUID()`. */
  nonce?: string | undefined;
}

/** What {@link signedHeaders} returns: every header to send, and what an answer binds to. */
export interface SignedRequest {
  /** The given headers (names lowercased) plus `x-timestamp`, `x-nonce`, `x-signed-headers`, `x-hmac-sha256`. */
  headers: Record<string, string>;
  /** The nonce (a response must be bound to it). */
  nonce: string;
  /** The MAC, lowercase hex (a response must be bound to it). */
  signature: string;
}

/**
 * Signs one request: a fresh nonce unless one is given. Throws when a header
 * cannot be signed unambiguously, or `X-Request-ID` (or `Content-Type` with
 * a body) is missing from `options.headers`.
 */
export function signedHeaders(options: SignOptions): SignedRequest {
  const timestamp = options.timestamp ?? Date.now();
  const nonce = options.nonce ?? crypto.randomUUID();
  const headers = headersToSign(options.headers);
  let requestId = false;
  let contentType = false;
  for (const [n] of headers) {
    if (n === "x-request-id") requestId = true;
    else if (n === "content-type") contentType = true;
  }
  if (!requestId) throw new TypeError("cannot sign: X-Request-ID is required");
  if (options.body.length > 0 && !contentType) {
    throw new TypeError("cannot sign: a request with a body needs Content-Type");
  }
  const signature = sign(options.key, {
    direction: options.direction,
    method: options.method,
    path: options.path,
    timestamp,
    nonce,
    headers,
    body: options.body,
  });
  const out: Record<string, string> = {};
  for (const [n, v] of headers) out[n] = v;
  out["x-timestamp"] = String(timestamp);
  out["x-nonce"] = nonce;
  out["x-signed-headers"] = formatSignedHeaderList(headers.map(([n]) => n));
  out["x-hmac-sha256"] = signature;
  return { headers: out, nonce, signature };
}
