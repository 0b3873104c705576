/**
 * The response envelope every joi HTTP endpoint answers with (contracts.md,
 * "Every request between mesh, joi and openHAB"):
 *
 * ```json
 * {"status": "ok", "request_id": "<uuid>", "timestamp": "2026-01-01T00:00:00.000Z", "data": {}}
 * {"status": "error", "request_id": "<uuid>", "timestamp": "...",
 *  "error": {"code": "rate_limited", "message": "...", "retry_after": 30}}
 * ```
 *
 * - `timestamp` is the server's clock as an ISO 8601 UTC string (the request's
 *   `X-Timestamp` header is epoch ms; the envelope is meant for humans too).
 * - `request_id` is the caller's `X-Request-ID` when it is a well-formed UUID,
 *   otherwise a fresh one; a malformed `X-Request-ID` is never a reason to
 *   refuse a request. The same id is sent back in the `X-Request-ID`
 *   response header.
 * - On a signed route, the answer is signed as it is made ({@link setAnswerSigner}).
 * - `internal_error` never carries detail: whatever the caller passes as
 *   message is replaced by a fixed text; log the detail instead.
 *
 * @module
 */
import type { Context, Hono } from "hono";
import { HTTPException } from "hono/http-exception";
import { z } from "zod";
import type { Logger } from "../log.ts";

/** Error codes of the contract. */
export const ERROR_CODES = [
  "invalid_request",
  "auth_failed",
  "forbidden",
  "not_found",
  "replay_detected",
  "rate_limited",
  "internal_error",
] as const;

/** One error code of {@link ERROR_CODES}. */
export type ErrorCode = typeof ERROR_CODES[number];

/** HTTP statuses an error envelope may carry. */
export type ErrorStatus = 400 | 401 | 403 | 404 | 409 | 413 | 415 | 429 | 500;

/** The default HTTP status of each error code (contracts.md table). */
export const ERROR_STATUS: Readonly<Record<ErrorCode, ErrorStatus>> = Object.freeze({
  invalid_request: 400,
  auth_failed: 401,
  forbidden: 403,
  not_found: 404,
  replay_detected: 409,
  rate_limited: 429,
  internal_error: 500,
});

/** Statuses besides the default that a code may use (413/415 are invalid requests). */
const EXTRA_STATUS: Partial<Record<ErrorCode, readonly ErrorStatus[]>> = {
  invalid_request: [413, 415],
};

/** The fixed message of every `internal_error`: no detail leaks to the caller. */
export const INTERNAL_ERROR_MESSAGE = "internal error; the server logged the detail";

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** True when `value` is a UUID in its canonical 8-4-4-4-12 hex form. */
export function isUuid(value: string): boolean {
  return UUID.test(value);
}

const requestIds = new WeakMap<Request, string>();

/**
 * The request id of this request: the caller's `X-Request-ID` if it is a UUID,
 * otherwise one generated once per request (stable across calls).
 */
export function requestId(c: Context): string {
  const raw = c.req.raw;
  let id = requestIds.get(raw);
  if (id === undefined) {
    const given = c.req.header("x-request-id")?.trim();
    id = given !== undefined && isUuid(given) ? given.toLowerCase() : crypto.randomUUID();
    requestIds.set(raw, id);
  }
  return id;
}

/** Schema of an error body inside an envelope. */
export const errorBodySchema = z.object({
  code: z.enum(ERROR_CODES),
  message: z.string(),
  retry_after: z.number().int().nonnegative().optional(),
});

/** Schema of a response envelope, for clients parsing an answer. */
export const envelopeSchema = z.discriminatedUnion("status", [
  z.object({
    status: z.literal("ok"),
    request_id: z.string().regex(UUID, "request_id must be a UUID"),
    timestamp: z.iso.datetime(),
    data: z.unknown().optional(),
  }),
  z.object({
    status: z.literal("error"),
    request_id: z.string().regex(UUID, "request_id must be a UUID"),
    timestamp: z.iso.datetime(),
    error: errorBodySchema,
  }),
]);

/** A parsed response envelope. */
export type Envelope = z.infer<typeof envelopeSchema>;

/** The error part of an error envelope. */
export type ErrorBody = z.infer<typeof errorBodySchema>;

/** Options of {@link fail}. */
export interface FailOptions {
  /** Seconds the caller should wait (rate_limited); also sent as `Retry-After`. */
  retryAfter?: number | undefined;
  /** Use 413 or 415 for an `invalid_request` instead of 400. */
  status?: ErrorStatus | undefined;
}

/**
 * Signs an answer as it is made: given its status, its headers (lowercase
 * names, sorted) and its JSON text, returns the headers to add. Set per
 * request by the signed-routes middleware ({@link setAnswerSigner}).
 */
export type AnswerSigner = (
  status: number,
  headers: readonly (readonly [string, string])[],
  text: string,
) => Record<string, string>;

const signers = new WeakMap<Request, AnswerSigner>();
const signedAnswers = new WeakSet<Response>();

