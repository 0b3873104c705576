/**
 * Response signing, `joi-wire-v2-response` (PROTOCOL.md is the reference).
 *
 * Every answer of a signed endpoint carries `X-Timestamp` (the server's clock,
 * epoch ms), `X-Signed-Headers` and `X-HMAC-SHA256`: the lowercase hex
 * HMAC-SHA256, under the **response key** of the request's direction, of
 *
 * ```
 * joi-wire-v2-response
 * <direction>            of the request answered, e.g. mesh_to_joi
 * <request X-Nonce>      the nonce of the request answered
 * <status>               three digits, e.g. 200
 * <X-Timestamp>          the server's clock, epoch ms
 * <name>:<value>         one line per header of X-Signed-Headers, in its order
 * <sha256(body)>         lowercase hex SHA-256 of the body (content-coding removed)
 * ```
 *
 * The response key is never the request key: both sides derive it from the
 * direction's key with HKDF-SHA256 (keys.ts; {@link RESPONSE_KEY_SALT},
 * {@link RESPONSE_KEY_INFO}). A response is bound to the nonce of the one
 * request it answers (nonces are fresh per try and the server refuses a
 * nonce twice), so it cannot be replayed as the answer to another request,
 * and a client accepts it once (it is waiting for one answer per nonce).
 *
 * @module
 */
import { hmacHex, sha256Hex } from "./hmac.ts";
import {
  collectSignedHeaders,
  describeHeaderProblem,
  HEADERS,
  parseSignedHeaderList,
  RESPONSE_TRANSPORT_HEADERS,
} from "./headers.ts";
import {
  checkCommonFields,
  type Direction,
  headerLines,
  isSignature,
  matchingKey,
  parseTimestamp,
} from "./sign.ts";

/** Version label opening the canonical string of a response. */
export const RESPONSE_VERSION = "joi-wire-v2-response";

/** HKDF-SHA256 salt of every response key. */
export const RESPONSE_KEY_SALT = "joi-wire-v2";

/**
 * HKDF-SHA256 `info` of a response key. The key is per direction because its
 * input key is (each direction has its own key file); the direction label in
 * the canonical string keeps the directions apart even if a deployment
 * mistakenly used one key file for two.
 */
export const RESPONSE_KEY_INFO = "joi-wire-v2 response key";

/** The fields a response signature covers. */
export interface ResponseFields {
  /** Direction of the request answered. */
  direction: Direction;
  /** `X-Nonce` of the request answered. */
  requestNonce: string;
  /** HTTP status (100-599). */
  status: number;
  /** The response's `X-Timestamp`: the server's clock, epoch ms. */
  timestamp: number;
  /** Signed response headers as `[lowercase name, value]`, sorted by name. */
  headers: readonly (readonly [string, string])[];
  /** Body bytes (empty when none), or its text (hashed as UTF-8). */
  body: Uint8Array | string;
}

/** The canonical string of a response; throws when a field is malformed. */
export function responseCanonicalString(f: ResponseFields): string {
  checkCommonFields("response", f.timestamp, f.requestNonce);
  if (!Number.isInteger(f.status) || f.status < 100 || f.status > 599) {
    throw new TypeError(`cannot sign response: status ${f.status} is not an HTTP status`);
  }
  if (f.headers.length === 0) {
    throw new TypeError("cannot sign response: at least X-Request-ID must be signed");
  }
  return `${RESPONSE_VERSION}\n${f.direction}\n${f.requestNonce}\n${f.status}\n` +
    `${f.timestamp}\n${headerLines(f.headers)}\n${sha256Hex(f.body)}`;
}

/** The lowercase hex MAC of a response under `responseKey` (`WireKey.response`). */
export function signResponse(responseKey: CryptoKey, f: ResponseFields): string {
  return hmacHex(responseKey, responseCanonicalString(f));
}

/** True when `signature` (hex) is the MAC of `f` under `responseKey`; constant time. */
export function verifyResponse(
  responseKey: CryptoKey,
  f: ResponseFields,
  signature: string,
): boolean {
  let data: string;
  try {
    data = responseCanonicalString(f);
  } catch {
    return false;
  }
  return matchingKey([responseKey], data, signature) === 0;
}

/** A received answer, as {@link checkAnswer} needs it. */
export interface ReceivedAnswer {
  /** HTTP status. */
  status: number;
  /** Its headers. */
  headers: Headers;
  /** Its body bytes (content-coding removed, as fetch gives them). */
  body: Uint8Array;
}

/** The request an answer must be bound to. */
export interface AnsweredRequest {
  /** Its direction. */
  direction: Direction;
  /** Its nonce. */
  nonce: string;
}

/** The verdict on an answer: its server time when authentic, else what is wrong. */
export type AnswerVerdict =
  | { ok: true; serverTime: number }
  | { ok: false; problem: string };

/**
 * Checks that `answer` is the signed answer to `request` under `responseKey`:
 * the three protocol headers present and well formed, every header that is not
 * transport listed, every listed header present once, and the MAC right. The
 * server time is returned for the caller's freshness check and clock offset.
 */
export function checkAnswer(
  responseKey: CryptoKey,
  request: AnsweredRequest,
  answer: ReceivedAnswer,
): AnswerVerdict {
  const h = answer.headers;
  const mac = h.get(HEADERS.signature);
  const ts = h.get(HEADERS.timestamp);
  const listText = h.get(HEADERS.signedHeaders);
  if (mac === null || ts === null || listText === null) {
    return { ok: false, problem: "the answer is not signed" };
  }
  const serverTime = parseTimestamp(ts);
  if (serverTime === undefined || !isSignature(mac)) {
    return { ok: false, problem: "the answer's signature headers are malformed" };
  }
  const list = parseSignedHeaderList(listText);
  if ("problem" in list) {
    return { ok: false, problem: `the answer's ${HEADERS.signedHeaders}: ${list.problem}` };
  }
  const values = collectSignedHeaders(h, list, RESPONSE_TRANSPORT_HEADERS);
  if (!Array.isArray(values)) {
    return { ok: false, problem: `the answer's ${describeHeaderProblem(values)}` };
  }
  const fields: ResponseFields = {
    direction: request.direction,
    requestNonce: request.nonce,
    status: answer.status,
    timestamp: serverTime,
    headers: list.names.map((n, i) => [n, values[i]!] as const),
    body: answer.body,
  };
  if (!verifyResponse(responseKey, fields, mac)) {
    return { ok: false, problem: "the answer's MAC does not match (forged or altered in transit)" };
  }
  return { ok: true, serverTime };
}
