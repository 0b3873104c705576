/**
 * joi's openHAB ingest on 8445: `POST /api/v1/openhab/{presence,sensors,
 * weather,alert,state}` (contracts.md) and `POST /api/v1/openhab/events`
 * (openHAB's own bus events, one or a relay batch), the relay's heartbeat
 * (`POST /api/v1/openhab/heartbeat`, see `common/watch/heartbeat.ts`), plus
 * `GET /health`.
 *
 * Each request is checked in this order: source address allowed (403), JSON
 * type and size (415/413: 10 KiB per event), JSON syntax (400), schema (400
 * naming the field), `source` allowed (403), per-endpoint rate limit (429;
 * critical events are never limited), `event_id` unseen within the window
 * (409). Then the events are normalized and handled; the answer is
 * `{received: true, queued}`.
 *
 * A relay batch (`events: [...]` on `/api/v1/openhab/events`) is answered per
 * event instead (`batch.ts`): once its envelope passed the checks above, each
 * event is judged on its own and the answer (200) lists the accepted indexes
 * and each refused one with its code and reason; the rate limit counts events,
 * not requests, and never a critical one.
 *
 * @module
 */
import { Hono } from "hono";
import type { Context } from "hono";
import { fail, ok } from "../../common/wire/envelope.ts";
import {
  jsonBody,
  jsonRoutes,
  normalizeAddress,
  peerAddress,
  signedOrOpen,
  signedRoutes,
  type TimestampHook,
  type WireKey,
} from "../../common/wire/mod.ts";
import type { NonceStore } from "../../common/wire/nonce_store.ts";
import type { Logger } from "../../common/log.ts";
import type { Policy } from "../../common/policy/policy.ts";
import { RateLimiter } from "../../common/rate_limit.ts";
import { IngestError } from "./errors.ts";
import { compileItemFilter } from "./items.ts";
import { DeviceClassifier, type DeviceClassPatterns } from "../../common/device_classes.ts";
import { endpointSchemas, formatIssues } from "./schemas.ts";
import {
  normalizeAlert,
  type Normalized,
  normalizePresence,
  normalizeSensors,
  normalizeState,
  normalizeWeather,
} from "./normalize.ts";
import { type BusEvent, normalizeBusEvent } from "./openhab_events.ts";
import type { BatchAnswer } from "./batch_answer.ts";
import { type JudgedEvent, judgeEvents } from "./batch.ts";
import type { EventPipeline, HandleOptions } from "./pipeline.ts";
import type { DeviceEvent, IngestEndpoint } from "./types.ts";
import { cleanUntrusted } from "./untrusted.ts";
import { type Heartbeat, HEARTBEAT_PATH, heartbeatSchema } from "../../common/watch/heartbeat.ts";

/** policy.yaml figures the ingest app uses. */
export interface IngestPolicy {
  /** policy.yaml `ingest`. */
  ingest: Pick<
    Policy["ingest"],
    "allowed_sources" | "max_event_bytes" | "max_readings" | "items" | "string_max_chars"
  >;
  /** policy.yaml `iot.device_classes`: the household's item patterns -> classes. */
  deviceClasses?: DeviceClassPatterns | undefined;
  /** `rate_limits.openhab`: per hour, per endpoint. */
  openhabPerHour: Record<IngestEndpoint, number>;
  /** `security.max_body_bytes`: cap of a relay batch. */
  maxBodyBytes: number;
  /** `server.body_timeout_seconds` in ms (default 10 000). */
  bodyTimeoutMs?: number | undefined;
}

/** Options of {@link createIngestApp}. */
export interface IngestAppOptions {
  policy: IngestPolicy;
  pipeline: EventPipeline;
  /** Is this event critical (bypasses the endpoint rate limit)? */
  isCritical: (ev: DeviceEvent) => boolean;
  log: Logger;
  now: () => number;
  /** Extra fields for /health (outbox depth, breaker, devices). */
  health?: () => Record<string, unknown>;
  /**
   * When set, every event must be signed by the relay with the openHAB->joi
   * key (direction `openhab_to_joi`, replay-protected by the nonce store);
   * unsigned events are refused with 401. Production always sets it.
   */
  signing?: {
    key: WireKey;
    nonceStore: NonceStore;
    toleranceMs: number;
    /** The clock watch's hook (requests refused for their timestamp). */
    onTimestamp?: TimestampHook | undefined;
  };
  /**
   * The relay's heartbeat (`POST /api/v1/openhab/heartbeat`, same checks as
   * the events: source address, signature, size; then its schema and source
   * name): handed to the house watch with joi's receive time.
   */
  heartbeat?: ((hb: Heartbeat, receivedAt: number) => void) | undefined;
}