/** Makes {@link ok} / {@link fail} sign their answers to `req` with `signer`. */
export function setAnswerSigner(req: Request, signer: AnswerSigner): void {
  signers.set(req, signer);
}

/** True when `res` was made by {@link ok} / {@link fail} and signed as it was made. */
export function isSignedAnswer(res: Response): boolean {
  return signedAnswers.has(res);
}

/**
 * Makes the answer in one piece: its headers (`content-type`, `retry-after`
 * when given, `x-request-id`, plus the signer's) and its JSON text.
 */
function answer(c: Context, body: unknown, status: number, retryAfter?: number): Response {
  const text = JSON.stringify(body);
  const headers: [string, string][] = [["content-type", "application/json"]];
  if (retryAfter !== undefined) headers.push(["retry-after", String(retryAfter)]);
  headers.push(["x-request-id", requestId(c)]);
  const signer = signers.get(c.req.raw);
  if (signer) {
    const extra = signer(status, headers, text);
    for (const name in extra) headers.push([name, extra[name]!]);
  }
  // Made directly: nothing here sets headers through c.header(), and Hono's
  // c.body() would copy them into a second Headers object.
  const res = new Response(text, { status, headers });
  if (signer) signedAnswers.add(res);
  return res;
}

/** Answers `{status: "ok", request_id, timestamp, data}` with `status` (default 200). */
export function ok(c: Context, data: unknown, status: 200 | 201 | 202 = 200): Response {
  const id = requestId(c);
  const body: Record<string, unknown> = {
    status: "ok",
    request_id: id,
    timestamp: new Date().toISOString(),
  };
  if (data !== undefined) body.data = data;
  return answer(c, body, status);
}

/**
 * Answers an error envelope with the HTTP status of `code` (see
 * {@link ERROR_STATUS}). `internal_error` replaces `message` with a fixed text.
 * Throws (a programming error) when `options.status` does not belong to `code`.
 */
export function fail(
  c: Context,
  code: ErrorCode,
  message: string,
  options: FailOptions = {},
): Response {
  const status = options.status ?? ERROR_STATUS[code];
  if (status !== ERROR_STATUS[code] && !(EXTRA_STATUS[code] ?? []).includes(status)) {
    throw new Error(`fail(): HTTP ${status} is not a status of error code ${code}`);
  }
  const id = requestId(c);
  const error: ErrorBody = {
    code,
    message: code === "internal_error" ? INTERNAL_ERROR_MESSAGE : message,
  };
  if (options.retryAfter !== undefined) {
    const seconds = Math.max(0, Math.ceil(options.retryAfter));
    error.retry_after = seconds;
  }
  return answer(
    c,
    { status: "error", request_id: id, timestamp: new Date().toISOString(), error },
    status,
    error.retry_after,
  );
}

/**
 * Parses a response body as an envelope. Returns the envelope, or a message
 * saying what is wrong with it (for error reports; never throws).
 */
export function parseEnvelope(
  text: string,
): { ok: true; envelope: Envelope } | { ok: false; problem: string } {
  let json: unknown;
  try {
    json = JSON.parse(text);
  } catch (e) {
    return { ok: false, problem: `response is not JSON (${(e as Error).message})` };
  }
  const parsed = envelopeSchema.safeParse(json);
  if (!parsed.success) {
    const issues = parsed.error.issues.map((i) => `${i.path.join(".") || "(root)"}: ${i.message}`);
    return { ok: false, problem: `response is not an envelope: ${issues.join("; ")}` };
  }
  return { ok: true, envelope: parsed.data };
}

const STATUS_CODE: Record<number, ErrorCode> = {
  400: "invalid_request",
  401: "auth_failed",
  403: "forbidden",
  404: "not_found",
  409: "replay_detected",
  413: "invalid_request",
  415: "invalid_request",
  429: "rate_limited",
};

/**
 * Makes every answer of `app` an envelope, even the unplanned ones: unknown
 * routes get 404 `not_found`; a thrown Hono `HTTPException` with a 4xx status
 * of the contract keeps its status and message; anything else thrown becomes
 * 500 `internal_error` with no detail, the detail going to `logger` (without
 * the request body).
 */
// deno-lint-ignore no-explicit-any
export function installEnvelopeHandlers(app: Hono<any, any, any>, logger?: Logger): void {
  app.notFound((c) => fail(c, "not_found", `no route ${c.req.method} ${c.req.path}`));
  app.onError((err, c) => {
    const code = err instanceof HTTPException ? STATUS_CODE[err.status] : undefined;
    if (err instanceof HTTPException && code !== undefined) {
      const status = err.status as ErrorStatus;
      return fail(c, code, err.message || code, { status });
    }
    logger?.error("wire.unhandled_error", {
      request_id: requestId(c),
      method: c.req.method,
      path: c.req.path,
      error: err instanceof Error ? `${err.name}: ${err.message}` : String(err),
    });
    return fail(c, "internal_error", "unhandled");
  });
}
