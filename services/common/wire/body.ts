/**
 * Reading and publishing a request body, shared by the two middlewares
 * ({@link ./json_routes.ts}, {@link ./signed_routes.ts}): the body is read
 * exactly once, under a size limit and a deadline, and handlers get the
 * verified bytes and parsed JSON through {@link rawBody} / {@link jsonBody}
 * (Hono's own `c.req.json()`, `c.req.text()`, `c.req.arrayBuffer()` work too:
 * they are served from the same cached bytes).
 *
 * @module
 */
import type { Context } from "hono";
import type { Logger } from "../log.ts";
import { fail } from "./envelope.ts";
import { readCapped } from "./read_capped.ts";
import { bodyDeadline, closeAfterResponse } from "./connection.ts";

/** The body of a request as a middleware read it. */
export interface VerifiedBody {
  /** Raw bytes (empty when the request had no body). */
  bytes: Uint8Array;
  /** Parsed JSON, or undefined when the body was empty. */
  json: unknown;
}

/** Options shared by both middlewares. */
export interface BodyOptions {
  /** Largest accepted body in bytes (policy `security.max_body_bytes`). */
  maxBodyBytes: number;
  /** Longest wait for the whole body once headers arrived (policy `server.body_timeout_seconds`; default 10 000 ms). */
  bodyTimeoutMs?: number | undefined;
  /** Where refusals are logged (security stream); nothing secret is logged. */
  logger?: Logger | undefined;
}

const bodies = new WeakMap<Request, VerifiedBody>();
const EMPTY = new Uint8Array(0);

/**
 * The body read and checked by `jsonRoutes` / `signedRoutes`.
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

/** Throws unless `maxBodyBytes` is a positive integer. */
export function checkLimit(maxBodyBytes: number): void {
  if (!Number.isSafeInteger(maxBodyBytes) || maxBodyBytes <= 0) {
    throw new RangeError(`maxBodyBytes must be a positive integer, got ${maxBodyBytes}`);
  }
}

/** A body read, or the refusal to send. */
export type BodyResult =
  | { ok: true; bytes: Uint8Array }
  | { ok: false; response: Response };

/** Verdicts on Content-Type values seen lately: peers send the same one or two. */
const typeVerdicts = new Map<string, string | undefined>();

function mediaTypeProblem(contentType: string | undefined): string | undefined {
  if (contentType === undefined) return "Content-Type is missing; send application/json";
  if (typeVerdicts.has(contentType)) return typeVerdicts.get(contentType);
  const problem = judgeMediaType(contentType);
  if (typeVerdicts.size >= 16) typeVerdicts.delete(typeVerdicts.keys().next().value!);
  typeVerdicts.set(contentType, problem);
  return problem;
}

function judgeMediaType(contentType: string): string | undefined {
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
 * 400 when the body does not arrive within the timeout (and the connection is
 * closed after the answer: its remaining bytes are never waited for).
 */
export async function readBody(c: Context, options: BodyOptions): Promise<BodyResult> {
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
  let declared: number | undefined;
  if (lengthHeader !== undefined) {
    declared = /^[0-9]{1,15}$/.test(lengthHeader.trim()) ? Number(lengthHeader.trim()) : NaN;
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
      closeAfterResponse(req);
      return { ok: false, response: tooLarge(`of ${declared} bytes (Content-Length)`) };
    }
  }
  const timeoutMs = options.bodyTimeoutMs ?? 10_000;
  let timedOut = false;
  let reject!: (e: Error) => void;
  const deadline = new Promise<never>((_, r) => (reject = r));
  const expire = () => {
    timedOut = true;
    reject(new Error("body timeout"));
  };
  // The guarded server's sweeper keeps the deadline (a timer per request cost
  // ~10 us of CPU); elsewhere (tests, Deno.serve) a timer does.
  const clear = bodyDeadline(req, timeoutMs, expire);
  const timer = clear === undefined ? setTimeout(expire, timeoutMs) : undefined;
  let bytes: Uint8Array | undefined;
  try {
    if (declared === undefined) {
      const cancel = new AbortController();
      deadline.catch(() => cancel.abort());
      bytes = await readCapped(req.body, max, cancel.signal);
    } else {
      // the fast path: a body of known length in one piece (the limit is checked above)
      const read = req.arrayBuffer();
      read.catch(() => {}); // given up on timeout: the closing connection rejects it
      bytes = new Uint8Array(await Promise.race([read, deadline]));
    }
  } catch {
    const problem = timedOut
      ? `the request body did not arrive within ${timeoutMs} ms`
      : "the request body could not be read";
    closeAfterResponse(req);
    return { ok: false, response: fail(c, "invalid_request", problem) };
  } finally {
    if (clear !== undefined) clear();
    else clearTimeout(timer);
    deadline.catch(() => {});
  }
  if (bytes === undefined) {
    closeAfterResponse(req);
    return { ok: false, response: tooLarge("stream") };
  }
  return { ok: true, bytes };
}

const utf8 = new TextDecoder("utf-8", { fatal: true });

/** Parses and publishes the body; returns a 400 response when it is not JSON. */
export function publishBody(c: Context, bytes: Uint8Array): Response | undefined {
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
  // Let Hono's own body readers (c.req.json(), validators) serve the same bytes
  // (`bytes` owns its whole buffer: read in one piece or assembled exactly).
  // (Hono types the cache as values; at run time it holds promises of them.)
  (c.req.bodyCache as Record<string, unknown>).arrayBuffer = Promise.resolve(
    bytes.byteOffset === 0 && bytes.byteLength === bytes.buffer.byteLength
      ? bytes.buffer
      : bytes.slice().buffer,
  );
  return undefined;
}