const IP = /^[0-9.]+$|:/;

/** Builds the ingest Hono app. Serve it with `Deno.serve(opts, app.fetch)` (peer address). */
export function createIngestApp(o: IngestAppOptions): Hono {
  const p = o.policy;
  const schemas = endpointSchemas({ maxReadings: p.ingest.max_readings });
  const filter = compileItemFilter(p.ingest.items);
  const refuse = (item: string) => filter.refusal(item);
  const classes = new DeviceClassifier(p.deviceClasses);
  const allowedNames = new Set(p.ingest.allowed_sources.map((s) => s.toLowerCase()));
  const allowedAddrs = new Set(
    p.ingest.allowed_sources.filter((s) => IP.test(s)).map(normalizeAddress),
  );
  const limiters = new Map<IngestEndpoint, RateLimiter>();
  for (const [ep, perHour] of Object.entries(p.openhabPerHour)) {
    limiters.set(ep as IngestEndpoint, new RateLimiter({ per_hour: perHour }, { now: o.now }));
  }
  const log = o.log;
  const app = new Hono();

  // the source address before anything is read
  app.use("/api/v1/openhab/*", async (c, next) => {
    const peer = peerAddress(c);
    if (peer === undefined || !allowedAddrs.has(peer)) {
      log.security("ingest_source_refused", { peer: peer ?? "unknown", path: c.req.path });
      c.req.raw.body?.cancel().catch(() => {});
      return fail(c, "forbidden", "source address is not an allowed openHAB node");
    }
    await next();
    return undefined;
  });
  const routes = (maxBodyBytes: number) =>
    o.signing
      ? signedRoutes({
        maxBodyBytes,
        logger: log,
        key: o.signing.key,
        direction: "openhab_to_joi",
        nonceStore: o.signing.nonceStore,
        allowedSources: [...allowedAddrs],
        toleranceMs: o.signing.toleranceMs,
        onTimestamp: o.signing.onTimestamp,
        bodyTimeoutMs: p.bodyTimeoutMs,
        now: o.now,
      })
      : jsonRoutes({ maxBodyBytes, logger: log, bodyTimeoutMs: p.bodyTimeoutMs });
  const single = routes(p.ingest.max_event_bytes);
  const batch = routes(Math.max(p.ingest.max_event_bytes, p.maxBodyBytes));

  // open to anyone; a signed request (the relay's) gets a signed answer with joi's clock
  if (o.signing) app.use("/health", signedOrOpen(single));
  app.get("/health", (c) =>
    ok(c, {
      service: "joi-ingest",
      status: "ok",
      ...(o.health ? o.health() : {}),
    }));

  const answer = (
    c: Context,
    endpoint: IngestEndpoint,
    body: Record<string, unknown>,
    normalize: () => Normalized,
    extras: { expiresAt?: number; weather?: HandleOptions["weather"] } = {},
  ): Response => {
    const source = String(body.source ?? "");
    if (source && !allowedNames.has(source.toLowerCase())) {
      log.security("ingest_source_refused", { source: cleanUntrusted(source, 64), endpoint });
      return fail(
        c,
        "forbidden",
        `source "${cleanUntrusted(source, 64)}" is not an allowed openHAB node`,
      );
    }
    let n: Normalized;
    try {
      n = normalize();
    } catch (e) {
      if (e instanceof IngestError) return fail(c, e.code, e.message, { status: e.status });
      throw e;
    }
    const now = o.now();
    if (!n.events.some(o.isCritical)) {
      const v = limiters.get(endpoint)!.check(endpoint, now);
      if (!v.allowed) {
        log.warn("ingest_rate_limited", { endpoint, retry_after: v.retryAfterSeconds });
        return fail(c, "rate_limited", `too many ${endpoint} events; retry later`, {
          retryAfter: v.retryAfterSeconds,
        });
      }
    }
    const eventId = typeof body.event_id === "string" ? body.event_id.toLowerCase() : undefined;
    if (eventId && o.pipeline.eventIds.isRepeat(eventId, now)) {
      log.security("ingest_replay", { endpoint, event_id: eventId });
      return fail(c, "replay_detected", `event_id ${eventId} was already received`);
    }
    for (const why of n.skipped) log.info("ingest_item_skipped", { endpoint, reason: why });
    let queued: number;
    try {
      queued = o.pipeline.handle(n.events, { ...(eventId ? { eventId } : {}), ...extras });
    } catch (e) {
      log.error("ingest_handle_failed", { endpoint, error: String(e) });
      return fail(c, "internal_error", "could not store the event");
    }
    return ok(c, { received: true, queued, events: n.events.length, skipped: n.skipped.length });
  };

  const parse = <T>(
    c: Context,
    schema: {
      safeParse(
        x: unknown,
      ): { success: true; data: T } | { success: false; error: import("zod").ZodError };
    },
  ): { ok: true; data: T } | { ok: false; res: Response } => {
    const raw = jsonBody(c);
    if (raw === undefined) {
      return { ok: false, res: fail(c, "invalid_request", "(body): empty; send a JSON object") };
    }
    const r = schema.safeParse(raw);
    if (!r.success) {
      return { ok: false, res: fail(c, "invalid_request", formatIssues(r.error)) };
    }
    return { ok: true, data: r.data };
  };

  const receivedAt = () => o.now();

  /** A relay batch: each event judged on its own, one answer listing every verdict. */
  const batchAnswer = (c: Context): Response => {
    const r = parse(c, schemas.busBatch);
    if (!r.ok) return r.res;
    const b = r.data;
    if (!allowedNames.has(b.source.toLowerCase())) {
      log.security("ingest_source_refused", { source: cleanUntrusted(b.source, 64) });
      return fail(
        c,
        "forbidden",
        `source "${cleanUntrusted(b.source, 64)}" is not an allowed openHAB node`,
      );
    }
    const now = o.now();
    const eventId = b.event_id.toLowerCase();
    if (o.pipeline.eventIds.isRepeat(eventId, now)) {
      log.security("ingest_replay", { endpoint: "events", event_id: eventId });
      return fail(c, "replay_detected", `event_id ${eventId} was already received`);
    }
    const { passed, refused } = judgeEvents(b.events, {
      schema: schemas.busEvent,
      maxEventBytes: p.ingest.max_event_bytes,
      batchId: eventId,
      source: b.source,
      stringMax: p.ingest.string_max_chars,
      receivedAt,
      refuse,
      classes,
    });
    // rate limits count events (critical ones never count and are never refused)
    const limiter = limiters.get("events")!;
    const admitted: JudgedEvent[] = [];
    for (const ev of passed) {
      const cost = ev.events.filter((e) => !o.isCritical(e)).length;
      const v = cost > 0 ? limiter.take("events", cost, now) : undefined;
      if (v && v.granted < cost) {
        refused.push({
          index: ev.index,
          ...(ev.item ? { item: ev.item } : {}),
          code: "rate_limited",
          reason: `events[${ev.index}]: over rate_limits.openhab.events ` +
            `(${limiter.limit.per_hour} events per hour)`,
          retry_after: v.retryAfterSeconds,
        });
        continue;
      }
      admitted.push(ev);
    }
    let handled;
    try {
      handled = o.pipeline.handleEach(admitted, { eventId });
    } catch (e) {
      log.error("ingest_handle_failed", { endpoint: "events", error: String(e) });
      return fail(c, "internal_error", "could not store the events");
    }
    const accepted: number[] = [];
    let duplicates = 0;
    let events = 0;
    admitted.forEach((ev, i) => {
      const result = handled.results[i];
      if (result === "failed") {
        refused.push({
          index: ev.index,
          ...(ev.item ? { item: ev.item } : {}),
          code: "internal_error",
          reason: `events[${ev.index}]: could not be stored; send it again`,
        });
        return;
      }
      accepted.push(ev.index);
      if (result === "duplicate") duplicates++;
      else events += ev.events.length;
    });
    const skipped = admitted.filter((ev) => ev.skipped !== undefined);
    for (const ev of skipped) {
      log.info("ingest_item_skipped", { endpoint: "events", item: ev.item, reason: ev.skipped });
    }
    refused.sort((a, b) => a.index - b.index);
    for (const f of refused) {
      (f.code === "rate_limited" ? log.info : log.warn)("ingest_event_refused", {
        index: f.index,
        item: f.item,
        code: f.code,
        reason: f.reason,
      });
    }
    const answer: BatchAnswer = {
      received: true,
      accepted: accepted.sort((a, b) => a - b),
      refused,
      duplicates,
      skipped: skipped.length,
      events,
      queued: handled.queued,
    };
    return ok(c, answer);
  };
  const ctx = () => ({
    receivedAt: receivedAt(),
    stringMax: p.ingest.string_max_chars,
    refuse,
    classes,
  });

  app.post("/api/v1/openhab/presence", single, (c) => {
    const r = parse(c, schemas.presence);
    if (!r.ok) return r.res;
    return answer(c, "presence", r.data, () => normalizePresence(r.data, ctx()));
  });
  app.post("/api/v1/openhab/sensors", single, (c) => {
    const r = parse(c, schemas.sensors);
    if (!r.ok) return r.res;
    return answer(c, "sensors", r.data, () => normalizeSensors(r.data, ctx()));
  });
  app.post("/api/v1/openhab/weather", single, (c) => {
    const r = parse(c, schemas.weather);
    if (!r.ok) return r.res;
    const cur = r.data.data.current;
    const max = p.ingest.string_max_chars;
    return answer(c, "weather", r.data, () => normalizeWeather(r.data, ctx()), {
      weather: {
        condition: cleanUntrusted(cur.condition, 40),
        temperature: cur.temperature,
        humidity: cur.humidity,
        forecast: r.data.data.forecast.map((f) => ({
          date: cleanUntrusted(f.date, 20),
          high: f.high,
          low: f.low,
          condition: cleanUntrusted(f.condition, Math.min(40, max)),
          rain: f.precipitation_chance,
        })),
      },
    });
  });
  app.post("/api/v1/openhab/alert", single, (c) => {
    const r = parse(c, schemas.alert);
    if (!r.ok) return r.res;
    return answer(c, "alert", r.data, () => normalizeAlert(r.data, ctx()), {
      ...(r.data.data.expires_at ? { expiresAt: r.data.data.expires_at } : {}),
    });
  });
  app.post("/api/v1/openhab/state", single, (c) => {
    const r = parse(c, schemas.state);
    if (!r.ok) return r.res;
    return answer(c, "state", r.data, () => normalizeState(r.data, ctx()));
  });
  app.post("/api/v1/openhab/events", batch, (c) => {
    const raw = jsonBody(c) as Record<string, unknown> | undefined;
    const isBatch = typeof raw === "object" && raw !== null && "events" in raw;
    if (isBatch) return batchAnswer(c);
    const size = c.req.header("content-length");
    if (size !== undefined && Number(size) > p.ingest.max_event_bytes) {
      return fail(
        c,
        "invalid_request",
        `body exceeds the limit of ${p.ingest.max_event_bytes} bytes per event`,
        { status: 413 },
      );
    }
    const r = parse(c, schemas.busEvent);
    if (!r.ok) return r.res;
    const peer = peerAddress(c) ?? "unknown";
    return answer(c, "events", {}, () => {
      const res = normalizeBusEvent(r.data as BusEvent, "(body)", {
        eventId: crypto.randomUUID(),
        source: peer,
        receivedAt: r.data.received_at ?? receivedAt(),
        stringMax: p.ingest.string_max_chars,
        refuse,
        classes,
      });
      return { events: res.events, skipped: res.skipped ? [res.skipped] : [] };
    });
  });

  const onHeartbeat = o.heartbeat;
  if (onHeartbeat) {
    app.post(HEARTBEAT_PATH, single, (c) => {
      const r = parse(c, heartbeatSchema);
      if (!r.ok) return r.res;
      if (!allowedNames.has(r.data.source.toLowerCase())) {
        log.security("ingest_source_refused", { source: cleanUntrusted(r.data.source, 64) });
        return fail(
          c,
          "forbidden",
          `source "${cleanUntrusted(r.data.source, 64)}" is not an allowed openHAB node`,
        );
      }
      const at = o.now();
      onHeartbeat(r.data, at);
      return ok(c, { received: true, time: at });
    });
  }

  app.notFound((c) => fail(c, "not_found", `no route ${c.req.method} ${c.req.path}`));
  app.onError((e, c) => {
    log.error("ingest_error", { path: c.req.path, error: String(e) });
    return fail(c, "internal_error", "internal error");
  });
  return app;
}
