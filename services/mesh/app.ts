/**
 * The mesh's HTTP API (port 8444), called by joi only:
 *
 * - `GET /health`: signal-cli connection and version, joi reachability and
 *   clock offset, queue depth, last config sync (no phone numbers, no
 *   secrets); a signed request gets a signed answer;
 * - `POST /api/v1/link/ping`: joi's link check (signed like the rest); the
 *   answer carries the mesh's clock and facts (see `watch/link.ts`);
 * - `POST /api/v1/message/outbound` (alias `/api/v1/signal/outbound`):
 *   signed with the joi->mesh key (source address, HMAC, nonce, timestamp,
 *   checked by the wire middleware); its `X-Config-Hash` triggers a config
 *   sync before the request is handled, so a revocation takes effect for
 *   this very request.
 *
 * @module
 */
import { Hono, type MiddlewareHandler } from "hono";
import type { Logger } from "../common/log.ts";
import { fail, jsonBody, ok, signedOrOpen } from "../common/wire/mod.ts";
import { LINK_PING_PATH } from "../common/watch/link_ping.ts";
import type { ConfigSync } from "./config_sync.ts";
import { type Outbound, outboundSchema } from "./outbound.ts";

/** Options of {@link createApp}. */
export interface AppOptions {
  outbound: Outbound;
  sync: ConfigSync;
  /** The signed-routes middleware (joi->mesh key). */
  verify: MiddlewareHandler;
  /** The health document. */
  health: () => Record<string, unknown>;
  /** policy.yaml content.max_outbound_chars. */
  maxOutboundChars: number;
  /** The link watch's answer to joi's signed check (`POST /api/v1/link/ping`). */
  linkAnswer?: ((body: { ack_outage?: unknown }) => Record<string, unknown>) | undefined;
  log: Logger;
}

/** Builds the Hono app. */
export function createApp(o: AppOptions): Hono {
  const app = new Hono();
  const schema = outboundSchema(o.maxOutboundChars);

  // open to anyone; a signed request (joi's) gets a signed answer with the mesh's clock
  app.get("/health", signedOrOpen(o.verify), (c) => ok(c, o.health()));

  const syncFirst: MiddlewareHandler = async (c, next) => {
    await o.sync.ensure(c.req.header("X-Config-Hash"), "joi request carried a new X-Config-Hash");
    await next();
  };

  const handler = async (c: Parameters<MiddlewareHandler>[0]) => {
    const parsed = schema.safeParse(jsonBody(c));
    if (!parsed.success) {
      const issues = parsed.error.issues.map((i) =>
        `${i.path.join(".") || "(body)"}: ${i.message}`
      );
      return fail(c, "invalid_request", `outbound body: ${issues.join("; ")}`);
    }
    const r = await o.outbound.handle(parsed.data, c.req.header("x-request-id"));
    switch (r.kind) {
      case "refused":
        return fail(c, "forbidden", r.message);
      case "rate_limited":
        return fail(c, "rate_limited", `outbound limit ${r.rule} reached`, {
          retryAfter: r.retryAfterSeconds,
        });
      case "unavailable":
        o.log.error("outbound_unavailable", { error: r.message });
        return fail(c, "internal_error", r.message);
      case "undelivered":
        // joi retries both: after signal-cli's retryAfterSeconds when it gave one
        return r.retryAfterSeconds !== undefined
          ? fail(c, "rate_limited", r.message, { retryAfter: r.retryAfterSeconds })
          : fail(c, "internal_error", r.message);
      case "sent":
        return ok(c, r.data);
    }
  };

  for (const path of ["/api/v1/message/outbound", "/api/v1/signal/outbound"]) {
    app.post(path, o.verify, syncFirst, handler);
  }

  const linkAnswer = o.linkAnswer;
  if (linkAnswer) {
    app.post(LINK_PING_PATH, o.verify, (c) => {
      const body = jsonBody<Record<string, unknown>>(c);
      return ok(c, linkAnswer(body !== null && typeof body === "object" ? body : {}));
    });
  }

  app.notFound((c) => fail(c, "not_found", `no route ${c.req.method} ${c.req.path}`));
  app.onError((e, c) => {
    o.log.error("request_failed", { path: c.req.path, error: e.message });
    return fail(c, "internal_error", "internal error");
  });
  return app;
}
