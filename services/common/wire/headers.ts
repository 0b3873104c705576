/**
 * The header rules of joi-wire-v2 (see PROTOCOL.md beside this file): the
 * protocol's own headers, the transport headers that carry no authority, and
 * the signed-header list (`X-Signed-Headers`, SigV4's SignedHeaders idea).
 *
 * **Default deny.** Every header of a signed message that is neither a
 * transport header ({@link REQUEST_TRANSPORT_HEADERS} /
 * {@link RESPONSE_TRANSPORT_HEADERS}) nor one of the protocol's own headers
 * ({@link PROTOCOL_HEADERS}) must be named in the signed list, or the message
 * is refused. So a header added later (by us, or by whoever sits on the path)
 * can never be acted on unsigned: it is either signed or refused.
 *
 * **No ambiguity.** Header names are case-insensitive in HTTP; the list and
 * the canonical lines use lowercase names. A header sent twice (under any
 * casing) reaches the receiver as one value joined with `", "` (Fetch
 * semantics, what Deno does), so signed values may not contain a comma, and a
 * value carrying one is refused as a duplicate. Signed values are printable
 * ASCII (0x20-0x7E) without a comma, compared after HTTP's removal of leading
 * and trailing whitespace.
 *
 * @module
 */

/** Header names of the signed protocol (requests and responses). */
export const HEADERS = {
  requestId: "X-Request-ID",
  timestamp: "X-Timestamp",
  nonce: "X-Nonce",
  signature: "X-HMAC-SHA256",
  signedHeaders: "X-Signed-Headers",
} as const;

/**
 * The protocol's own headers: bound by the canonical string itself (timestamp,
 * nonce), or the MAC and its list. They are never listed in `X-Signed-Headers`.
 */
export const PROTOCOL_HEADERS: ReadonlySet<string> = new Set([
  "x-timestamp",
  "x-nonce",
  "x-hmac-sha256",
  "x-signed-headers",
]);

/**
 * Request headers that only move bytes (framing, connection, negotiation a
 * JSON API ignores): never signed, never read by a handler. Every other
 * request header must be signed.
 */
export const REQUEST_TRANSPORT_HEADERS: ReadonlySet<string> = new Set([
  "host",
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "te",
  "expect",
  "accept",
  "accept-encoding",
  "accept-language",
  "user-agent",
]);

/**
 * Response headers that only move bytes. The body hash covers the body after
 * any content-coding is removed, so `content-encoding` carries no authority.
 * Every other response header (content-type, x-request-id, retry-after...)
 * must be signed.
 */
export const RESPONSE_TRANSPORT_HEADERS: ReadonlySet<string> = new Set([
  "content-length",
  "transfer-encoding",
  "connection",
  "keep-alive",
  "date",
  "vary",
  "content-encoding",
  "server",
]);

