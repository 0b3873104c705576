/**
 * Request signing between mesh and joi.
 *
 * The signature is the lowercase hex HMAC-SHA256, under the key of the
 * request's direction, of this canonical string (fields joined by `\n`, no
 * trailing newline):
 *
 * ```
 * joi-wire-v1
 * <direction>          mesh_to_joi | joi_to_mesh
 * <METHOD>             upper case, e.g. POST
 * <path>               URL pathname plus search exactly as sent, e.g. /api/v1/x?a=1
 * <X-Timestamp>        decimal epoch milliseconds, e.g. 1767225600000
 * <X-Nonce>            lowercase UUIDv4
 * <sha256(body)>       lowercase hex SHA-256 of the raw body bytes (of zero bytes if none)
 * ```
 *
 * This extends contracts.md (`nonce + timestamp + raw body`) the way AWS SigV4
 * does: binding the direction, method and path means a captured request cannot
 * be replayed to another endpoint, with another method, or back the other way,
 * and hashing the body keeps the string unambiguous (no field can absorb bytes
 * of its neighbour: every field but the path has a fixed alphabet without
 * `\n`, and the path cannot hold a raw newline).
 *
 * Each direction has its own key (`mesh_to_joi.key`, `joi_to_mesh.key`), and
 * the direction label is signed as well, so even a deployment that mistakenly
 * used one key for both would not accept a reflected request.
 *
 * Verification uses WebCrypto `verify`, which compares in constant time.
 *
 * @module
 */
import { Buffer } from "node:buffer";
import { createHash, createHmac, KeyObject, timingSafeEqual } from "node:crypto";

/** Which way a request travels; each direction has its own key. */
export type Direction = "mesh_to_joi" | "joi_to_mesh" | "openhab_to_joi";

/** Both directions. */
export const DIRECTIONS: readonly Direction[] = ["mesh_to_joi", "joi_to_mesh", "openhab_to_joi"];

/** Version label opening the canonical string. */
export const SIGNATURE_VERSION = "joi-wire-v1";

/** Header names of the signed protocol. */
export const HEADERS = {
  requestId: "X-Request-ID",
  timestamp: "X-Timestamp",
  nonce: "X-Nonce",
  signature: "X-HMAC-SHA256",
} as const;

/** The fields a signature covers. */
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
  /** Raw body bytes (empty when there is no body). */
  body: Uint8Array;
}

const UUID_V4 = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/;
const TIMESTAMP = /^[0-9]{1,15}$/;
const SIGNATURE = /^[0-9a-fA-F]{64}$/;

/** True for a lowercase UUIDv4 (what `crypto.randomUUID()` returns). */
export function isNonce(value: string): boolean {
  return UUID_V4.test(value);
}

/** Parses an `X-Timestamp` header (decimal epoch ms), or undefined when malformed. */
export function parseTimestamp(value: string): number | undefined {
  return TIMESTAMP.test(value) ? Number(value) : undefined;
}

/** Parses an `X-HMAC-SHA256` header (64 hex chars) to 32 bytes, or undefined. */
export function parseSignature(value: string): Uint8Array<ArrayBuffer> | undefined {
  if (!SIGNATURE.test(value)) return undefined;
  return hexToBytes(value);
}

/** Lowercase hex of `bytes`. */
export function bytesToHex(bytes: Uint8Array): string {
  let out = "";
  for (const b of bytes) out += b.toString(16).padStart(2, "0");
  return out;
}

/** Bytes of an even-length hex string (validate before calling). */
export function hexToBytes(hex: string): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(hex.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.slice(i * 2, i * 2 + 2), 16);
  return out;
}

/**
 * Lowercase hex SHA-256 of `bytes`. node:crypto, synchronous: measured 7x
 * cheaper per request than WebCrypto's async ops (22 vs 162 us for the hash,
 * sign and verify of one request) on this project's machines.
 */
export function sha256Hex(bytes: Uint8Array): Promise<string> {
  return Promise.resolve(createHash("sha256").update(bytes).digest("hex"));
}

/** node:crypto's view of a (non-extractable) WebCrypto HMAC key, cached per key. */
const keyObjects = new WeakMap<CryptoKey, KeyObject>();
function keyObject(key: CryptoKey): KeyObject {
  let k = keyObjects.get(key);
  if (!k) {
    if (key.algorithm.name !== "HMAC") throw new TypeError("not an HMAC key");
    k = KeyObject.from(key);
    keyObjects.set(key, k);
  }
  return k;
}

