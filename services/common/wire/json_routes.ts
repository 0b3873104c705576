/**
 * Middleware for unsigned JSON routes (openHAB -> joi ingest without a key,
 * the local run): the body checks of body.ts, no signature.
 *
 * @module
 */
import type { MiddlewareHandler } from "hono";
import { requestId } from "./envelope.ts";
import { type BodyOptions, checkLimit, publishBody, readBody } from "./body.ts";

/**
 * 415 for a body whose Content-Type is not `application/json` (charset, if
 * given, UTF-8); 413 when `Content-Length` exceeds `maxBodyBytes` (before
 * reading) or a streamed body grows past it (reading stops); 400 for a body
 * that is not JSON or does not arrive in time. Requests without a body pass
 * through with `jsonBody` undefined.
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