const TOKEN = /^[!#$%&'*+.^_`|~0-9a-z-]+$/;
const VALUE = /^[\x20-\x2b\x2d-\x7e]*$/;

/** True when `value` may be signed: printable ASCII without a comma, no edge spaces. */
export function isSignableValue(value: string): boolean {
  return VALUE.test(value) && value.trim() === value;
}

/** A validated `X-Signed-Headers` list. */
export interface SignedList {
  /** The value as sent (it is what the canonical string carries). */
  readonly line: string;
  /** The names, in order. */
  readonly names: readonly string[];
  /** The names, for lookups. */
  readonly set: ReadonlySet<string>;
  /** Each name's position in {@link names}. */
  readonly index: ReadonlyMap<string, number>;
}

/** Lists seen lately, validated once: peers send the same few lists over and over. */
const listCache = new Map<string, SignedList>();
const LIST_CACHE_MAX = 64;

/**
 * Parses an `X-Signed-Headers` value: lowercase header names joined by `;`,
 * sorted, no duplicates, no protocol header. Returns the list, or a reason.
 */
export function parseSignedHeaderList(value: string): SignedList | { problem: string } {
  const cached = listCache.get(value);
  if (cached !== undefined) return cached;
  if (value === "") return { problem: "the list is empty" };
  const names = value.split(";");
  for (let i = 0; i < names.length; i++) {
    const n = names[i]!;
    if (!TOKEN.test(n)) return { problem: `"${n.slice(0, 40)}" is not a lowercase header name` };
    if (PROTOCOL_HEADERS.has(n)) return { problem: `${n} is a protocol header, never listed` };
    if (i > 0 && !(names[i - 1]! < n)) {
      return { problem: "names must be sorted and listed once" };
    }
  }
  const list = {
    line: value,
    names,
    set: new Set(names),
    index: new Map(names.map((n, i) => [n, i])),
  };
  if (listCache.size >= LIST_CACHE_MAX) listCache.delete(listCache.keys().next().value!);
  listCache.set(value, list);
  return list;
}

/** The `X-Signed-Headers` value for `names` (lowercased, sorted, each once). */
export function formatSignedHeaderList(names: readonly string[]): string {
  let sorted = true;
  for (let i = 1; i < names.length && sorted; i++) sorted = names[i - 1]! < names[i]!;
  if (sorted && names.every((n) => n === n.toLowerCase())) return names.join(";");
  return [...new Set(names.map((n) => n.toLowerCase()))].sort().join(";");
}

/** Why a message's headers do not match its signed list. */
export interface HeaderProblem {
  /** `unsigned`: present but not listed; `missing`: listed but absent; `ambiguous`: sent twice or not signable. */
  kind: "unsigned" | "missing" | "ambiguous";
  /** The header, lowercase. */
  name: string;
}

/**
 * Collects the signed header values of a received message: every listed
 * header must be present with a signable value, and every present header
 * that is neither transport nor protocol must be listed. Returns the values
 * in list order, or the first problem found.
 */
export function collectSignedHeaders(
  headers: Headers,
  list: SignedList,
  transport: ReadonlySet<string>,
): string[] | HeaderProblem {
  const index = list.index;
  const values: string[] = new Array(list.names.length);
  let unsigned: string | undefined;
  // One pass (forEach, not for..of: Deno's Headers iterator costs 12x more
  // CPU). A header sent twice arrives here once, its values joined by ", ":
  // the comma makes it unsignable below.
  headers.forEach((value, name) => {
    const i = index.get(name);
    if (i !== undefined) values[i] = value;
    else if (unsigned === undefined && !transport.has(name) && !PROTOCOL_HEADERS.has(name)) {
      unsigned = name;
    }
  });
  if (unsigned !== undefined) return { kind: "unsigned", name: unsigned };
  for (let i = 0; i < values.length; i++) {
    const value = values[i];
    if (value === undefined) return { kind: "missing", name: list.names[i]! };
    if (!isSignableValue(value)) return { kind: "ambiguous", name: list.names[i]! };
  }
  return values;
}

/** Text of a {@link HeaderProblem}, for error messages. */
export function describeHeaderProblem(p: HeaderProblem): string {
  switch (p.kind) {
    case "unsigned":
      return `header ${p.name} is not in ${HEADERS.signedHeaders}: every header that is not ` +
        `transport must be signed`;
    case "missing":
      return `header ${p.name} is listed in ${HEADERS.signedHeaders} but absent`;
    case "ambiguous":
      return `header ${p.name} is sent twice or holds a comma or non-ASCII byte`;
  }
}

/** Header names validated once (callers sign the same few names over and over). */
const nameCache = new Map<string, string>();

/**
 * Normalises a request's headers to sign: lowercase names, sorted, each value signable.
 * Throws naming the header when a value could be ambiguous, or a name is a
 * protocol or transport header (those are never signed).
 */
export function headersToSign(headers: Readonly<Record<string, string>>): [string, string][] {
  const out: [string, string][] = [];
  for (const raw in headers) {
    const value = headers[raw]!;
    let name = nameCache.get(raw);
    if (name === undefined) {
      name = raw.toLowerCase();
      if (!TOKEN.test(name)) throw new TypeError(`cannot sign: "${raw}" is not a header name`);
      if (PROTOCOL_HEADERS.has(name) || REQUEST_TRANSPORT_HEADERS.has(name)) {
        throw new TypeError(`cannot sign: ${name} is a protocol or transport header`);
      }
      if (nameCache.size < 256) nameCache.set(raw, name);
    }
    if (!isSignableValue(value)) {
      throw new TypeError(
        `cannot sign: header ${name} must be printable ASCII without a comma or edge spaces`,
      );
    }
    out.push([name, value]);
  }
  out.sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
  for (let i = 1; i < out.length; i++) {
    if (out[i - 1]![0] === out[i]![0]) {
      throw new TypeError(`cannot sign: header ${out[i]![0]} given twice`);
    }
  }
  return out;
}