function hmac(key: CryptoKey, data: string): Buffer {
  return createHmac("sha256", keyObject(key)).update(data).digest();
}

/**
 * The canonical string of {@link SignedFields} (see the module doc). Throws
 * when a field could make the string ambiguous (a newline in the path, a
 * malformed nonce or timestamp): callers must only sign well-formed requests.
 */
export async function canonicalString(fields: SignedFields): Promise<string> {
  if (!isNonce(fields.nonce)) {
    throw new TypeError(`cannot sign: nonce "${fields.nonce}" is not a lowercase UUIDv4`);
  }
  if (!Number.isSafeInteger(fields.timestamp) || fields.timestamp < 0) {
    throw new TypeError(`cannot sign: timestamp ${fields.timestamp} is not epoch milliseconds`);
  }
  if (!fields.path.startsWith("/") || /[\r\n]/.test(fields.path)) {
    throw new TypeError(`cannot sign: path "${fields.path}" must start with / and be one line`);
  }
  if (!/^[A-Za-z]+$/.test(fields.method)) {
    throw new TypeError(`cannot sign: method "${fields.method}" is not an HTTP method`);
  }
  return [
    SIGNATURE_VERSION,
    fields.direction,
    fields.method.toUpperCase(),
    fields.path,
    String(fields.timestamp),
    fields.nonce,
    await sha256Hex(fields.body),
  ].join("\n");
}

/**
 * Imports raw key bytes (at least 32) as a non-extractable HMAC-SHA256 key
 * usable for signing and verifying. Prefer {@link loadKey} for key files.
 */
export async function importHmacKey(raw: Uint8Array): Promise<CryptoKey> {
  if (raw.length < 32) {
    throw new RangeError(`HMAC key too short: ${raw.length} bytes, at least 32 are required`);
  }
  return await crypto.subtle.importKey(
    "raw",
    raw as Uint8Array<ArrayBuffer>,
    { name: "HMAC", hash: "SHA-256" },
    false,
    ["sign", "verify"],
  );
}

/** The lowercase hex `X-HMAC-SHA256` of `fields` under `key`. */
export async function sign(key: CryptoKey, fields: SignedFields): Promise<string> {
  return hmac(key, await canonicalString(fields)).toString("hex");
}

/**
 * True when `signature` (32 bytes) is the HMAC of `fields` under `key`, or
 * under any of several keys (a rotation): the canonical string, with its body
 * hash, is built once, and every key is tried (no early exit).
 * Constant time: `timingSafeEqual` over two 32-byte MACs (the length is public).
 */
export async function verify(
  key: CryptoKey | readonly CryptoKey[],
  fields: SignedFields,
  signature: Uint8Array<ArrayBuffer>,
): Promise<boolean> {
  let data: string;
  try {
    data = await canonicalString(fields);
  } catch {
    return false;
  }
  const keys: readonly CryptoKey[] = Array.isArray(key) ? key : [key];
  let valid = false;
  for (const k of keys) {
    const expected = hmac(k, data);
    valid = (signature.length === expected.length && timingSafeEqual(expected, signature)) ||
      valid;
  }
  return valid;
}

/** Options of {@link signedHeaders}. */
export interface SignOptions {
  /** Key of `direction`. */
  key: CryptoKey;
  /** Direction label. */
  direction: Direction;
  /** HTTP method. */
  method: string;
  /** Pathname plus search. */
  path: string;
  /** Raw body bytes (empty for none). */
  body: Uint8Array;
  /** Epoch ms; defaults to `Date.now()`. */
  timestamp?: number | undefined;
  /** Defaults to a fresh `crypto.randomUUID()`. */
  nonce?: string | undefined;
}

/**
 * The three signing headers (`X-Timestamp`, `X-Nonce`, `X-HMAC-SHA256`) of
 * one request: a fresh nonce unless one is given.
 */
export async function signedHeaders(options: SignOptions): Promise<Record<string, string>> {
  const timestamp = options.timestamp ?? Date.now();
  const nonce = options.nonce ?? crypto.randomUUID();
  const signature = await sign(options.key, {
    direction: options.direction,
    method: options.method,
    path: options.path,
    timestamp,
    nonce,
    body: options.body,
  });
  return {
    [HEADERS.timestamp]: String(timestamp),
    [HEADERS.nonce]: nonce,
    [HEADERS.signature]: signature,
  };
}
